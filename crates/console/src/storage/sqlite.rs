//! SQLite storage: one file, WAL, full sync. Writes take SQLite's write lock up
//! front (`BEGIN IMMEDIATE`), so a second process on the same file (`migrate`, an
//! administration command) waits its turn instead of failing half-way.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};

use cardstation_protocol::messages::{CertificateRecord, CertificateStatus, RevokedEntry};

use super::{BundleState, FullRecord, NewCertificate, Snapshot, Store, StoreError, Stored};

/// Schema migrations, in order; `PRAGMA user_version` is how many have run. The
/// first is the schema consoles had before versioning (hence `IF NOT EXISTS`).
const MIGRATIONS: &[&str] = &["CREATE TABLE IF NOT EXISTS certificates (
        sha256      TEXT PRIMARY KEY,
        pem         TEXT NOT NULL,
        subject     TEXT NOT NULL,
        not_after   INTEGER NOT NULL,
        card_serial INTEGER,
        chuid_guid  TEXT,
        slot        TEXT,
        label       TEXT,
        operator    TEXT NOT NULL,
        station_id  TEXT NOT NULL,
        uploaded_at INTEGER NOT NULL,
        status      TEXT NOT NULL DEFAULT 'active',
        reason      TEXT,
        revoked_at  INTEGER
     );
     CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
     INSERT OR IGNORE INTO meta (key, value) VALUES ('bundle_version', 1);"];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const COLUMNS: &str =
    "sha256, subject, not_after, card_serial, chuid_guid, slot, label, operator, \
     station_id, uploaded_at, status, reason, revoked_at";

pub struct SqliteStore {
    conn: Arc<Mutex<rusqlite::Connection>>,
}

fn failed(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Failed(e.to_string()),
    }
}

fn record(r: &Row<'_>) -> rusqlite::Result<CertificateRecord> {
    let status: String = r.get(10)?;
    let serial: Option<i64> = r.get(3)?;
    Ok(CertificateRecord {
        sha256: r.get(0)?,
        subject: r.get(1)?,
        not_after: r.get(2)?,
        card_serial: serial.and_then(|s| u32::try_from(s).ok()),
        chuid_guid: r.get(4)?,
        slot: r.get(5)?,
        label: r.get(6)?,
        operator: r.get(7)?,
        station_id: r.get(8)?,
        uploaded_at: r.get(9)?,
        status: if status == "revoked" {
            CertificateStatus::Revoked
        } else {
            CertificateStatus::Active
        },
        revocation_reason: r.get(11)?,
        revoked_at: r.get(12)?,
    })
}

fn get(conn: &rusqlite::Connection, sha256: &str) -> rusqlite::Result<Option<CertificateRecord>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM certificates WHERE sha256 = ?1"),
        [sha256],
        record,
    )
    .optional()
}

fn bump_version(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE meta SET value = value + 1 WHERE key = 'bundle_version'",
        [],
    )
    .map(|_| ())
}

fn bundle_version(conn: &rusqlite::Connection) -> rusqlite::Result<u64> {
    let v: i64 = conn.query_row(
        "SELECT value FROM meta WHERE key = 'bundle_version'",
        [],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(v).unwrap_or(0))
}

/// Bring the schema up to date, or refuse a newer one.
fn migrate(conn: &mut rusqlite::Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(failed)?;
    let found: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(failed)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        tx.execute_batch(sql).map_err(failed)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)
            .map_err(failed)?;
    }
    tx.commit().map_err(failed)
}

