//! The gateway's trust bundle: fetched from the console (a delta from the version
//! held when there is one), verified with the pinned key, taken only if it extends
//! the chain held, kept on disk for offline use, never rolled back. Everything the
//! gateway knows about the bundle format lives here and in
//! `cardstation_protocol::bundle`.
//!
//! On disk (DATA/trust/): `base.cstb` (a full version as signed), `delta-N.cstb`
//! (deltas taken after it, in order) and `state.json` (fetch time, tag, the highest
//! version ever accepted). The files are trusted for their signatures, not for
//! where they lie: every start replays and verifies them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use p256::ecdsa::VerifyingKey;
use serde::{Deserialize, Serialize};

use cardstation_protocol::bundle::{
    self, Advance, BundleError, Kind, Opened, TrustStatus, TrustView,
};
use cardstation_protocol::trust_lists::TrustLists;

use crate::client::ConsoleError;

const DIR: &str = "trust";
const BASE: &str = "base.cstb";
const STATE: &str = "state.json";
/// Format-1 bundle file of earlier gateways (removed on start: it cannot be read).
const OLD_FILE: &str = "trust-bundle.json";
/// Deltas held after which the next refresh takes the full bundle again.
const MAX_DELTAS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("no console key is pinned: set [console] bundle_key to the console's bundle-signing.pub.pem")]
    NoKey,
    #[error("the pinned console key: {0}")]
    Key(String),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("the stored trust bundle in {path} cannot be used: {detail}. Run `cardstation-gateway sync` to fetch a good one")]
    Stored { path: PathBuf, detail: String },
    /// The bundle is there but the record of the highest version ever accepted is not:
    /// deciding on, or fetching, without it would let an older bundle back in.
    #[error("{path} is {detail}, but a trust bundle is held beside it: the rollback floor (the highest version ever accepted) was kept in it, and without it an older bundle, one that still lists a revoked card, could be taken back. Restore {path} from a backup; or, to start over from what the console serves now, remove the whole directory {dir} and run `cardstation-gateway sync`")]
    FloorLost {
        path: PathBuf,
        dir: PathBuf,
        detail: String,
    },
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

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    fetched_at: i64,
    etag: Option<String>,
    high_water: Option<u64>,
    deltas: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Refreshed {
    Updated {
        from: Option<u64>,
        to: u64,
        /// Taken as a delta (else the full bundle was downloaded).
        delta: bool,
    },
    /// The console sent the version held again.
    Unchanged { version: u64 },
    /// The console answered 304: nothing downloaded.
    NotModified { version: u64 },
}

/// The one trust bundle a gateway decides by.
pub struct TrustKeeper {
    key: VerifyingKey,
    key_id: String,
    dir: PathBuf,
    view: Option<Arc<TrustView>>,
    state: State,
}

/// The bundle as held at one moment: what a decision judges by. Cheap to take (one
/// shared pointer), and a refresh after it does not change it.
#[derive(Clone)]
pub struct Held {
    view: Arc<TrustView>,
    fetched_at: i64,
    key_id: String,
}

impl Held {
    /// The lists and their status as of `now`.
    pub fn current(&self, now: i64) -> (&TrustLists, TrustStatus) {
        (
            &self.view.lists,
            self.view.status(self.fetched_at, now, &self.key_id),
        )
    }
}

