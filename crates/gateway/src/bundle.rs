//! The gateway's trust bundle: fetched from the console, verified with the pinned key,
//! kept on disk for offline use, never rolled back. Everything the gateway knows about
//! the bundle format lives here, so a new format (deltas, chained versions) changes
//! this module only.

use std::io::Write;
use std::path::{Path, PathBuf};

use p256::ecdsa::VerifyingKey;
use serde::{Deserialize, Serialize};

use cardstation_protocol::bundle::{self, BundleError, TrustStatus};
use cardstation_protocol::messages::{BundlePayload, SignedBundle};

use crate::client::ConsoleError;

const FILE: &str = "trust-bundle.json";

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("no console key is pinned: set [console] bundle_key to the console's bundle-signing.pub.pem")]
    NoKey,
    #[error("the pinned console key: {0}")]
    Key(String),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("the console offered trust bundle version {offered}, older than version {held} held here; a rollback is refused (was the console restored from an old backup?)")]
    Rollback { held: u64, offered: u64 },
    #[error("the console offered different lists under the same version {version}; refused (a fork). Check the console")]
    Conflict { version: u64 },
    #[error("the stored trust bundle {path} cannot be used: {detail}. Run `cardstation-gateway sync` to fetch a good one")]
    Stored { path: PathBuf, detail: String },
    #[error("cannot write the trust bundle to {path}: {detail}")]
    Write { path: PathBuf, detail: String },
    #[error(transparent)]
    Console(#[from] ConsoleError),
}

pub fn load_key(path: Option<&Path>) -> Result<VerifyingKey, TrustError> {
    let path = path.ok_or(TrustError::NoKey)?;
    let pem = std::fs::read_to_string(path)
        .map_err(|e| TrustError::Key(format!("cannot read {}: {e}", path.display())))?;
    Ok(bundle::verifying_key_from_pem(&pem)?)
}

/// The bundle as stored: the console's signed envelope exactly as received.
#[derive(Serialize, Deserialize)]
struct Stored {
    bundle: SignedBundle,
    fetched_at: i64,
    etag: Option<String>,
}

/// A verified bundle in memory.
pub struct Held {
    pub payload: BundlePayload,
    pub status: TrustStatus,
    etag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Refreshed {
    Updated {
        from: Option<u64>,
        to: u64,
    },
    /// Same version and lists, signed again with a later expiry.
    Renewed {
        version: u64,
        expires_at: i64,
    },
    /// The console answered 304: nothing downloaded.
    NotModified {
        version: u64,
    },
}

/// The one trust bundle a gateway decides by.
pub struct TrustKeeper {
    key: VerifyingKey,
    path: PathBuf,
    held: Option<Held>,
}

impl TrustKeeper {
    /// Open the bundle kept in `data_dir` (if any), verifying it again: the file is
    /// trusted for its signature, not for where it lies.
    pub fn open(data_dir: &Path, key: VerifyingKey) -> Result<Self, TrustError> {
        let path = data_dir.join(FILE);
        let mut keeper = TrustKeeper {
            key,
            path,
            held: None,
        };
        let text = match std::fs::read(&keeper.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(keeper),
            Err(e) => return Err(keeper.stored_error(e)),
        };
        let stored: Stored = serde_json::from_slice(&text).map_err(|e| keeper.stored_error(e))?;
        let (payload, _) =
            bundle::verify(&stored.bundle, &keeper.key).map_err(|e| keeper.stored_error(e))?;
        keeper.held = Some(keeper.hold(payload, &stored.bundle, stored.fetched_at, stored.etag)?);
        Ok(keeper)
    }

    /// No bundle held (a stored one could not be used); the next accepted one replaces it.
    pub fn empty(data_dir: &Path, key: VerifyingKey) -> Self {
        TrustKeeper {
            key,
            path: data_dir.join(FILE),
            held: None,
        }
    }

