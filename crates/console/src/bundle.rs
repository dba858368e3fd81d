//! The trust bundle the fleet relies on: a chain of versions, each built and signed
//! once (when the lists changed, or when the newest passed half its life), kept in
//! the database, and served from memory; deltas between versions on request.
//!
//! Several console instances on one PostgreSQL database cut versions one at a time
//! (`cut_bundle_version` refuses a version another instance added first), so every
//! instance serves the same chain.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use p256::ecdsa::SigningKey;
use rand::RngCore;
use tokio::sync::Mutex;

use cardstation_protocol::bundle::{self, Header, Link, Opened};
use cardstation_protocol::trust_lists::{
    compose, fingerprint_from_hex, short_id, Changes, ChangesWire, Revocation, TrustLists,
};

use crate::storage::{BundleState, BundleVersionRow, PublishedBundle, Store, StoreError};

/// How many versions back a delta can start, and how many the full bundle lists so
/// a receiver behind can check its history. Older receivers take the full bundle.
pub const HISTORY: u32 = 256;

/// The newest version, ready to serve.
pub struct Current {
    pub header: Header,
    pub hash: [u8; 32],
    pub lists: TrustLists,
    /// The signed full bundle, exactly as served.
    pub full: Arc<Vec<u8>>,
    source_counter: u64,
}

impl Current {
    /// `"VERSION-HASHPREFIX"`: a restored console re-using a version number with
    /// other lists never matches a tag a station holds.
    pub fn etag(&self) -> String {
        etag(self.header.version, &self.hash)
    }
}

pub fn etag(version: u64, hash: &[u8; 32]) -> String {
    format!("\"{version}-{}\"", &hex::encode(hash)[..16])
}

/// What `GET /v1/trust-bundle?since=V` answers.
pub enum DeltaAnswer {
    Delta(Arc<Vec<u8>>),
    /// V is not a version of the current chain within [`HISTORY`]: take the full bundle.
    Unavailable(String),
}

#[derive(Debug, thiserror::Error)]
pub enum BundleBuildError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the trust bundle cannot be built: {0}")]
    Build(String),
}

impl From<bundle::BundleError> for BundleBuildError {
    fn from(e: bundle::BundleError) -> Self {
        BundleBuildError::Build(e.to_string())
    }
}

struct Cache {
    current: Option<Arc<Current>>,
    /// Deltas to the current version, by starting version.
    deltas: HashMap<u64, Arc<Vec<u8>>>,
}

pub struct BundleBook {
    store: Arc<Store>,
    key: Arc<SigningKey>,
    validity_secs: i64,
    /// The site's issuing CAs (DER, sorted, distinct): when there is one, versions
    /// are revocation-only.
    authorities: Vec<Vec<u8>>,
    cache: Mutex<Cache>,
}

/// The lists of one version. With issuing CAs, a revocation-only version: the CAs,
/// one short id per revoked key (which covers every certificate of that key) or per
/// revoked certificate whose key is not among them, and the issued-up-to mark; gateways
/// accept what chains to a CA and is not revoked, so no allow-list travels.
fn lists_of(state: &BundleState, authorities: &[Vec<u8>]) -> TrustLists {
    if !authorities.is_empty() {
        let keys: std::collections::HashSet<&str> =
            state.revoked_keys.iter().map(String::as_str).collect();
        // A certificate whose key is revoked needs no id of its own.
        let uncovered = state
            .revoked
            .iter()
            .filter(|r| r.key_sha256.as_deref().is_none_or(|k| !keys.contains(k)));
        let ids = state
            .revoked_keys
            .iter()
            .chain(uncovered.map(|r| &r.sha256))
            .filter_map(|s| fingerprint_from_hex(s))
            .map(|fp| short_id(&fp))
            .collect();
        return TrustLists::revocations_only(authorities.to_vec(), ids, state.newest_recorded_at)
            .with_attested_since(state.attested_since);
    }
    let fps = |v: &[String]| v.iter().filter_map(|s| fingerprint_from_hex(s)).collect();
    TrustLists::from_unsorted(
        fps(&state.allowed),
        state
            .revoked
            .iter()
            .filter_map(|r| {
                Some(Revocation {
                    fp: fingerprint_from_hex(&r.sha256)?,
                    reason: r.reason.clone(),
                    at: r.revoked_at,
                })
            })
            .collect(),
        fps(&state.revoked_keys),
    )
    // Which allowed certificates carry a verified attestation: gateways that require
    // keys born on a card refuse the rest.
    .with_attested_unsorted(fps(&state.attested))
}

