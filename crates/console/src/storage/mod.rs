//! The console's storage seam: one interface, two implementations. SQLite (one
//! file in the data directory, the default) for a desk or a small site;
//! PostgreSQL for a site that runs several console instances on one database.
//!
//! Rules every implementation keeps:
//! - every change to what the trust bundle says (a new certificate, a revocation)
//!   raises the change counter (`bundle_version`) by one in the same transaction,
//!   and writers are serialized by the database itself (SQLite's write lock,
//!   PostgreSQL's advisory lock), so a counter value names exactly one content,
//!   whichever instance asks; the signed versions built from it are rows of
//!   `bundle_versions`, added by one instance at a time (crates/console/src/bundle.rs);
//! - the schema is versioned; a database newer than this build is refused.

mod pg_tls;
mod postgres;
mod postgres_bundle;
pub mod search;
mod sqlite;
mod sqlite_bundle;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use cardstation_protocol::messages::{
    AuditAnchor, AuditHead, CertificateRecord, Decision, EventsAccepted, GatewayEvent,
    RecordedEvent,
};

pub use postgres::PostgresStore;
pub use search::Search;
pub use sqlite::SqliteStore;

/// Where the console keeps its records.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    /// A `postgres://` URL (or key=value connection string).
    Postgres(String),
}

impl Database {
    /// `sqlite:PATH`, a `postgres://…` / `postgresql://…` URL, or a plain path (SQLite).
    pub fn parse(s: &str) -> Result<Database, StoreError> {
        let s = s.trim();
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Database::Postgres(s.to_string()));
        }
        if let Some(path) = s.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(StoreError::Settings("sqlite: needs a file path".into()));
            }
            return Ok(Database::Sqlite(PathBuf::from(path)));
        }
        if s.is_empty() || s.contains("://") {
            return Err(StoreError::Settings(format!(
                "unknown database {:?}: use sqlite:PATH or postgres://USER@HOST:PORT/NAME",
                redact(s)
            )));
        }
        Ok(Database::Sqlite(PathBuf::from(s)))
    }

    /// The default: `console.db` in the data directory.
    pub fn default_in(data: &Path) -> Database {
        Database::Sqlite(data.join("console.db"))
    }
}