/// The keeper shared by a daemon's decision loop and its refresher. A refresh works
/// (verifies, writes, fsyncs) under the keeper's lock; a decision only takes the last
/// published [`Held`], under a lock held for a pointer copy. So a refresh never holds
/// up a tap, and no lock is held through a card transaction.
pub struct SharedTrust {
    keeper: Mutex<TrustKeeper>,
    published: Mutex<Option<Held>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SharedTrust {
    pub fn new(keeper: TrustKeeper) -> Self {
        let held = keeper.held();
        SharedTrust {
            keeper: Mutex::new(keeper),
            published: Mutex::new(held),
        }
    }

    /// The bundle a decision made now judges by.
    pub fn held(&self) -> Option<Held> {
        lock(&self.published).clone()
    }

    /// Work on the keeper (a refresh); what it holds afterwards is published.
    pub fn update<R>(&self, work: impl FnOnce(&mut TrustKeeper) -> R) -> R {
        let mut keeper = lock(&self.keeper);
        let result = work(&mut keeper);
        *lock(&self.published) = keeper.held();
        result
    }

    /// Read the keeper (what to fetch next) without publishing anything.
    pub fn read<R>(&self, look: impl FnOnce(&TrustKeeper) -> R) -> R {
        look(&lock(&self.keeper))
    }
}

impl TrustKeeper {
    /// Open the bundle kept in `data_dir` (if any), replaying and verifying it.
    pub fn open(data_dir: &Path, key: VerifyingKey) -> Result<Self, TrustError> {
        let mut keeper = TrustKeeper::empty(data_dir, key);
        let _ = std::fs::remove_file(data_dir.join(OLD_FILE));
        let dir = keeper.dir.clone();
        let floor_lost = |detail: String| TrustError::FloorLost {
            path: dir.join(STATE),
            dir: dir.clone(),
            detail,
        };
        let base_held = keeper.dir.join(BASE).exists();
        match std::fs::read(keeper.dir.join(STATE)) {
            Ok(t) => match serde_json::from_slice(&t) {
                Ok(state) => keeper.state = state,
                Err(e) if base_held => return Err(floor_lost(format!("unreadable ({e})"))),
                Err(e) => return Err(keeper.stored(e)),
            },
            // A bundle without its state: the floor went with the state (deleted, or a
            // restore of part of the directory). Refused rather than silently lowered.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && base_held => {
                return Err(floor_lost("missing".into()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(keeper),
            Err(e) => return Err(keeper.stored(e)),
        }
        let base = match std::fs::read(keeper.dir.join(BASE)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(keeper),
            Err(e) => return Err(keeper.stored(e)),
        };
        let mut deltas = Vec::new();
        for i in 1..=keeper.state.deltas {
            let path = keeper.delta_path(i);
            deltas.push(std::fs::read(&path).map_err(|e| keeper.stored(e))?);
        }
        let view = bundle::replay(&base, &deltas, &keeper.key).map_err(|e| keeper.stored(e))?;
        if let Some(hw) = keeper.state.high_water {
            if view.header.version < hw {
                return Err(keeper.stored(format!(
                    "it holds version {}, older than version {hw} accepted before",
                    view.header.version
                )));
            }
        }
        keeper.view = Some(Arc::new(view));
        Ok(keeper)
    }

    /// No bundle held (a stored one could not be used); the next accepted one replaces
    /// it. The highest version accepted before is still honoured if it can be read.
    pub fn empty(data_dir: &Path, key: VerifyingKey) -> Self {
        let dir = data_dir.join(DIR);
        let state = std::fs::read(dir.join(STATE))
            .ok()
            .and_then(|t| serde_json::from_slice::<State>(&t).ok())
            .map(|s| State {
                high_water: s.high_water,
                ..State::default()
            })
            .unwrap_or_default();
        TrustKeeper {
            key_id: bundle::key_id(&key).unwrap_or_default(),
            key,
            dir,
            view: None,
            state,
        }
    }

    fn stored(&self, e: impl std::fmt::Display) -> TrustError {
        TrustError::Stored {
            path: self.dir.clone(),
            detail: e.to_string(),
        }
    }

    fn delta_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("delta-{i}.cstb"))
    }

    /// The bundle held now, for decisions.
    pub fn held(&self) -> Option<Held> {
        self.view.as_ref().map(|view| Held {
            view: view.clone(),
            fetched_at: self.state.fetched_at,
            key_id: self.key_id.clone(),
        })
    }

    /// The held lists and their status as of `now`.
    pub fn current(&self, now: i64) -> Option<(&TrustLists, TrustStatus)> {
        self.view
            .as_ref()
            .map(|v| (&v.lists, v.status(self.state.fetched_at, now, &self.key_id)))
    }

    /// The version to ask a delta from (none while too many deltas are held).
    pub fn since(&self) -> Option<u64> {
        self.view
            .as_ref()
            .filter(|_| self.state.deltas < MAX_DELTAS)
            .map(|v| v.header.version)
    }

    /// The tag to fetch conditionally with.
    pub fn etag(&self) -> Option<&str> {
        self.view.as_ref().and(self.state.etag.as_deref())
    }