fn cbor<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, BundleBuildError> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).map_err(|e| BundleBuildError::Build(e.to_string()))?;
    Ok(out)
}

/// Changes as stored in a version row: their wire form, CBOR.
fn encode_changes(c: &Changes) -> Result<Vec<u8>, BundleBuildError> {
    cbor(&ChangesWire::from(c))
}

fn decode_changes(bytes: &[u8]) -> Result<Changes, BundleBuildError> {
    let bad = |e: String| BundleBuildError::Build(format!("a stored bundle version: {e}"));
    let w: ChangesWire = ciborium::from_reader(bytes).map_err(|e| bad(e.to_string()))?;
    Changes::try_from(w).map_err(|e| bad(e.to_string()))
}

fn decode_header(row: &BundleVersionRow) -> Result<Header, BundleBuildError> {
    ciborium::from_reader(row.header.as_slice()).map_err(|e| {
        BundleBuildError::Build(format!("stored header of version {}: {e}", row.version))
    })
}

fn hash_of(row: &BundleVersionRow) -> Result<[u8; 32], BundleBuildError> {
    row.hash.as_slice().try_into().map_err(|_| {
        BundleBuildError::Build(format!(
            "stored hash of version {} is not 32 bytes",
            row.version
        ))
    })
}

impl BundleBook {
    /// `authorities`: the site's issuing CA certificates (DER), none for card-signed
    /// certificates.
    pub fn new(
        store: Arc<Store>,
        key: Arc<SigningKey>,
        validity_secs: i64,
        mut authorities: Vec<Vec<u8>>,
    ) -> BundleBook {
        authorities.sort_unstable();
        authorities.dedup();
        BundleBook {
            store,
            key,
            validity_secs,
            authorities,
            cache: Mutex::new(Cache {
                current: None,
                deltas: HashMap::new(),
            }),
        }
    }

    /// The newest version as of `now`, cutting a new one first when the lists changed
    /// or the newest is past half its life. Warm: one cheap query.
    pub async fn current(&self, now: i64) -> Result<Arc<Current>, BundleBuildError> {
        let mut cache = self.cache.lock().await;
        let counter = self.store.bundle_version().await?;
        let latest = self.store.bundle_latest_version().await?;
        if let Some(c) = &cache.current {
            if latest == Some(c.header.version) && self.still_serves(c, counter, now) {
                return Ok(c.clone());
            }
        }
        // Another instance may have cut a version: then start from the stored head
        // (reading a million-card bundle back costs more than the query that tells).
        let head = match &cache.current {
            Some(c) if latest == Some(c.header.version) => Some(c.clone()),
            _ => self.load_head().await?,
        };
        if let Some(h) = head.as_ref().filter(|h| self.still_serves(h, counter, now)) {
            return Ok(self.install(&mut cache, h.clone()));
        }
        let state = self.store.bundle_state().await?;
        // The counter read first may predate the head loaded after it (another
        // instance wrote and cut in between): judged by the state read now, the head
        // may already hold these lists, and a second version of them would be a step
        // with no change.
        if let Some(h) = head
            .as_ref()
            .filter(|h| self.still_serves(h, state.version, now))
        {
            return Ok(self.install(&mut cache, h.clone()));
        }
        let lists = lists_of(&state, &self.authorities);
        let next = self
            .cut(head.as_deref(), lists, state.version, now, None)
            .await?;
        Ok(self.install(&mut cache, next))
    }

    /// Whether `c` may be served for the records as of change `counter`: built from
    /// them (or later ones), not past half its life, and naming exactly the issuing
    /// CAs configured here (a site that took up or changed its CA needs a new
    /// version even when no record changed).
    fn still_serves(&self, c: &Current, counter: u64, now: i64) -> bool {
        let cas = c.lists.authority().map_or(&[][..], |a| &a.cas[..]);
        c.source_counter >= counter && now < half_life(&c.header) && cas == self.authorities
    }

