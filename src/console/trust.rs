//! The station's copy of the console's trust bundle: downloaded, verified with the
//! pinned console key, refused on rollback, kept for offline checks.

use crate::app::failure::{Coded, ErrorCode};
use std::path::Path;

use p256::ecdsa::VerifyingKey;
use serde::Serialize;

use crate::store::{Store, StoreError, StoredBundle};

use super::client::{ConsoleClient, ConsoleError};
pub use cardstation_protocol::bundle::TrustStatus;
use cardstation_protocol::bundle::{self, BundleError};
use cardstation_protocol::messages::{BundlePayload, SignedBundle};

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(transparent)]
    Console(#[from] ConsoleError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no console key is pinned: set [console] bundle_key to the console's bundle-signing.pub.pem")]
    NoKey,
    #[error("the console offered trust bundle version {offered}, older than the version {stored} this station holds. A rollback is refused; check the console was not restored from an old backup")]
    Rollback { stored: u64, offered: u64 },
    #[error("the console offered a different trust bundle under the same version {version}. It was refused; check the console")]
    Conflict { version: u64 },
}

impl Coded for TrustError {
    fn code(&self) -> ErrorCode {
        match self {
            TrustError::Console(e) => e.code(),
            TrustError::Bundle(BundleError::BadSignature) => ErrorCode::BundleBadSignature,
            TrustError::Bundle(_) => ErrorCode::BundleMalformed,
            TrustError::Store(_) => ErrorCode::StationDatabase,
            TrustError::NoKey => ErrorCode::BundleKeyNotSet,
            TrustError::Rollback { .. } => ErrorCode::BundleRollback,
            TrustError::Conflict { .. } => ErrorCode::BundleConflict,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum BundleOutcome {
    Updated { from: Option<u64>, to: u64 },
    Unchanged { version: u64 },
}

pub fn load_key(path: Option<&Path>) -> Result<VerifyingKey, TrustError> {
    let path = path.ok_or(TrustError::NoKey)?;
    let pem = std::fs::read_to_string(path)
        .map_err(|e| BundleError::Key(format!("cannot read {}: {e}", path.display())))?;
    Ok(bundle::verifying_key_from_pem(&pem)?)
}

/// Download, verify and store the console's current bundle.
pub fn sync(
    store: &Store,
    client: &ConsoleClient,
    key: &VerifyingKey,
    now: i64,
) -> Result<BundleOutcome, TrustError> {
    let signed = client.trust_bundle()?;
    accept(store, &signed, key, now)
}

/// Verify `signed` and store it unless it would move the station backwards.
pub fn accept(
    store: &Store,
    signed: &SignedBundle,
    key: &VerifyingKey,
    now: i64,
) -> Result<BundleOutcome, TrustError> {
    let (payload, bytes) = bundle::verify(signed, key)?;
    let stored = store.latest_bundle()?;
    if let Some(s) = &stored {
        if payload.version < s.version {
            return Err(TrustError::Rollback {
                stored: s.version,
                offered: payload.version,
            });
        }
        if payload.version == s.version {
            let (old, _) = decode_stored(s, key)?;
            // The console re-signs with fresh times; only the lists must agree.
            if old.allowed != payload.allowed || old.revoked != payload.revoked {
                return Err(TrustError::Conflict {
                    version: payload.version,
                });
            }
            store.save_bundle(&StoredBundle {
                fetched_at: now,
                ..s.clone()
            })?;
            return Ok(BundleOutcome::Unchanged {
                version: payload.version,
            });
        }
    }
    store.save_bundle(&StoredBundle {
        version: payload.version,
        payload: bytes,
        signature: signed.signature.clone(),
        key_id: signed.key_id.clone(),
        issued_at: payload.issued_at,
        expires_at: payload.expires_at,
        fetched_at: now,
    })?;
    Ok(BundleOutcome::Updated {
        from: stored.map(|s| s.version),
        to: payload.version,
    })
}

/// The stored bundle, verified again (the database is not trusted blindly either).
pub fn current(store: &Store, key: &VerifyingKey) -> Result<Option<BundlePayload>, TrustError> {
    match store.latest_bundle()? {
        Some(s) => Ok(Some(decode_stored(&s, key)?.0)),
        None => Ok(None),
    }
}

pub fn status(
    store: &Store,
    key: &VerifyingKey,
    now: i64,
) -> Result<Option<TrustStatus>, TrustError> {
    let Some(s) = store.latest_bundle()? else {
        return Ok(None);
    };
    let (payload, _) = decode_stored(&s, key)?;
    Ok(Some(TrustStatus {
        version: s.version,
        issued_at: s.issued_at,
        expires_at: s.expires_at,
        fetched_at: s.fetched_at,
        age_secs: now - s.issued_at,
        expired: now > s.expires_at,
        allowed: payload.allowed.len(),
        revoked: payload.revoked.len(),
        key_id: s.key_id,
    }))
}

fn decode_stored(
    s: &StoredBundle,
    key: &VerifyingKey,
) -> Result<(BundlePayload, Vec<u8>), TrustError> {
    use base64::Engine as _;
    let signed = SignedBundle {
        payload: base64::engine::general_purpose::STANDARD.encode(&s.payload),
        signature: s.signature.clone(),
        key_id: s.key_id.clone(),
    };
    Ok(bundle::verify(&signed, key)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;

    fn signed(key: &SigningKey, version: u64, allowed: &[&str]) -> SignedBundle {
        bundle::sign(
            &BundlePayload {
                version,
                issued_at: 100,
                expires_at: 200,
                allowed: allowed.iter().map(|s| s.to_string()).collect(),
                revoked: vec![],
            },
            key,
        )
        .unwrap()
    }

    #[test]
    fn newer_bundles_replace_older_ones_and_rollback_is_refused() {
        let store = Store::in_memory().unwrap();
        let key = SigningKey::random(&mut rand::rngs::OsRng);
        let vk = *key.verifying_key();
        assert_eq!(
            accept(&store, &signed(&key, 3, &["a"]), &vk, 150).unwrap(),
            BundleOutcome::Updated { from: None, to: 3 }
        );
        assert_eq!(
            accept(&store, &signed(&key, 3, &["a"]), &vk, 160).unwrap(),
            BundleOutcome::Unchanged { version: 3 }
        );
        assert!(matches!(
            accept(&store, &signed(&key, 3, &["b"]), &vk, 160),
            Err(TrustError::Conflict { version: 3 })
        ));
        assert!(matches!(
            accept(&store, &signed(&key, 2, &[]), &vk, 170),
            Err(TrustError::Rollback {
                stored: 3,
                offered: 2
            })
        ));
        assert_eq!(
            accept(&store, &signed(&key, 5, &["a", "c"]), &vk, 180).unwrap(),
            BundleOutcome::Updated {
                from: Some(3),
                to: 5
            }
        );
        let st = status(&store, &vk, 250).unwrap().unwrap();
        assert_eq!((st.version, st.allowed, st.expired), (5, 2, true));

        let other = SigningKey::random(&mut rand::rngs::OsRng);
        assert!(matches!(
            accept(&store, &signed(&other, 9, &[]), &vk, 190),
            Err(TrustError::Bundle(BundleError::BadSignature))
        ));
        assert_eq!(current(&store, &vk).unwrap().unwrap().version, 5);
    }
}
