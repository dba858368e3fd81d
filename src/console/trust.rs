//! The station's copy of the console's trust bundle: fetched (a delta from the
//! version held when the console has one, else the full bundle), verified with the
//! pinned console key, taken only if it extends the chain held, kept for offline
//! checks.
//!
//! Only the signed bytes are trusted. What is held is replayed from them (full
//! version + deltas, each verified again) whenever the stored rows change, and kept
//! in memory as sorted lists in between, so a check is a binary search. The station
//! never judges by a version older than the highest it accepted: a deleted or edited
//! row is "damaged", which a spot check reports as TRUST UNKNOWN, never as PASS.

use std::path::Path;
use std::sync::{Arc, Mutex};

use p256::ecdsa::VerifyingKey;
use serde::Serialize;

use crate::error_code::{Coded, ErrorCode};
use crate::store::{HeldGeneration, Store, StoreError};

use super::client::{ConsoleClient, ConsoleError, Fetched};
pub use cardstation_protocol::bundle::TrustStatus;
use cardstation_protocol::bundle::{self, Advance, BundleError, Kind, TrustView};

/// Held deltas after which the next sync takes the full bundle again (keeps the
/// replay after a change short).
const MAX_DELTAS: usize = 32;

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
    #[error("the stored trust bundle is damaged — run trust sync ({0})")]
    Damaged(String),
}

