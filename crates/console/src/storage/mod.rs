//! The console's storage: every query written once ([`Store`], in records.rs,
//! identities.rs, reports.rs, bundle_rows.rs and snapshot.rs) over a small seam
//! ([`db::Db`]: transactions and bound values) that two backends provide: SQLite
//! (one file in the data directory, the default) for a desk or a small site, and
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

mod bundle_rows;
pub mod db;
mod identities;
mod pg_tls;
mod postgres;
mod records;
mod reports;
pub mod schema;
pub mod search;
mod snapshot;
mod sqlite;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use cardstation_protocol::messages::{AuditAnchor, CertificateRecord, Decision, RecordedEvent};

pub use records::Store;

pub use schema::SCHEMA_VERSION;
pub use search::Search;

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
    /// The key's verified attestation, and the evidence (JSON) it was verified from.
    pub attestation: Option<cardstation_protocol::messages::KeyAttestation>,
    pub attestation_evidence: Option<String>,
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

/// How a renewal's retirement of the old certificate went.
#[derive(Debug)]
pub enum Superseded {
    /// Marked (or already marked by the same successor): the old record now.
    Done(Box<CertificateRecord>),
    /// The old or the new certificate is not at the console (which, named).
    NotFound(String),
    /// Not the same card: neither the same key nor the same CHUID.
    OtherCard,
    /// One of the two is revoked: a renewal retires only what is in service.
    Revoked(String),
    /// The new certificate ends before the old one.
    NotLater,
    /// Already superseded by another certificate.
    Already(String),
}

/// A kind of client identity; what each may call is one table
/// (crates/console/src/access.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An enrollment station: uploads, revokes, searches, anchors its audit trail.
    Station,
    /// A gateway: fetches the trust bundle and posts its decisions.
    Gateway,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Station, Role::Gateway];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Station => "station",
            Role::Gateway => "gateway",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who did something, as the records and the audit trail keep it: typed, so no
/// identity's name can read as another kind of actor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    /// The console administrator, at the console host (the command line).
    Administrator,
    /// The console's first start (it registers the demo station).
    Setup,
    Identity(Role, String),
}

impl Actor {
    pub fn station(name: &str) -> Actor {
        Actor::Identity(Role::Station, name.to_string())
    }
}

/// `administrator`, `setup`, `station:NAME`, `gateway:NAME`.
impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Administrator => f.write_str("administrator"),
            Actor::Setup => f.write_str("setup"),
            Actor::Identity(role, name) => write!(f, "{role}:{name}"),
        }
    }
}

/// An identity's name: 1 to 64 of a-z, 0-9, '-', '_' and '.', starting with a
/// letter or digit (it is a certificate CN, a file name and a search word).
pub fn valid_identity_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_' | b'.')
        })
}

/// One issued client credential (a station's, a gateway's, …).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IdentityRow {
    pub name: String,
    pub role: Role,
    /// SHA-256 of the client certificate (DER).
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
    /// The certificate's key (SHA-256 of its SubjectPublicKeyInfo), when known.
    pub key_sha256: Option<String>,
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
    /// The active certificates whose key's attestation the console verified.
    pub attested: Vec<String>,
    /// Since when the console's CA issues only for attested keys (0: it does not).
    pub attested_since: i64,
    /// When the newest certificate was recorded (unix seconds; 0 with none): a
    /// revocation-only bundle's issued-up-to mark.
    pub newest_recorded_at: i64,
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
    pub attestation_evidence: Option<String>,
}

/// Everything a console database holds, each part in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub bundle_version: u64,
    pub records: Vec<FullRecord>,
    /// Every issued credential, by certificate fingerprint.
    pub identities: Vec<IdentityRow>,
    pub revoked_keys: Vec<RevokedKey>,
    pub audit: Vec<AuditRow>,
    /// The trust-bundle chain, oldest first, and the bundle being served: moved
    /// so that stations and gateways see the same chain after a migration.
    pub bundle_chain: Vec<BundleVersionRow>,
    pub bundle_published: Option<Vec<u8>>,
    /// Gateway events, by gateway and id.
    pub events: Vec<RecordedEvent>,
    /// The latest audit chain head of each station, by station.
    pub anchors: Vec<StationAnchor>,
    /// Since when the site's CA has signed only for attested keys (the bundle's
    /// `attested_since`): moved, so the target does not set a later mark and refuse
    /// the cards its CA issued in between.
    pub attested_since: Option<i64>,
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
        for r in &self.identities {
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
        for r in &self.events {
            line(serde_json::to_vec(r))?;
        }
        for r in &self.anchors {
            line(serde_json::to_vec(r))?;
        }
        if let Some(since) = self.attested_since {
            line(Ok(since.to_be_bytes().to_vec()))?;
        }
        Ok(hex::encode(h.finalize()))
    }
}

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

/// A certificate status as stored.
fn status_text(s: cardstation_protocol::messages::CertificateStatus) -> &'static str {
    match s {
        cardstation_protocol::messages::CertificateStatus::Active => "active",
        cardstation_protocol::messages::CertificateStatus::Revoked => "revoked",
    }
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
pub async fn open(db: &Database) -> Result<Store, StoreError> {
    match db {
        Database::Sqlite(path) => sqlite::open(path).await,
        Database::Postgres(url) => postgres::open(url).await,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn identity_names_are_short_plain_words() {
        for ok in ["station-1", "desk.7", "a", "lab_2"] {
            assert!(valid_identity_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "Desk",
            "a b",
            "x/../y",
            &"a".repeat(65),
            "é",
            "station:x",
        ] {
            assert!(!valid_identity_name(bad), "{bad}");
        }
    }

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