impl SqliteStore {
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let path = path.to_path_buf();
        let conn = tokio::task::spawn_blocking(move || {
            let mut conn = rusqlite::Connection::open(&path)
                .map_err(|e| StoreError::Failed(format!("{}: {e}", path.display())))?;
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(failed)?;
            conn.pragma_update(None, "synchronous", "FULL")
                .map_err(failed)?;
            conn.busy_timeout(Duration::from_secs(5)).map_err(failed)?;
            migrate(&mut conn)?;
            Ok::<_, StoreError>(conn)
        })
        .await
        .map_err(|e| StoreError::Failed(e.to_string()))??;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Run `f` on the connection on a blocking thread (SQLite calls block).
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn
                .lock()
                .map_err(|_| StoreError::Failed("the database connection was poisoned".into()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Failed(e.to_string()))?
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn upload(&self, c: NewCertificate) -> Result<Stored, StoreError> {
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(failed)?;
            if let Some(rec) = get(&tx, &c.sha256).map_err(failed)? {
                return Ok(Stored::Existing(rec));
            }
            tx.execute(
                "INSERT INTO certificates (sha256, pem, subject, not_after, card_serial, chuid_guid,
                     slot, label, operator, station_id, uploaded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    c.sha256,
                    c.pem,
                    c.subject,
                    c.not_after,
                    c.card_serial.map(i64::from),
                    c.chuid_guid,
                    c.slot,
                    c.label,
                    c.operator,
                    c.station_id,
                    c.uploaded_at
                ],
            )
            .map_err(failed)?;
            bump_version(&tx).map_err(failed)?;
            let rec = get(&tx, &c.sha256)
                .map_err(failed)?
                .ok_or_else(|| StoreError::Failed("the stored record vanished".into()))?;
            tx.commit().map_err(failed)?;
            Ok(Stored::Created(rec))
        })
        .await
    }

    async fn get(&self, sha256: &str) -> Result<Option<CertificateRecord>, StoreError> {
        let sha256 = sha256.to_string();
        self.with(move |conn| get(conn, &sha256).map_err(failed))
            .await
    }

    async fn revoke(
        &self,
        sha256: &str,
        reason: &str,
        now: i64,
    ) -> Result<Option<CertificateRecord>, StoreError> {
        let (sha256, reason) = (sha256.to_string(), reason.to_string());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(failed)?;
            let changed = tx
                .execute(
                    "UPDATE certificates SET status = 'revoked', reason = ?2, revoked_at = ?3
                     WHERE sha256 = ?1 AND status = 'active'",
                    params![sha256, reason, now],
                )
                .map_err(failed)?;
            if changed > 0 {
                bump_version(&tx).map_err(failed)?;
            }
            let rec = get(&tx, &sha256).map_err(failed)?;
            tx.commit().map_err(failed)?;
            Ok(rec)
        })
        .await
    }

    async fn bundle_version(&self) -> Result<u64, StoreError> {
        self.with(|conn| bundle_version(conn).map_err(failed)).await
    }

    async fn bundle_state(&self) -> Result<BundleState, StoreError> {
        self.with(|conn| {
            // One read transaction: the version and the lists come from one snapshot.
            let tx = conn.transaction().map_err(failed)?;
            let version = bundle_version(&tx).map_err(failed)?;
            let allowed = {
                let mut stmt = tx
                    .prepare(
                        "SELECT sha256 FROM certificates WHERE status = 'active' ORDER BY sha256",
                    )
                    .map_err(failed)?;
                let rows = stmt.query_map([], |r| r.get(0)).map_err(failed)?;
                rows.collect::<Result<Vec<String>, _>>().map_err(failed)?
            };
            let revoked = {
                let mut stmt = tx
                    .prepare(
                        "SELECT sha256, reason, revoked_at FROM certificates
                         WHERE status = 'revoked' ORDER BY sha256",
                    )
                    .map_err(failed)?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok(RevokedEntry {
                            sha256: r.get(0)?,
                            reason: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                            revoked_at: r.get::<_, Option<i64>>(2)?.unwrap_or_default(),
                        })
                    })
                    .map_err(failed)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(failed)?
            };
            tx.commit().map_err(failed)?;
            Ok(BundleState {
                version,
                allowed,
                revoked,
            })
        })
        .await
    }

    async fn count(&self) -> Result<i64, StoreError> {
        self.with(|conn| {
            conn.query_row("SELECT COUNT(*) FROM certificates", [], |r| r.get(0))
                .map_err(failed)
        })
        .await
    }

    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(failed)?;
            let bundle_version = bundle_version(&tx).map_err(failed)?;
            let records = {
                let mut stmt = tx
                    .prepare(&format!(
                        "SELECT {COLUMNS}, pem FROM certificates ORDER BY sha256"
                    ))
                    .map_err(failed)?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok(FullRecord {
                            record: record(r)?,
                            pem: r.get(13)?,
                        })
                    })
                    .map_err(failed)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(failed)?
            };
            tx.commit().map_err(failed)?;
            Ok(Snapshot {
                bundle_version,
                records,
            })
        })
        .await
    }

    async fn import(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let snapshot = snapshot.clone();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(failed)?;
            let n: i64 = tx
                .query_row("SELECT COUNT(*) FROM certificates", [], |r| r.get(0))
                .map_err(failed)?;
            if n > 0 {
                return Err(StoreError::NotEmpty(n));
            }
            for FullRecord { pem, record: r } in &snapshot.records {
                tx.execute(
                    "INSERT INTO certificates (sha256, pem, subject, not_after, card_serial,
                         chuid_guid, slot, label, operator, station_id, uploaded_at, status,
                         reason, revoked_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                    params![
                        r.sha256,
                        pem,
                        r.subject,
                        r.not_after,
                        r.card_serial.map(i64::from),
                        r.chuid_guid,
                        r.slot,
                        r.label,
                        r.operator,
                        r.station_id,
                        r.uploaded_at,
                        status_text(r.status),
                        r.revocation_reason,
                        r.revoked_at
                    ],
                )
                .map_err(failed)?;
            }
            tx.execute(
                "UPDATE meta SET value = ?1 WHERE key = 'bundle_version'",
                [i64::try_from(snapshot.bundle_version).unwrap_or(i64::MAX)],
            )
            .map_err(failed)?;
            tx.commit().map_err(failed)
        })
        .await
    }
}

pub(super) fn status_text(s: CertificateStatus) -> &'static str {
    match s {
        CertificateStatus::Active => "active",
        CertificateStatus::Revoked => "revoked",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_schema_newer_than_known_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.db");
        drop(SqliteStore::open(&path).await.unwrap());
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        match SqliteStore::open(&path).await {
            Err(StoreError::SchemaTooNew { found, known }) => {
                assert_eq!((found, known), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a newer schema was accepted"),
        }
    }

    #[tokio::test]
    async fn a_database_from_before_versioning_is_adopted_with_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.db");
        {
            // What consoles wrote before the schema had a version.
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute(
                "INSERT INTO certificates (sha256, pem, subject, not_after, operator, station_id,
                     uploaded_at) VALUES ('ab', 'pem', 'CN=x', 1, 'op', 'st', 2)",
                [],
            )
            .unwrap();
            conn.execute("UPDATE meta SET value = 7", []).unwrap();
        }
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(store.count().await.unwrap(), 1);
        assert_eq!(store.bundle_version().await.unwrap(), 7);
        let conn = rusqlite::Connection::open(&path).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }
}