    fn stored_error(&self, e: impl std::fmt::Display) -> TrustError {
        TrustError::Stored {
            path: self.path.clone(),
            detail: e.to_string(),
        }
    }

    fn hold(
        &self,
        payload: BundlePayload,
        signed: &SignedBundle,
        fetched_at: i64,
        etag: Option<String>,
    ) -> Result<Held, TrustError> {
        let status = TrustStatus {
            version: payload.version,
            issued_at: payload.issued_at,
            expires_at: payload.expires_at,
            fetched_at,
            age_secs: 0,
            expired: false,
            allowed: payload.allowed.len(),
            revoked: payload.revoked.len(),
            key_id: signed.key_id.clone(),
        };
        Ok(Held {
            payload,
            status,
            etag,
        })
    }

    /// The held bundle and its status as of `now`.
    pub fn current(&self, now: i64) -> Option<(&BundlePayload, TrustStatus)> {
        self.held.as_ref().map(|h| {
            let mut status = h.status.clone();
            status.age_secs = (now - status.fetched_at).max(0);
            status.expired = now >= status.expires_at;
            (&h.payload, status)
        })
    }

    /// The tag to fetch conditionally with: only while the held bundle is in the first
    /// half of its life. Past that, the full bundle is fetched so that an unchanged
    /// version still comes back signed with a later expiry.
    pub fn conditional_tag(&self, now: i64) -> Option<&str> {
        let h = self.held.as_ref()?;
        let half_life = h.status.issued_at + (h.status.expires_at - h.status.issued_at) / 2;
        if now < half_life {
            h.etag.as_deref()
        } else {
            None
        }
    }

    /// The console answered 304 to a conditional fetch.
    pub fn not_modified(&self) -> Result<Refreshed, TrustError> {
        match &self.held {
            Some(h) => Ok(Refreshed::NotModified {
                version: h.status.version,
            }),
            // Only a held bundle is ever fetched conditionally.
            None => Err(ConsoleError::Malformed(
                "the console answered 304 Not Modified although no bundle is held".into(),
            )
            .into()),
        }
    }

    /// Verify `signed` and keep it unless it would move the gateway backwards.
    pub fn accept(
        &mut self,
        signed: &SignedBundle,
        etag: Option<String>,
        now: i64,
    ) -> Result<Refreshed, TrustError> {
        let (payload, _) = bundle::verify(signed, &self.key)?;
        let outcome = match &self.held {
            None => Refreshed::Updated {
                from: None,
                to: payload.version,
            },
            Some(h) if payload.version < h.status.version => {
                return Err(TrustError::Rollback {
                    held: h.status.version,
                    offered: payload.version,
                })
            }
            Some(h) if payload.version == h.status.version => {
                if !same_lists(&h.payload, &payload) {
                    return Err(TrustError::Conflict {
                        version: payload.version,
                    });
                }
                if payload.expires_at <= h.status.expires_at {
                    // An older signature of the same lists: keep the later expiry.
                    return Ok(Refreshed::Renewed {
                        version: payload.version,
                        expires_at: h.status.expires_at,
                    });
                }
                Refreshed::Renewed {
                    version: payload.version,
                    expires_at: payload.expires_at,
                }
            }
            Some(h) => Refreshed::Updated {
                from: Some(h.status.version),
                to: payload.version,
            },
        };
        self.write(&Stored {
            bundle: signed.clone(),
            fetched_at: now,
            etag: etag.clone(),
        })?;
        self.held = Some(self.hold(payload, signed, now, etag)?);
        Ok(outcome)
    }