    fn install(&self, cache: &mut Cache, c: Arc<Current>) -> Arc<Current> {
        let changed = cache
            .current
            .as_ref()
            .is_none_or(|old| old.header.version != c.header.version);
        if changed {
            cache.deltas.clear();
        }
        cache.current = Some(c.clone());
        c
    }

    async fn load_head(&self) -> Result<Option<Arc<Current>>, BundleBuildError> {
        let Some(PublishedBundle { row, full }) = self.store.bundle_head().await? else {
            return Ok(None);
        };
        let key = *self.key.verifying_key();
        let Opened::Full(f) = bundle::open(&full, &key)? else {
            return Err(BundleBuildError::Build(
                "the stored published bundle is not a full bundle".into(),
            ));
        };
        if f.header.hash().as_slice() != row.hash.as_slice() {
            return Err(BundleBuildError::Build(format!(
                "the stored published bundle does not match version {}",
                row.version
            )));
        }
        Ok(Some(Arc::new(Current {
            hash: f.header.hash(),
            header: f.header,
            lists: f.lists,
            full: Arc::new(full),
            source_counter: row.source_counter,
        })))
    }

    /// Sign and store the version after `prev` holding `lists`; a reset (`new_chain`)
    /// starts a chain of its own. Returns what is then the newest version (another
    /// instance's, if it cut one first).
    async fn cut(
        &self,
        prev: Option<&Current>,
        lists: TrustLists,
        counter: u64,
        now: i64,
        new_chain: Option<u64>,
    ) -> Result<Arc<Current>, BundleBuildError> {
        let (chain, version, prev_hash, changes) = match (prev, new_chain) {
            (Some(p), None) => (
                p.header.chain,
                (p.header.version + 1).max(counter),
                p.hash,
                Some(p.lists.diff(&lists)),
            ),
            (p, min_version) => {
                let mut chain = [0u8; 16];
                rand::rngs::OsRng.fill_bytes(&mut chain);
                let after = p.map_or(0, |p| p.header.version + 1);
                (
                    chain,
                    after.max(counter).max(min_version.unwrap_or(0)).max(1),
                    [0u8; 32],
                    None,
                )
            }
        };
        let header = Header::for_lists(
            chain,
            version,
            now,
            now + self.validity_secs,
            prev_hash,
            &lists,
        );
        let hash = header.hash();
        let mut ancestors = Vec::new();
        if new_chain.is_none() {
            let from = version.saturating_sub(u64::from(HISTORY));
            for row in self.store.bundle_history(from, HISTORY).await? {
                if decode_header(&row)?.chain == chain {
                    ancestors.push(Link {
                        version: row.version,
                        hash: hash_of(&row)?,
                    });
                }
            }
        }
        ancestors.push(Link { version, hash });
        let full = bundle::sign_full(&header, &lists, &ancestors, &self.key)?;
        let row = BundleVersionRow {
            version,
            header: cbor(&header)?,
            hash: hash.to_vec(),
            changes: changes.as_ref().map(encode_changes).transpose()?,
            source_counter: counter,
            created_at: now,
        };
        // Stored only as the successor of the version this one was built on: a version
        // cut meanwhile elsewhere wins, and this instance serves it instead (no race
        // can start a second chain).
        let after = prev.map(|p| p.header.version);
        if self.store.cut_bundle_version(&row, &full, after).await? {
            tracing::info!(
                version,
                allowed = header.allowed,
                revoked = header.revoked,
                "trust bundle version signed"
            );
            return Ok(Arc::new(Current {
                header,
                hash,
                lists,
                full: Arc::new(full),
                source_counter: counter,
            }));
        }
        // Another instance was first: serve its version.
        self.load_head()
            .await?
            .ok_or_else(|| BundleBuildError::Build("the newest bundle version vanished".into()))
    }

