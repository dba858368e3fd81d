//! The station database (SQLite): enrollments, the outbox, the audit trail and the
//! trust bundle.
//!
//! Every state change is its own committed transaction, written before the card
//! is touched (so an interrupted enrollment stays visible) and after it answered.
//! Several processes (the window and the CLI beside it) share one database: every
//! write that reads first takes the write lock at its start (`BEGIN IMMEDIATE`),
//! waits up to [`BUSY_TIMEOUT`] for it, and a write that still fails is an error
//! of the action that made it.

mod audit;
mod enrollments;
mod guard;
mod outbox;
mod schema;
mod site_rules;
pub use schema::SCHEMA_VERSION;
mod trust;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Transaction, TransactionBehavior};

pub use audit::{AnchorCheck, AuditAction, AuditEntry, AuditRow, AuditVerdict};
pub use enrollments::{CompletedEnrollment, EnrollmentRecord, EnrollmentState, NewEnrollment};
pub use guard::{marker_path, Reinit};
pub use outbox::{OutboxItem, OutboxKind};
pub use trust::{HeldGeneration, HeldRow};

/// How long a write waits for another process holding the database's write lock.
/// Writes are short (milliseconds); this covers a slow disk under several processes.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(15);

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
    #[error(
        "the station database {path} is missing or empty, but this station has been used ({evidence} exists): \
         its enrollment records, audit trail, queued uploads and trust bundle are not there. \
         Restore the database from a backup (copy it to {path} while Cardstation is not running), \
         or start afresh with `cardstation --reinit`, which begins an empty database and leaves the old records lost",
        path = .path.display(),
        evidence = .evidence.display()
    )]
    Lost { path: PathBuf, evidence: PathBuf },
    #[error("the station database {path} is present and holds this station's records: --reinit only starts afresh when it is lost or unreadable", path = .path.display())]
    NotLost { path: PathBuf },
    #[error("{what} {path}: {source}", path = .path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// The file is not a SQLite database at all (overwritten, or a different file).
    fn is_unreadable(&self) -> bool {
        let sql = match self {
            StoreError::Sql(e) | StoreError::Open { source: e, .. } => e,
            _ => return false,
        };
        matches!(
            sql.sqlite_error_code(),
            Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
        )
    }
}

pub struct Store {
    conn: rusqlite::Connection,
    path: PathBuf,
}

impl Store {
    /// Open (and create or migrate) the station database at `path`. A database that
    /// is missing or empty while the marker beside it shows it was in use is refused.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_guarded(path, &[])
    }

    /// As [`Store::open`]; `evidence` names further files whose presence shows the
    /// station has been used (its site secret), so a lost database is noticed even
    /// when the marker went with it.
    pub fn open_guarded(path: &Path, evidence: &[PathBuf]) -> Result<Self, StoreError> {
        if let Some(evidence) = guard::lost_before_open(path, evidence) {
            return Err(StoreError::Lost {
                path: path.to_path_buf(),
                evidence,
            });
        }
        let conn = connect(path)?;
        let used = guard::used_evidence(path, evidence);
        schema::migrate(&conn, used.as_deref()).map_err(|e| match e {
            schema::MigrateError::Lost(evidence) => StoreError::Lost {
                path: path.to_path_buf(),
                evidence,
            },
            schema::MigrateError::Store(e) => e,
        })?;
        guard::write_marker(path, &conn)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// An in-memory database for tests.
    pub fn in_memory() -> Result<Self, StoreError> {
        let conn = rusqlite::Connection::open_in_memory()?;
        schema::migrate(&conn, None).map_err(|e| match e {
            schema::MigrateError::Store(e) => e,
            schema::MigrateError::Lost(p) => StoreError::Corrupt(p.display().to_string()),
        })?;
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

    /// A consistent copy of the whole database in `out` (a new file), taken while
    /// other processes may be writing: SQLite copies one snapshot.
    pub fn backup_to(&self, out: &Path) -> Result<(), StoreError> {
        if out.exists() {
            return Err(StoreError::File {
                what: "the backup file already exists; choose another name",
                path: out.to_path_buf(),
                source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            });
        }
        let target = out.to_str().ok_or_else(|| StoreError::File {
            what: "the backup path is not valid UTF-8",
            path: out.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        })?;
        self.conn.execute("VACUUM INTO ?1", [target])?;
        Ok(())
    }

    /// `PRAGMA integrity_check` of a database file (a backup), opened read-only:
    /// nothing is written to it or beside it.
    pub fn integrity_of(path: &Path) -> Result<String, StoreError> {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    /// A transaction holding the write lock from its start: whatever it reads
    /// stays true until it commits, even with other processes writing.
    fn write_tx(&self) -> Result<Transaction<'_>, StoreError> {
        Ok(Transaction::new_unchecked(
            &self.conn,
            TransactionBehavior::Immediate,
        )?)
    }
}

/// Open the connection with the settings every process must share.
fn connect(path: &Path) -> Result<rusqlite::Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let conn = rusqlite::Connection::open(path).map_err(open_err)?;
    // The busy timeout first: switching a fresh file to WAL already needs a lock
    // that another process starting at the same moment may hold.
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    // WAL + full sync: a committed row survives a crash or power cut.
    enable_wal(&conn).map_err(open_err)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(open_err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(open_err)?;
    Ok(conn)
}

/// Switch the file to WAL. Processes opening a new file together contend for the
/// exclusive lock this needs, and SQLite answers "busy" at once instead of calling
/// the busy handler (waiting while holding a shared lock could deadlock): so try
/// again until the mode is WAL or [`BUSY_TIMEOUT`] has passed.
fn enable_wal(conn: &rusqlite::Connection) -> Result<(), rusqlite::Error> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        let result = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0));
        let retry = match &result {
            Ok(mode) => !mode.eq_ignore_ascii_case("wal"),
            Err(e) => e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy),
        };
        if !retry {
            return result.map(|_| ());
        }
        if std::time::Instant::now() >= deadline {
            return result.and_then(|mode| {
                Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                    Some(format!("the database stayed in {mode} mode instead of WAL")),
                ))
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Current time as unix seconds.
pub(crate) fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
