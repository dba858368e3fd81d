//! The console's storage seam: one interface, two implementations. SQLite (one
//! file in the data directory, the default) for a desk or a small site;
//! PostgreSQL for a site that runs several console instances on one database.
//!
//! Rules every implementation keeps:
//! - every change to what the trust bundle says (a new certificate, a revocation)
//!   raises the bundle version by one in the same transaction, and writers are
//!   serialized by the database itself (SQLite's write lock, PostgreSQL's advisory
//!   lock), so a version names exactly one content, whichever instance asks;
//! - the schema is versioned; a database newer than this build is refused.

mod postgres;
mod sqlite;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use cardstation_protocol::messages::{CertificateRecord, RevokedEntry};

pub use postgres::PostgresStore;
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
    pub station_id: String,
    pub uploaded_at: i64,
}

/// What an upload did.
pub enum Stored {
    Created(CertificateRecord),
    Existing(CertificateRecord),
}

/// What a trust bundle says at one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleState {
    pub version: u64,
    pub allowed: Vec<String>,
    pub revoked: Vec<RevokedEntry>,
}

/// One stored certificate, complete (what `migrate` moves).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FullRecord {
    pub pem: String,
    pub record: CertificateRecord,
}

/// Everything a console database holds, in fingerprint order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub bundle_version: u64,
    pub records: Vec<FullRecord>,
}

impl Snapshot {
    /// SHA-256 over the bundle version and every record (PEM and all fields), in order:
    /// equal on both sides of a migration exactly when nothing was lost or changed.
    pub fn digest(&self) -> Result<String, StoreError> {
        let mut h = Sha256::new();
        h.update(self.bundle_version.to_be_bytes());
        for r in &self.records {
            let line = serde_json::to_vec(r).map_err(|e| StoreError::Failed(e.to_string()))?;
            h.update((line.len() as u64).to_be_bytes());
            h.update(&line);
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
    /// Revoke; revoking again keeps the first reason and time.
    async fn revoke(
        &self,
        sha256: &str,
        reason: &str,
        now: i64,
    ) -> Result<Option<CertificateRecord>, StoreError>;
    /// The current bundle version alone (cheap: decides whether a cached bundle is current).
    async fn bundle_version(&self) -> Result<u64, StoreError>;
    /// The bundle content, read in one snapshot so it matches its version.
    async fn bundle_state(&self) -> Result<BundleState, StoreError>;
    async fn count(&self) -> Result<i64, StoreError>;
    /// Everything, read in one snapshot.
    async fn snapshot(&self) -> Result<Snapshot, StoreError>;
    /// Fill an empty database with `snapshot` (records and bundle version) in one transaction.
    async fn import(&self, snapshot: &Snapshot) -> Result<(), StoreError>;
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
