//! The station's copy of the console's trust bundle: downloaded, verified with the
//! pinned console key, refused on rollback, kept for offline checks.
//!
//! Only the signed bytes are trusted. Every use verifies the stored payload again
//! and takes version, times and lists from it; the database's other columns are
//! caches that must agree with it. The station never judges by a version older
//! than the highest it accepted: a deleted or edited newest bundle is "damaged",
//! which a spot check reports as TRUST UNKNOWN, never as PASS.

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
    #[error("the stored trust bundle is damaged — run trust sync ({0})")]
    Damaged(String),
}

impl Coded for TrustError {
    fn code(&self) -> ErrorCode {
        match self {
            TrustError::Console(e) => e.code(),
            TrustError::Bundle(BundleError::BadSignature) => ErrorCode::BundleBadSignature,
            TrustError::Bundle(_) => ErrorCode::BundleMalformed,
            TrustError::Store(e) => e.code(),
            TrustError::NoKey => ErrorCode::BundleKeyNotSet,
            TrustError::Rollback { .. } => ErrorCode::BundleRollback,
            TrustError::Conflict { .. } => ErrorCode::BundleConflict,
            TrustError::Damaged(_) => ErrorCode::BundleDamaged,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum BundleOutcome {
    Updated { from: Option<u64>, to: u64 },
    Unchanged { version: u64 },
}

/// The bundle the station judges by: its verified payload and what follows from it.
#[derive(Debug, Clone)]
pub struct HeldBundle {
    pub payload: BundlePayload,
    pub status: TrustStatus,
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
/// A damaged stored bundle is replaced by any verified one at or above the
/// highest version accepted: `trust sync` is the repair.
pub fn accept(
    store: &Store,
    signed: &SignedBundle,
    key: &VerifyingKey,
    now: i64,
) -> Result<BundleOutcome, TrustError> {
    let (payload, bytes) = bundle::verify(signed, key)?;
    let held = match held(store, key, now) {
        Ok(h) => h,
        Err(TrustError::Damaged(_)) => None,
        Err(e) => return Err(e),
    };
    let high_water = store.bundle_high_water()?;
    let floor = held.as_ref().map(|h| h.payload.version).max(high_water);
    if let Some(floor) = floor {
        if payload.version < floor {
            return Err(TrustError::Rollback {
                stored: floor,
                offered: payload.version,
            });
        }
    }
    let fresh = StoredBundle {
        version: payload.version,
        payload: bytes,
        signature: signed.signature.clone(),
        key_id: signed.key_id.clone(),
        issued_at: payload.issued_at,
        expires_at: payload.expires_at,
        fetched_at: now,
    };
    if let Some(h) = &held {
        if h.payload.version == payload.version {
            // The console re-signs with fresh times; only the lists must agree.
            if h.payload.allowed != payload.allowed || h.payload.revoked != payload.revoked {
                return Err(TrustError::Conflict {
                    version: payload.version,
                });
            }
            // Keep the newer signature: its expiry is the later one.
            if payload.issued_at > h.payload.issued_at {
                store.save_bundle(&fresh)?;
            } else {
                store.touch_bundle(payload.version, now)?;
            }
            return Ok(BundleOutcome::Unchanged {
                version: payload.version,
            });
        }
    }
    store.save_bundle(&fresh)?;
    Ok(BundleOutcome::Updated {
        from: floor,
        to: payload.version,
    })
}

/// The stored bundle, verified again from its signed bytes. `Ok(None)`: the
/// station never accepted one. `Err(Damaged)`: what is stored cannot be relied on.
pub fn held(store: &Store, key: &VerifyingKey, now: i64) -> Result<Option<HeldBundle>, TrustError> {
    let high_water = store.bundle_high_water()?;
    let Some(s) = store.latest_bundle()? else {
        return match high_water {
            Some(v) => Err(TrustError::Damaged(format!(
                "version {v}, the newest this station accepted, is no longer stored"
            ))),
            None => Ok(None),
        };
    };
    let (payload, _) = decode_stored(&s, key).map_err(|e| {
        TrustError::Damaged(format!(
            "the stored version {} does not verify: {e}",
            s.version
        ))
    })?;
    if payload.version != s.version
        || payload.issued_at != s.issued_at
        || payload.expires_at != s.expires_at
    {
        return Err(TrustError::Damaged(format!(
            "the stored version {} was edited: its recorded version or times differ from the signed ones",
            s.version
        )));
    }
    match high_water {
        None => {
            return Err(TrustError::Damaged(
                "the record of the newest version accepted is missing".into(),
            ))
        }
        Some(v) if payload.version < v => {
            return Err(TrustError::Damaged(format!(
                "only version {} is stored, older than version {v} this station accepted",
                payload.version
            )))
        }
        Some(_) => {}
    }
    let status = TrustStatus {
        version: payload.version,
        issued_at: payload.issued_at,
        expires_at: payload.expires_at,
        fetched_at: s.fetched_at,
        age_secs: now - payload.issued_at,
        expired: now > payload.expires_at,
        allowed: payload.allowed.len(),
        revoked: payload.revoked.len(),
        key_id: s.key_id,
    };
    Ok(Some(HeldBundle { payload, status }))
}

/// The held bundle's payload (see [`held`]).
pub fn current(store: &Store, key: &VerifyingKey) -> Result<Option<BundlePayload>, TrustError> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Ok(held(store, key, now)?.map(|h| h.payload))
}

/// The held bundle's status (see [`held`]).
pub fn status(
    store: &Store,
    key: &VerifyingKey,
    now: i64,
) -> Result<Option<TrustStatus>, TrustError> {
    Ok(held(store, key, now)?.map(|h| h.status))
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
                revoked_keys: vec![],
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

    fn signed_at(key: &SigningKey, version: u64, issued_at: i64, revoked: &[&str]) -> SignedBundle {
        bundle::sign(
            &BundlePayload {
                version,
                issued_at,
                expires_at: issued_at + 100,
                allowed: vec!["a".into()],
                revoked: revoked
                    .iter()
                    .map(|s| cardstation_protocol::messages::RevokedEntry {
                        sha256: s.to_string(),
                        reason: "lost".into(),
                        revoked_at: 1,
                    })
                    .collect(),
                revoked_keys: vec![],
            },
            key,
        )
        .unwrap()
    }

    fn damaged(store: &Store, vk: &VerifyingKey, now: i64) -> String {
        match held(store, vk, now) {
            Err(e @ TrustError::Damaged(_)) => e.to_string(),
            other => panic!("expected a damaged bundle, got {other:?}"),
        }
    }

    #[test]
    fn only_the_signed_bytes_count_and_a_deleted_newest_bundle_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("station.db");
        let store = Store::open(&db).unwrap();
        let raw = rusqlite::Connection::open(&db).unwrap();
        let key = SigningKey::random(&mut rand::rngs::OsRng);
        let vk = *key.verifying_key();
        accept(&store, &signed_at(&key, 1, 100, &[]), &vk, 100).unwrap();
        accept(&store, &signed_at(&key, 2, 100, &["b"]), &vk, 100).unwrap();
        let st = status(&store, &vk, 300).unwrap().unwrap();
        assert!(st.expired);

        // Editing the cached expiry does not un-expire it: the bundle is damaged.
        raw.execute(
            "UPDATE trust_bundles SET expires_at = 9999999999 WHERE version = 2",
            [],
        )
        .unwrap();
        assert!(damaged(&store, &vk, 300).contains("run trust sync"));
        // Re-syncing the same version repairs it from the signed bytes.
        accept(&store, &signed_at(&key, 2, 250, &["b"]), &vk, 250).unwrap();
        let st = status(&store, &vk, 300).unwrap().unwrap();
        assert_eq!((st.version, st.expires_at, st.expired), (2, 350, false));

        // Deleting the newest row does not fall back to version 1 (which lacks the revocation).
        raw.execute("DELETE FROM trust_bundles WHERE version = 2", [])
            .unwrap();
        assert!(damaged(&store, &vk, 300).contains("older than version 2"));
        raw.execute("DELETE FROM trust_bundles", []).unwrap();
        assert!(damaged(&store, &vk, 300).contains("no longer stored"));
        // Nor may the console hand back the older version afterwards.
        assert!(matches!(
            accept(&store, &signed_at(&key, 1, 260, &[]), &vk, 260),
            Err(TrustError::Rollback {
                stored: 2,
                offered: 1
            })
        ));
        accept(&store, &signed_at(&key, 3, 260, &["b"]), &vk, 260).unwrap();
        assert_eq!(status(&store, &vk, 300).unwrap().unwrap().version, 3);

        // A version column relabelled upwards, or a payload swapped in from elsewhere.
        raw.execute("UPDATE trust_bundles SET version = 7", [])
            .unwrap();
        assert!(damaged(&store, &vk, 300).contains("edited"));
        raw.execute(
            "UPDATE trust_bundles SET version = 3, signature = 'AAAA'",
            [],
        )
        .unwrap();
        assert!(damaged(&store, &vk, 300).contains("does not verify"));
    }
}