    /// The delta from version `since` to the current one (signed once per pair).
    pub async fn delta(&self, since: u64, now: i64) -> Result<DeltaAnswer, BundleBuildError> {
        let current = self.current(now).await?;
        if let Some(d) = self.cache.lock().await.deltas.get(&since) {
            return Ok(DeltaAnswer::Delta(d.clone()));
        }
        let unavailable = |why: String| Ok(DeltaAnswer::Unavailable(why));
        if since > current.header.version {
            return unavailable(format!(
                "version {since} is newer than this console's newest ({}); fetch the full bundle",
                current.header.version
            ));
        }
        if current.header.version - since > u64::from(HISTORY) {
            return unavailable(format!(
                "version {since} is more than {HISTORY} versions old; fetch the full bundle"
            ));
        }
        let rows = self.store.bundle_history(since, HISTORY + 1).await?;
        let Some(first) = rows.first().filter(|r| r.version == since) else {
            return unavailable(format!("no version {since} on this console"));
        };
        if decode_header(first)?.chain != current.header.chain {
            return unavailable(format!(
                "version {since} belongs to an earlier chain (the console was reset)"
            ));
        }
        let mut changes = Changes::default();
        for row in rows
            .iter()
            .skip(1)
            .take_while(|r| r.version <= current.header.version)
        {
            let Some(c) = &row.changes else {
                return unavailable(format!("version {} starts a new chain", row.version));
            };
            changes = compose(&changes, &decode_changes(c)?);
        }
        let from = Link {
            version: since,
            hash: hash_of(first)?,
        };
        let signed = Arc::new(bundle::sign_delta(
            &current.header,
            from,
            &changes,
            &self.key,
        )?);
        let mut cache = self.cache.lock().await;
        if cache
            .current
            .as_ref()
            .is_some_and(|c| c.header.version == current.header.version)
        {
            cache.deltas.insert(since, signed.clone());
        }
        Ok(DeltaAnswer::Delta(signed))
    }

    /// Start a new chain (the administrator's explicit reset after a restore): the
    /// next version is at least `min_version`. Stations and gateways take it only
    /// with an operator's confirmation.
    pub async fn reset(
        &self,
        now: i64,
        min_version: Option<u64>,
    ) -> Result<Arc<Current>, BundleBuildError> {
        let mut cache = self.cache.lock().await;
        let head = self.load_head().await?;
        let state = self.store.bundle_state().await?;
        let next = self
            .cut(
                head.as_deref(),
                lists_of(&state, &self.authorities),
                state.version,
                now,
                Some(min_version.unwrap_or(0)),
            )
            .await?;
        Ok(self.install(&mut cache, next))
    }

    /// Write the current bundle and the deltas to it from the last [`HISTORY`]
    /// versions as files any web server can serve (see docs/BUNDLE-FORMAT.md):
    /// `DIR/trust-bundle.cstb`, `DIR/deltas/V.cstb`.
    pub async fn publish(&self, dir: &Path, now: i64) -> Result<PublishReport, BundleBuildError> {
        let current = self.current(now).await?;
        let deltas_dir = dir.join("deltas");
        let io = |e: std::io::Error, p: &Path| {
            BundleBuildError::Build(format!("cannot write {}: {e}", p.display()))
        };
        std::fs::create_dir_all(&deltas_dir).map_err(|e| io(e, &deltas_dir))?;
        let from = current.header.version.saturating_sub(u64::from(HISTORY));
        let mut written = Vec::new();
        for row in self.store.bundle_history(from, HISTORY + 1).await? {
            if let DeltaAnswer::Delta(d) = self.delta(row.version, now).await? {
                let path = deltas_dir.join(format!("{}.cstb", row.version));
                write_atomically(&path, &d).map_err(|e| io(e, &path))?;
                written.push(row.version);
            }
        }
        // Deltas to an older current version would mislead: remove them.
        if let Ok(entries) = std::fs::read_dir(&deltas_dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let v = name
                    .strip_suffix(".cstb")
                    .and_then(|v| v.parse::<u64>().ok());
                if v.is_some_and(|v| !written.contains(&v)) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        // The full bundle last: a reader sees deltas to it as soon as it exists.
        let full_path = dir.join("trust-bundle.cstb");
        write_atomically(&full_path, &current.full).map_err(|e| io(e, &full_path))?;
        Ok(PublishReport {
            version: current.header.version,
            full_bytes: current.full.len(),
            deltas: written.len(),
        })
    }
}

#[derive(Debug, serde::Serialize)]
pub struct PublishReport {
    pub version: u64,
    pub full_bytes: usize,
    pub deltas: usize,
}

fn half_life(h: &Header) -> i64 {
    h.issued_at + (h.expires_at - h.issued_at) / 2
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("cstb.new");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