/// Shown in logs and errors: never the password.
impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            Database::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`; `password=…` likewise.
fn redact(s: &str) -> String {
    if let Some((scheme, rest)) = s.split_once("://") {
        let (auth, tail) = match rest.find('@') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => return s.to_string(),
        };
        let auth = match auth.split_once(':') {
            Some((user, _)) => format!("{user}:***"),
            None => auth.to_string(),
        };
        let tail = redact_param(tail);
        return format!("{scheme}://{auth}{tail}");
    }
    redact_param(s)
}

fn redact_param(s: &str) -> String {
    s.split(['&', ' ', '?'])
        .filter(|p| p.to_ascii_lowercase().starts_with("password="))
        .fold(s.to_string(), |acc, p| acc.replace(p, "password=***"))
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached now (down, restarting, pool exhausted): try again.
    #[error("the console database is unavailable: {0}")]
    Unavailable(String),
    #[error("console database: {0}")]
    Failed(String),
    #[error("the console database has schema version {found}, newer than this console knows ({known}). Run the cardstation-console that wrote it, or a newer one")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("{0}")]
    Settings(String),
    #[error("the target database already holds {0} certificates; migrate only into an empty console database")]
    NotEmpty(i64),
    /// A request that contradicts what is stored (e.g. a station name already in use).
    #[error("{0}")]
    Conflict(String),
}

/// A certificate the console has checked and is about to store.
#[derive(Debug, Clone)]
pub struct NewCertificate {
    pub sha256: String,
    pub pem: String,
    pub subject: String,
    pub not_after: i64,
    pub card_serial: Option<u32>,
    pub chuid_guid: Option<String>,
    pub slot: Option<String>,
    pub label: Option<String>,
    pub operator: String,
    /// The station that uploaded it: the name bound to its verified client certificate.
    pub station_id: String,
    pub uploaded_at: i64,
    /// SHA-256 of the SubjectPublicKeyInfo: a revoked key stays revoked under any certificate.
    pub key_sha256: String,
}

/// What an upload did.
pub enum Stored {
    Created(CertificateRecord),
    Existing(CertificateRecord),
    /// The certificate's key was revoked (under this or another certificate).
    KeyRevoked {
        revoked_at: i64,
    },
}

/// What a revocation did.
#[allow(clippy::large_enum_variant)] // returned once per request, never stored
pub enum Revoked {
    /// Revoked now, or already revoked (the first reason and time are kept).
    Done(CertificateRecord),
    NotFound,
    /// The station revoked `limit` certificates in the last hour already.
    RateLimited {
        limit: u32,
    },
}

/// Who does something: a station (by the name in its verified certificate) or the
/// console administrator at the console host.
pub const ADMIN: &str = "admin";

/// One issued station credential.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StationRow {
    pub name: String,
    /// SHA-256 of the station's client certificate (DER).
    pub cert_sha256: String,
    pub issued_at: i64,
    pub not_after: i64,
    pub revoked_at: Option<i64>,
}

/// One row of the console's hash-chained audit trail.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
    /// Hash of the previous row ("" for the first), and of this one.
    pub prev: String,
    pub hash: String,
}

/// The hash that chains audit rows: SHA-256 over the previous hash and this row's fields.
pub fn audit_hash(
    prev: &str,
    seq: i64,
    at: i64,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> String {
    let fields = serde_json::json!([prev, seq, at, actor, action, subject, detail]).to_string();
    hex::encode(Sha256::digest(fields.as_bytes()))
}

/// Check an audit trail: each row's hash is right and names the row before it.
/// The first broken row, with what is wrong.
pub fn verify_audit(rows: &[AuditRow]) -> Result<usize, String> {
    let mut prev = String::new();
    for (i, r) in rows.iter().enumerate() {
        if r.seq != i as i64 + 1 {
            return Err(format!(
                "row {} is missing or out of order (found {})",
                i + 1,
                r.seq
            ));
        }
        if r.prev != prev {
            return Err(format!(
                "row {} does not follow row {}: the chain is broken",
                r.seq,
                r.seq - 1
            ));
        }
        let expect = audit_hash(
            &r.prev, r.seq, r.at, &r.actor, &r.action, &r.subject, &r.detail,
        );
        if r.hash != expect {
            return Err(format!(
                "row {} was changed after it was written (its hash does not match)",
                r.seq
            ));
        }
        prev = r.hash.clone();
    }
    Ok(rows.len())
}

/// A revoked public key (what keeps it from coming back under a new certificate).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RevokedKey {
    pub key_sha256: String,
    pub cert_sha256: String,
    pub revoked_at: i64,
    pub revoked_by: String,
}

/// One revoked certificate, as the bundle lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    pub sha256: String,
    pub reason: String,
    pub revoked_at: i64,
}

/// What a trust bundle says at one version. The lists come in no particular order
/// (sorting a million fingerprints in memory is cheaper than reading them in index
/// order); the bundle sorts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleState {
    pub version: u64,
    pub allowed: Vec<String>,
    pub revoked: Vec<RevokedEntry>,
    /// SHA-256 of the SubjectPublicKeyInfo of every revoked key.
    pub revoked_keys: Vec<String>,
}

/// One version of the signed trust-bundle chain, as stored. Rows are never changed;
/// a new version is a new row.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BundleVersionRow {
    pub version: u64,
    /// The version's header (CBOR, as signed) and its hash.
    pub header: Vec<u8>,
    pub hash: Vec<u8>,
    /// The change from the previous version (CBOR); `None` for the first of a chain.
    pub changes: Option<Vec<u8>>,
    /// The certificate change counter this version was built at.
    pub source_counter: u64,
    pub created_at: i64,
}

/// The newest version and its signed full bundle (what is served until the next).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedBundle {
    pub row: BundleVersionRow,
    pub full: Vec<u8>,
}

/// One stored certificate, complete (what `migrate` moves).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FullRecord {
    pub pem: String,
    pub record: CertificateRecord,
    pub key_sha256: Option<String>,
    pub revoked_by: Option<String>,
}

/// Everything a console database holds, each part in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub bundle_version: u64,
    pub records: Vec<FullRecord>,
    pub stations: Vec<StationRow>,
    pub revoked_keys: Vec<RevokedKey>,
    pub audit: Vec<AuditRow>,
    /// The trust-bundle chain, oldest first, and the bundle being served: moved
    /// so that stations and gateways see the same chain after a migration.
    pub bundle_chain: Vec<BundleVersionRow>,
    pub bundle_published: Option<Vec<u8>>,
    /// Gateway credentials, by certificate fingerprint.
    pub gateways: Vec<GatewayRow>,
    /// Gateway events, by gateway and id.
    pub events: Vec<RecordedEvent>,
    /// The latest audit chain head of each station, by station.
    pub anchors: Vec<StationAnchor>,
}

impl Snapshot {
    /// SHA-256 over the bundle version and every record (PEM and all fields), in order:
    /// equal on both sides of a migration exactly when nothing was lost or changed.
    pub fn digest(&self) -> Result<String, StoreError> {
        let mut h = Sha256::new();
        h.update(self.bundle_version.to_be_bytes());
        let mut line = |v: serde_json::Result<Vec<u8>>| -> Result<(), StoreError> {
            let v = v.map_err(|e| StoreError::Failed(e.to_string()))?;
            h.update((v.len() as u64).to_be_bytes());
            h.update(&v);
            Ok(())
        };
        for r in &self.records {
            line(serde_json::to_vec(r))?;
        }
        for r in &self.stations {
            line(serde_json::to_vec(r))?;
        }
        for r in &self.revoked_keys {
            line(serde_json::to_vec(r))?;
        }
        for r in &self.audit {
            line(serde_json::to_vec(r))?;
        }
        for r in &self.bundle_chain {
            line(serde_json::to_vec(r))?;
        }
        if let Some(full) = &self.bundle_published {
            line(Ok(full.clone()))?;
        }
        for r in &self.gateways {
            line(serde_json::to_vec(r))?;
        }
        for r in &self.events {
            line(serde_json::to_vec(r))?;
        }
        for r in &self.anchors {
            line(serde_json::to_vec(r))?;
        }
        Ok(hex::encode(h.finalize()))
    }
}

/// The console's storage. Implementations are shared by every request of one
/// process (and, for PostgreSQL, by several processes on one database).
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Store a certificate unless its fingerprint is known (then return the existing record).
    async fn upload(&self, cert: NewCertificate) -> Result<Stored, StoreError>;
    async fn get(&self, sha256: &str) -> Result<Option<CertificateRecord>, StoreError>;
    /// Revoke (the certificate and its key) for `actor`; revoking again keeps the first
    /// reason and time. A station past `limit_per_hour` revocations is refused.
    async fn revoke(
        &self,
        sha256: &str,
        reason: &str,
        now: i64,
        actor: &str,
        limit_per_hour: Option<u32>,
    ) -> Result<Revoked, StoreError>;
    /// Undo a revocation (certificate and key): the administrator's alone.
    async fn reinstate(
        &self,
        sha256: &str,
        now: i64,
    ) -> Result<Option<CertificateRecord>, StoreError>;
    /// Undo every revocation `station` made at or after `since`; the fingerprints.
    async fn reinstate_by_station(
        &self,
        station: &str,
        since: i64,
        now: i64,
    ) -> Result<Vec<String>, StoreError>;
    /// Record a newly issued station credential; refused while `name` has an active one.
    /// `actor` is who issued it (the administrator, or the first start).
    async fn add_station(&self, station: &StationRow, actor: &str) -> Result<(), StoreError>;
    async fn stations(&self) -> Result<Vec<StationRow>, StoreError>;
    /// Revoke every credential of `name`; how many were active.
    async fn revoke_station(&self, name: &str, now: i64) -> Result<usize, StoreError>;
    /// The station whose client certificate has this fingerprint.
    async fn station_by_cert(&self, cert_sha256: &str) -> Result<Option<StationRow>, StoreError>;
    async fn audit(&self) -> Result<Vec<AuditRow>, StoreError>;
    /// The current bundle version alone (cheap: decides whether a cached bundle is current).
    async fn bundle_version(&self) -> Result<u64, StoreError>;
    /// The bundle content, read in one snapshot so it matches its version.
    async fn bundle_state(&self) -> Result<BundleState, StoreError>;
    async fn count(&self) -> Result<i64, StoreError>;
    /// Everything, read in one snapshot.
    async fn snapshot(&self) -> Result<Snapshot, StoreError>;
    /// Fill an empty database with `snapshot` (everything and the bundle version) in one transaction.
    async fn import(&self, snapshot: &Snapshot) -> Result<(), StoreError>;

    // The trust-bundle chain (crates/console/src/bundle.rs builds and signs it).
    /// The newest version and the full bundle signed for it.
    async fn bundle_head(&self) -> Result<Option<PublishedBundle>, StoreError>;
    /// The newest version's number alone (cheap: tells whether a cached one is current).
    async fn bundle_latest_version(&self) -> Result<Option<u64>, StoreError>;
    /// Versions `from_version` and later, oldest first, at most `limit`.
    async fn bundle_history(
        &self,
        from_version: u64,
        limit: u32,
    ) -> Result<Vec<BundleVersionRow>, StoreError>;
    /// Add `row` as the newest version with `full` as the bundle served, unless a
    /// version at or above it exists (another console instance cut it first): false.
    async fn cut_bundle_version(
        &self,
        row: &BundleVersionRow,
        full: &[u8],
    ) -> Result<bool, StoreError>;
    /// Certificates matching `search`, newest first, at most `search.limit` of them.
    async fn search(&self, search: &Search) -> Result<Vec<CertificateRecord>, StoreError>;

    // --- Gateways, their events and the stations' audit anchors ---

    /// Record a newly issued gateway credential; refused while `name` has an active one.
    async fn add_gateway(&self, gateway: &GatewayRow, actor: &str) -> Result<(), StoreError>;
    async fn gateways(&self) -> Result<Vec<GatewayRow>, StoreError>;
    /// Revoke every credential of gateway `name`; how many were active.
    async fn revoke_gateway(&self, name: &str, now: i64) -> Result<usize, StoreError>;
    /// The gateway whose client certificate has this fingerprint.
    async fn gateway_by_cert(&self, cert_sha256: &str) -> Result<Option<GatewayRow>, StoreError>;
    /// Keep each event of `gateway` once by its id, in one transaction (events
    /// already held are counted, never stored again or changed).
    async fn add_events(
        &self,
        gateway: &str,
        events: &[GatewayEvent],
        received_at: i64,
    ) -> Result<EventsAccepted, StoreError>;
    /// Events matching `query`, newest first (by the gateway's time), at most `query.limit`.
    async fn events(&self, query: &EventQuery) -> Result<Vec<RecordedEvent>, StoreError>;
    /// Keep `head` as `station`'s audit anchor unless it would lose what is anchored.
    async fn set_audit_anchor(
        &self,
        station: &str,
        head: &AuditHead,
        now: i64,
    ) -> Result<AnchorSet, StoreError>;
    async fn audit_anchor(&self, station: &str) -> Result<Option<AuditAnchor>, StoreError>;
    /// Forget `station`'s anchor (the administrator, after restoring its database from a
    /// backup): its next delivery anchors afresh. Whether there was one; audited.
    async fn reset_audit_anchor(&self, station: &str, now: i64) -> Result<bool, StoreError>;
}

/// One issued gateway credential (the same shape as a station's).
pub type GatewayRow = StationRow;

/// Which events `GET /v1/events` and `cardstation-console events` want.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    pub fingerprint: Option<String>,
    pub gateway: Option<String>,
    /// Events the gateway decided at or after this time (unix seconds).
    pub since: Option<i64>,
    pub limit: u32,
}

/// The most events one query returns.
pub const MAX_EVENT_QUERY: u32 = 1000;

/// A station's anchored audit chain head (what `migrate` moves).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StationAnchor {
    pub station: String,
    pub anchor: AuditAnchor,
}

/// What storing an audit chain head did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorSet {
    /// Stored (or the same head again).
    Stored(AuditAnchor),
    /// The console holds a head with more rows: the station's trail lost rows.
    Shorter(AuditAnchor),
    /// The console holds another hash for the same number of rows: rewritten.
    Different(AuditAnchor),
}

/// Reason codes are kept as one comma-separated column: a code never holds a comma.
fn join_reasons(reasons: &[String]) -> String {
    reasons.join(",")
}

fn split_reasons(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect()
}

fn decision_of(s: &str) -> Decision {
    if s == Decision::Grant.as_str() {
        Decision::Grant
    } else {
        Decision::Deny
    }
}

/// The key hash of a stored PEM certificate (for rows written before it was kept).
fn key_sha256_of_pem(pem: &str) -> Option<String> {
    let der = cardstation_pki::certificate::from_pem_or_der(pem.as_bytes()).ok()?;
    cardstation_pki::rules::public_key_sha256(&der)
}

/// The database file and its journals readable by the console's user alone.
fn restrict_permissions(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Open (and migrate to the current schema) the database `db`.
pub async fn open(db: &Database) -> Result<Box<dyn Store>, StoreError> {
    match db {
        Database::Sqlite(path) => Ok(Box::new(SqliteStore::open(path).await?)),
        Database::Postgres(url) => Ok(Box::new(PostgresStore::open(url).await?)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn database_names_parse_and_never_show_a_password() {
        assert_eq!(
            Database::parse("sqlite:/var/lib/c/console.db").unwrap(),
            Database::Sqlite("/var/lib/c/console.db".into())
        );
        assert_eq!(
            Database::parse("plain.db").unwrap(),
            Database::Sqlite("plain.db".into())
        );
        let pg = Database::parse("postgres://console:s3cret@db.example:5432/cards").unwrap();
        assert!(matches!(pg, Database::Postgres(_)));
        let shown = pg.to_string();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("console:***@db.example"), "{shown}");
        let shown = Database::Postgres("postgres://c@h/db?password=s3cret&sslmode=disable".into())
            .to_string();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(Database::parse("mysql://x").is_err());
        assert!(Database::parse("sqlite:").is_err());
    }
}