    /// The console answered 304 to a conditional fetch.
    pub fn not_modified(
        &mut self,
        etag: Option<String>,
        now: i64,
    ) -> Result<Refreshed, TrustError> {
        let Some(v) = &self.view else {
            return Err(ConsoleError::Malformed(
                "the console answered 304 Not Modified although no bundle is held".into(),
            )
            .into());
        };
        let version = v.header.version;
        self.state.fetched_at = now;
        if etag.is_some() {
            self.state.etag = etag;
        }
        self.write_state()?;
        Ok(Refreshed::NotModified { version })
    }

    /// Verify `bytes` and keep them if they extend the chain held. `accept_reset`: an
    /// operator's confirmation of a new chain (its first 8+ hex digits).
    pub fn accept(
        &mut self,
        bytes: &[u8],
        etag: Option<String>,
        now: i64,
        accept_reset: Option<&str>,
    ) -> Result<Refreshed, TrustError> {
        let opened = bundle::open(bytes, &self.key)?;
        let kind = match &opened {
            Opened::Full(_) => Kind::Full,
            Opened::Delta(_) => Kind::Delta,
        };
        let reset = self
            .view
            .as_ref()
            .is_some_and(|v| v.header.chain != opened.header().chain);
        let from = self.view.as_ref().map(|v| v.header.version);
        match bundle::advance(
            self.view.as_deref(),
            self.state.high_water,
            opened,
            accept_reset,
        )? {
            Advance::Unchanged => {
                self.state.fetched_at = now;
                self.state.etag = etag;
                self.write_state()?;
                Ok(Refreshed::Unchanged {
                    version: from.unwrap_or(0),
                })
            }
            Advance::Advanced {
                view,
                replaces_base,
                ..
            } => {
                let to = view.header.version;
                std::fs::create_dir_all(&self.dir).map_err(|e| self.write_error(&e))?;
                if replaces_base {
                    self.write_file(BASE, bytes)?;
                    for i in 1..=self.state.deltas {
                        let _ = std::fs::remove_file(self.delta_path(i));
                    }
                    self.state.deltas = 0;
                } else {
                    let n = self.state.deltas + 1;
                    self.write_file(&format!("delta-{n}.cstb"), bytes)?;
                    self.state.deltas = n;
                }
                self.state.fetched_at = now;
                self.state.etag = etag;
                self.state.high_water = Some(if reset {
                    to
                } else {
                    self.state.high_water.unwrap_or(0).max(to)
                });
                self.write_state()?;
                self.view = Some(Arc::new(view));
                Ok(Refreshed::Updated {
                    from,
                    to,
                    delta: kind == Kind::Delta,
                })
            }
        }
    }

    fn write_error(&self, e: &dyn std::fmt::Display) -> TrustError {
        TrustError::Write {
            path: self.dir.clone(),
            detail: e.to_string(),
        }
    }

