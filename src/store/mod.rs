//! The station database (SQLite): enrollments and the audit trail.
//!
//! Every state change is its own committed transaction, written before the card
//! is touched (so an interrupted enrollment stays visible) and after it answered.

mod audit;
mod enrollments;
mod outbox;
mod schema;
mod trust;

use std::path::{Path, PathBuf};

pub use audit::{AuditRow, AuditVerdict};
pub use enrollments::{EnrollmentRecord, EnrollmentState, NewEnrollment};
pub use outbox::{OutboxItem, OutboxKind};
pub use trust::StoredBundle;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("station database {path}: {source}. Check the data directory is writable and not on a full disk")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("station database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("station database was written by a newer Cardstation (schema {found}, this one knows {known}). Update Cardstation")]
    TooNew { found: i64, known: i64 },
    #[error("station database holds an invalid value: {0}")]
    Corrupt(String),
}

pub struct Store {
    conn: rusqlite::Connection,
    path: PathBuf,
}

impl Store {
    /// Open (and create or migrate) the station database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = rusqlite::Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        // WAL + full sync: a committed row survives a crash or power cut.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        schema::migrate(&conn)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// An in-memory database for tests.
    pub fn in_memory() -> Result<Self, StoreError> {
        let conn = rusqlite::Connection::open_in_memory()?;
        schema::migrate(&conn)?;
        Ok(Store {
            conn,
            path: PathBuf::from(":memory:"),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `PRAGMA integrity_check` result ("ok" when healthy).
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }
}

/// Current time as unix seconds.
pub(crate) fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