impl Coded for TrustError {
    fn code(&self) -> ErrorCode {
        match self {
            TrustError::Console(e) => e.code(),
            TrustError::Bundle(BundleError::BadSignature) => ErrorCode::BundleBadSignature,
            TrustError::Bundle(BundleError::Rollback { .. }) => ErrorCode::BundleRollback,
            TrustError::Bundle(BundleError::Fork { .. }) => ErrorCode::BundleFork,
            TrustError::Bundle(BundleError::ResetOffered { .. }) => ErrorCode::BundleResetOffered,
            TrustError::Bundle(_) => ErrorCode::BundleMalformed,
            TrustError::Store(e) => e.code(),
            TrustError::NoKey => ErrorCode::BundleKeyNotSet,
            TrustError::Damaged(_) => ErrorCode::BundleDamaged,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum BundleOutcome {
    Updated {
        from: Option<u64>,
        to: u64,
        /// Taken as a delta (else the full bundle was downloaded).
        delta: bool,
        /// False only when this station was so far behind that the console no longer
        /// lists its version, so continuity could not be checked.
        history_checked: bool,
    },
    Unchanged {
        version: u64,
    },
}

/// The bundle the station judges by: the verified view and what follows from it.
#[derive(Debug, Clone)]
pub struct HeldBundle {
    pub view: Arc<TrustView>,
    pub status: TrustStatus,
}

pub fn load_key(path: Option<&Path>) -> Result<VerifyingKey, TrustError> {
    let path = path.ok_or(TrustError::NoKey)?;
    let pem = std::fs::read_to_string(path)
        .map_err(|e| BundleError::Key(format!("cannot read {}: {e}", path.display())))?;
    Ok(bundle::verifying_key_from_pem(&pem)?)
}

/// Fetch, verify and store the console's current bundle.
pub fn sync(
    store: &Store,
    client: &ConsoleClient,
    key: &VerifyingKey,
    now: i64,
) -> Result<BundleOutcome, TrustError> {
    sync_accepting(store, client, key, now, None)
}

/// [`sync`], taking a new chain the operator confirmed (`accept_reset`: the first 8
/// or more hex digits of its id, as the console administrator announced it).
pub fn sync_accepting(
    store: &Store,
    client: &ConsoleClient,
    key: &VerifyingKey,
    now: i64,
    accept_reset: Option<&str>,
) -> Result<BundleOutcome, TrustError> {
    let held = match held_view(store, key) {
        Ok(h) => h,
        Err(TrustError::Damaged(_)) => None,
        Err(e) => return Err(e),
    };
    let (_, tag) = store.bundle_fetch_mark()?;
    let deltas = store.held_rows()?.len().saturating_sub(1);
    let since = held
        .as_ref()
        .filter(|_| deltas < MAX_DELTAS)
        .map(|v| v.header.version);
    let tag = held.as_ref().and(tag);
    let fetched = client.trust_bundle(since, tag.as_deref())?;
    match accept(store, held.as_deref(), fetched, key, now, accept_reset) {
        // A delta that does not fit what is held: take the full bundle instead.
        Err(TrustError::Bundle(BundleError::DeltaBase { .. } | BundleError::DeltaMismatch(_)))
            if since.is_some() =>
        {
            let fetched = client.trust_bundle(None, None)?;
            accept(store, held.as_deref(), fetched, key, now, accept_reset)
        }
        other => other,
    }
}

/// Take what the console answered, or refuse it.
pub fn accept(
    store: &Store,
    held: Option<&TrustView>,
    fetched: Fetched,
    key: &VerifyingKey,
    now: i64,
    accept_reset: Option<&str>,
) -> Result<BundleOutcome, TrustError> {
    let (bytes, tag) = match fetched {
        Fetched::NotModified { etag } => {
            let Some(held) = held else {
                return Err(ConsoleError::Malformed(
                    "the console answered 304 Not Modified although no bundle is held".into(),
                )
                .into());
            };
            store.touch_bundle(now, etag.as_deref())?;
            return Ok(BundleOutcome::Unchanged {
                version: held.header.version,
            });
        }
        Fetched::Bundle { bytes, etag } => (bytes, etag),
    };
    let opened = bundle::open(&bytes, key)?;
    let kind = match &opened {
        bundle::Opened::Full(_) => Kind::Full,
        bundle::Opened::Delta(_) => Kind::Delta,
    };
    let reset = held.is_some_and(|h| h.header.chain != opened.header().chain);
    let floor = store.bundle_high_water()?;
    match bundle::advance(held, floor, opened, accept_reset)? {
        Advance::Unchanged => {
            store.touch_bundle(now, tag.as_deref())?;
            Ok(BundleOutcome::Unchanged {
                version: held.map_or(0, |h| h.header.version),
            })
        }
        Advance::Advanced {
            view,
            replaces_base,
            history_checked,
        } => {
            let to = view.header.version;
            let from = held.map(|h| h.header.version);
            if replaces_base {
                let below = floor.is_some_and(|f| to < f);
                store.hold_full(to, &bytes, now, tag.as_deref(), reset || below)?;
            } else if !store.hold_delta(from.unwrap_or(0), to, &bytes, now, tag.as_deref())? {
                // Another station process moved on meanwhile; what it stored stands.
                return Ok(BundleOutcome::Unchanged { version: to });
            }
            remember(store, Arc::new(view));
            Ok(BundleOutcome::Updated {
                from: from.or(floor),
                to,
                delta: kind == Kind::Delta,
                history_checked,
            })
        }
    }
}

/// The verified view of what is stored, from memory while the rows are unchanged.
type Cached = (String, HeldGeneration, Arc<TrustView>);
static CACHE: Mutex<Option<Cached>> = Mutex::new(None);

fn remember(store: &Store, view: Arc<TrustView>) {
    if let (Ok(id), Ok(generation)) = (store.database_id(), store.held_generation()) {
        if let Ok(mut c) = CACHE.lock() {
            *c = Some((id, generation, view));
        }
    }
}

/// The held view: `Ok(None)` when the station never accepted a bundle (or only
/// format-1 ones, before this build); `Err(Damaged)` when what is stored cannot be
/// relied on.
fn held_view(store: &Store, key: &VerifyingKey) -> Result<Option<Arc<TrustView>>, TrustError> {
    let id = store.database_id()?;
    let generation = store.held_generation()?;
    if let Ok(c) = CACHE.lock() {
        if let Some((cid, cgen, view)) = c.as_ref() {
            if *cid == id && *cgen == generation {
                return Ok(Some(view.clone()));
            }
        }
    }
    let high_water = store.bundle_high_water()?;
    let rows = store.held_rows()?;
    let Some((base, deltas)) = rows.split_first() else {
        if store.bundle_format_upgrade_pending()? {
            return Ok(None);
        }
        return match high_water {
            Some(v) => Err(TrustError::Damaged(format!(
                "version {v}, the newest this station accepted, is no longer stored"
            ))),
            None => Ok(None),
        };
    };
    if base.kind != "full" || deltas.iter().any(|d| d.kind != "delta") {
        return Err(TrustError::Damaged(
            "the stored rows are not one full version followed by deltas".into(),
        ));
    }
    let delta_bytes: Vec<Vec<u8>> = deltas.iter().map(|d| d.bytes.clone()).collect();
    let view = bundle::replay(&base.bytes, &delta_bytes, key).map_err(|e| {
        TrustError::Damaged(format!(
            "the stored version {} does not verify: {e}",
            rows.last().map_or(0, |r| r.version)
        ))
    })?;
    let last = rows.last().map_or(0, |r| r.version);
    if view.header.version != last {
        return Err(TrustError::Damaged(format!(
            "the stored version {last} was edited: the signed bytes say version {}",
            view.header.version
        )));
    }
    match high_water {
        None => {
            return Err(TrustError::Damaged(
                "the record of the newest version accepted is missing".into(),
            ))
        }
        Some(v) if view.header.version < v => {
            return Err(TrustError::Damaged(format!(
                "only version {} is stored, older than version {v} this station accepted",
                view.header.version
            )))
        }
        Some(_) => {}
    }
    let view = Arc::new(view);
    if let Ok(mut c) = CACHE.lock() {
        *c = Some((id, generation, view.clone()));
    }
    Ok(Some(view))
}

/// The stored bundle, verified (see [`held_view`]), with its status as of `now`.
pub fn held(store: &Store, key: &VerifyingKey, now: i64) -> Result<Option<HeldBundle>, TrustError> {
    let Some(view) = held_view(store, key)? else {
        return Ok(None);
    };
    let (fetched_at, _) = store.bundle_fetch_mark()?;
    let key_id = bundle::key_id(key)?;
    let status = view.status(fetched_at.unwrap_or(0), now, &key_id);
    Ok(Some(HeldBundle { view, status }))
}

/// The held view (see [`held`]).
pub fn current(store: &Store, key: &VerifyingKey) -> Result<Option<Arc<TrustView>>, TrustError> {
    held_view(store, key)
}

/// The held bundle's status (see [`held`]).
pub fn status(
    store: &Store,
    key: &VerifyingKey,
    now: i64,
) -> Result<Option<TrustStatus>, TrustError> {
    Ok(held(store, key, now)?.map(|h| h.status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cardstation_protocol::bundle::{sign_full, Header, Link};
    use cardstation_protocol::trust_lists::TrustLists;
    use p256::ecdsa::SigningKey;

    fn full(key: &SigningKey, chain: u8, version: u64, issued_at: i64, allowed: &[u8]) -> Vec<u8> {
        let lists =
            TrustLists::from_unsorted(allowed.iter().map(|&n| [n; 32]).collect(), vec![], vec![]);
        let h = Header::for_lists(
            [chain; 16],
            version,
            issued_at,
            issued_at + 100,
            [0; 32],
            &lists,
        );
        // Every test version lists itself only: a held older one counts as too far behind.
        sign_full(
            &h,
            &lists,
            &[Link {
                version,
                hash: h.hash(),
            }],
            key,
        )
        .unwrap()
    }

    fn take(
        store: &Store,
        bytes: Vec<u8>,
        vk: &VerifyingKey,
        now: i64,
    ) -> Result<BundleOutcome, TrustError> {
        let held = held_view(store, vk).ok().flatten();
        accept(
            store,
            held.as_deref(),
            Fetched::Bundle { bytes, etag: None },
            vk,
            now,
            None,
        )
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
        take(&store, full(&key, 1, 1, 100, &[1]), &vk, 100).unwrap();
        take(&store, full(&key, 1, 2, 100, &[1, 2]), &vk, 100).unwrap();
        let st = status(&store, &vk, 300).unwrap().unwrap();
        assert!(st.expired);
        assert_eq!((st.version, st.allowed), (2, 2));

        // Rows relabelled, swapped or deleted are noticed, never judged by.
        raw.execute("UPDATE trust_held SET version = 7", [])
            .unwrap();
        assert!(damaged(&store, &vk, 300).contains("edited"));
        raw.execute("UPDATE trust_held SET version = 2, bytes = x'00'", [])
            .unwrap();
        assert!(damaged(&store, &vk, 300).contains("does not verify"));
        raw.execute("DELETE FROM trust_held", []).unwrap();
        assert!(damaged(&store, &vk, 300).contains("no longer stored"));
        // Nor may the console hand back the older version afterwards.
        assert!(matches!(
            take(&store, full(&key, 1, 1, 260, &[1]), &vk, 260),
            Err(TrustError::Bundle(BundleError::Rollback {
                held: 2,
                offered: 1
            }))
        ));
        take(&store, full(&key, 1, 3, 260, &[1, 2]), &vk, 260).unwrap();
        assert_eq!(status(&store, &vk, 300).unwrap().unwrap().version, 3);

        // Signed by someone else: refused, the held bundle stays.
        let other = SigningKey::random(&mut rand::rngs::OsRng);
        assert!(matches!(
            take(&store, full(&other, 1, 9, 300, &[]), &vk, 300),
            Err(TrustError::Bundle(BundleError::BadSignature))
        ));
        // Another chain: taken only when confirmed.
        let held = held_view(&store, &vk).unwrap();
        let reset = || Fetched::Bundle {
            bytes: full(&key, 2, 4, 300, &[]),
            etag: None,
        };
        assert!(matches!(
            accept(&store, held.as_deref(), reset(), &vk, 300, None),
            Err(TrustError::Bundle(BundleError::ResetOffered {
                version: 4,
                ..
            }))
        ));
        accept(&store, held.as_deref(), reset(), &vk, 300, Some("02020202")).unwrap();
        assert_eq!(status(&store, &vk, 300).unwrap().unwrap().allowed, 0);
    }
}