    fn write_state(&self) -> Result<(), TrustError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| self.write_error(&e))?;
        let bytes = serde_json::to_vec(&self.state).map_err(|e| self.write_error(&e))?;
        self.write_file(STATE, &bytes)
    }

    /// Write atomically: a new file beside the old one, synced, then renamed over it.
    fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), TrustError> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!("{name}.new"));
        let fail = |e: &dyn std::fmt::Display| TrustError::Write {
            path: path.clone(),
            detail: e.to_string(),
        };
        let mut f = std::fs::File::create(&tmp).map_err(|e| fail(&e))?;
        f.write_all(bytes).map_err(|e| fail(&e))?;
        f.sync_all().map_err(|e| fail(&e))?;
        std::fs::rename(&tmp, &path).map_err(|e| fail(&e))?;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use cardstation_protocol::bundle::{sign_delta, sign_full, Header, Link};
    use p256::ecdsa::SigningKey;

    fn lists(allowed: &[u8]) -> TrustLists {
        TrustLists::from_unsorted(allowed.iter().map(|&n| [n; 32]).collect(), vec![], vec![])
    }

    #[test]
    fn deltas_are_kept_across_restarts_and_forks_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::random(&mut rand::rngs::OsRng);
        let mut k = TrustKeeper::open(dir.path(), *key.verifying_key()).unwrap();
        assert!(k.current(0).is_none());
        let l1 = lists(&[1]);
        let h1 = Header::for_lists([1; 16], 1, 0, 1000, [0; 32], &l1);
        let link1 = Link {
            version: 1,
            hash: h1.hash(),
        };
        k.accept(
            &sign_full(&h1, &l1, &[link1], &key).unwrap(),
            Some("\"1\"".into()),
            0,
            None,
        )
        .unwrap();
        let l2 = lists(&[1, 2]);
        let h2 = Header::for_lists([1; 16], 2, 0, 1000, h1.hash(), &l2);
        let d = sign_delta(&h2, link1, &l1.diff(&l2), &key).unwrap();
        assert_eq!(
            k.accept(&d, None, 5, None).unwrap(),
            Refreshed::Updated {
                from: Some(1),
                to: 2,
                delta: true
            }
        );
        // A restart replays base + delta.
        let mut k = TrustKeeper::open(dir.path(), *key.verifying_key()).unwrap();
        let (l, st) = k.current(10).unwrap();
        assert!(l.is_allowed(&[2; 32]));
        assert_eq!((st.version, st.expired), (2, false));
        // The older full version: a rollback.
        assert!(matches!(
            k.accept(
                &sign_full(&h1, &l1, &[link1], &key).unwrap(),
                None,
                11,
                None
            ),
            Err(TrustError::Bundle(BundleError::Rollback { .. }))
        ));
        // Another version 2 (a restored console): a fork.
        let other = Header::for_lists([1; 16], 2, 1, 1000, h1.hash(), &lists(&[1, 3]));
        let full = sign_full(&other, &lists(&[1, 3]), &[link1], &key).unwrap();
        assert!(matches!(
            k.accept(&full, None, 12, None),
            Err(TrustError::Bundle(BundleError::Fork { version: 2, .. }))
        ));
        // state.json deleted (or unreadable) while the bundle stays: the rollback floor
        // went with it, so the gateway refuses to start rather than take v1 back.
        let state = dir.path().join(DIR).join(STATE);
        let saved = std::fs::read(&state).unwrap();
        for spoil in [None, Some(&b"{not json"[..])] {
            match spoil {
                None => std::fs::remove_file(&state).unwrap(),
                Some(bytes) => std::fs::write(&state, bytes).unwrap(),
            }
            let err = TrustKeeper::open(dir.path(), *key.verifying_key())
                .err()
                .unwrap();
            assert!(matches!(err, TrustError::FloorLost { .. }), "{err}");
            let text = err.to_string();
            assert!(
                text.contains("state.json") && text.contains("sync") && text.contains("backup"),
                "{text}"
            );
        }
        std::fs::write(&state, saved).unwrap();
        assert!(TrustKeeper::open(dir.path(), *key.verifying_key()).is_ok());
        // A delta file altered on disk: refused at start.
        std::fs::write(dir.path().join(DIR).join("delta-1.cstb"), b"CSTB").unwrap();
        assert!(matches!(
            TrustKeeper::open(dir.path(), *key.verifying_key()),
            Err(TrustError::Stored { .. })
        ));
    }

    #[test]
    fn a_decision_takes_the_held_bundle_while_a_refresh_works() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::random(&mut rand::rngs::OsRng);
        let mut k = TrustKeeper::open(dir.path(), *key.verifying_key()).unwrap();
        let l1 = lists(&[1]);
        let h1 = Header::for_lists([1; 16], 1, 0, 1000, [0; 32], &l1);
        let link1 = Link {
            version: 1,
            hash: h1.hash(),
        };
        k.accept(&sign_full(&h1, &l1, &[link1], &key).unwrap(), None, 0, None)
            .unwrap();
        let trust = std::sync::Arc::new(SharedTrust::new(k));
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (finish_tx, finish_rx) = std::sync::mpsc::channel::<()>();
        let refresher = {
            let trust = trust.clone();
            std::thread::spawn(move || {
                trust.update(|_| {
                    // A refresh as slow as a stalled disk: it holds the keeper.
                    started_tx.send(()).unwrap();
                    finish_rx.recv().unwrap();
                })
            })
        };
        started_rx.recv().unwrap();
        // Taken while the refresh still holds the keeper: no waiting for it.
        let held = trust.held().expect("bundle v1 is held");
        assert_eq!(held.current(10).1.version, 1);
        finish_tx.send(()).unwrap();
        refresher.join().unwrap();
    }
}