    /// Write atomically: a new file beside the old one, synced, then renamed over it.
    fn write(&self, stored: &Stored) -> Result<(), TrustError> {
        let fail = |e: &dyn std::fmt::Display| TrustError::Write {
            path: self.path.clone(),
            detail: e.to_string(),
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
        let tmp = self.path.with_extension("json.new");
        let bytes = serde_json::to_vec(stored).map_err(|e| fail(&e))?;
        let mut f = std::fs::File::create(&tmp).map_err(|e| fail(&e))?;
        f.write_all(&bytes).map_err(|e| fail(&e))?;
        f.sync_all().map_err(|e| fail(&e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| fail(&e))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

fn same_lists(a: &BundlePayload, b: &BundlePayload) -> bool {
    let sorted = |p: &BundlePayload| {
        let mut allowed = p.allowed.clone();
        allowed.sort();
        let mut revoked: Vec<(String, String, i64)> = p
            .revoked
            .iter()
            .map(|r| (r.sha256.clone(), r.reason.clone(), r.revoked_at))
            .collect();
        revoked.sort();
        let mut keys = p.revoked_keys.clone();
        keys.sort();
        (allowed, revoked, keys)
    };
    sorted(a) == sorted(b)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;

    fn signed(key: &SigningKey, version: u64, expires_at: i64, allowed: &[&str]) -> SignedBundle {
        bundle::sign(
            &BundlePayload {
                version,
                issued_at: expires_at - 100,
                expires_at,
                allowed: allowed.iter().map(|s| s.to_string()).collect(),
                revoked: vec![],
                revoked_keys: vec![],
            },
            key,
        )
        .unwrap()
    }

    #[test]
    fn never_rolled_back_never_forked_and_kept_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::random(&mut rand::rngs::OsRng);
        let mut k = TrustKeeper::open(dir.path(), *key.verifying_key()).unwrap();
        assert!(k.current(0).is_none());
        assert_eq!(
            k.accept(&signed(&key, 3, 1000, &["a"]), None, 0).unwrap(),
            Refreshed::Updated { from: None, to: 3 }
        );
        assert!(matches!(
            k.accept(&signed(&key, 2, 2000, &["a"]), None, 1),
            Err(TrustError::Rollback {
                held: 3,
                offered: 2
            })
        ));
        assert!(matches!(
            k.accept(&signed(&key, 3, 2000, &["b"]), None, 1),
            Err(TrustError::Conflict { version: 3 })
        ));
        assert_eq!(
            k.accept(&signed(&key, 3, 2000, &["a"]), None, 1).unwrap(),
            Refreshed::Renewed {
                version: 3,
                expires_at: 2000
            }
        );
        // Signed by someone else: refused, the held bundle stays.
        let other = SigningKey::random(&mut rand::rngs::OsRng);
        assert!(matches!(
            k.accept(&signed(&other, 9, 3000, &["x"]), None, 2),
            Err(TrustError::Bundle(BundleError::BadSignature))
        ));
        // A restart reads the same bundle back; expiry is judged at the given time.
        let k = TrustKeeper::open(dir.path(), *key.verifying_key()).unwrap();
        let (p, status) = k.current(1999).unwrap();
        assert_eq!((p.version, status.expired), (3, false));
        assert!(k.current(2000).unwrap().1.expired);
        // The file altered on disk: refused at start.
        let path = dir.path().join(FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut stored: Stored = serde_json::from_str(&text).unwrap();
        stored.bundle.signature = signed(&other, 3, 2000, &["a"]).signature;
        std::fs::write(&path, serde_json::to_vec(&stored).unwrap()).unwrap();
        assert!(matches!(
            TrustKeeper::open(dir.path(), *key.verifying_key()),
            Err(TrustError::Stored { .. })
        ));
    }

    #[test]
    fn conditional_only_in_the_first_half_of_a_bundles_life() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::random(&mut rand::rngs::OsRng);
        let mut k = TrustKeeper::open(dir.path(), *key.verifying_key()).unwrap();
        // issued 900, expires 1000
        k.accept(&signed(&key, 1, 1000, &[]), Some("\"v1\"".into()), 900)
            .unwrap();
        assert_eq!(k.conditional_tag(920), Some("\"v1\""));
        assert_eq!(k.conditional_tag(950), None);
    }
}
