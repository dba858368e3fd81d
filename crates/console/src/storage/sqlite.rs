//! The SQLite backend: one file, WAL, full sync, one connection per process.
//! Writers take SQLite's write lock up front (`BEGIN IMMEDIATE`), so a second
//! process on the same file (`migrate`, an administration command) waits its turn
//! instead of failing half-way; readers see one snapshot (a WAL read transaction).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::db::{sqlite_placeholders, Db, Dialect, SqlRow, Tx, Value, WriteLock};
use super::schema::{migrations, SCHEMA_VERSION};
use super::{Store, StoreError};

fn failed(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Failed(e.to_string()),
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Value::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

fn value_of(v: ValueRef<'_>) -> rusqlite::Result<Value> {
    Ok(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Text(t) => Value::Text(
            String::from_utf8(t.to_vec())
                .map_err(|e| rusqlite::Error::Utf8Error(e.utf8_error()))?,
        ),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        // No column of ours holds a float; reading one is damage, not data.
        ValueRef::Real(_) => {
            return Err(rusqlite::Error::InvalidColumnType(
                0,
                "real".into(),
                rusqlite::types::Type::Real,
            ))
        }
    })
}

/// SQLite calls block: on the server's worker threads, tell tokio so.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

pub struct SqliteDb {
    conn: Arc<Mutex<rusqlite::Connection>>,
}

struct SqliteTx {
    conn: OwnedMutexGuard<rusqlite::Connection>,
    open: bool,
}

impl SqliteTx {
    fn rows(&mut self, sql: &str, params: &[Value]) -> Result<Vec<SqlRow>, StoreError> {
        blocking(|| {
            let mut stmt = self
                .conn
                .prepare_cached(&sqlite_placeholders(sql))
                .map_err(failed)?;
            let n = stmt.column_count();
            let rows = stmt
                .query_map(rusqlite::params_from_iter(params.iter()), |r| {
                    (0..n)
                        .map(|i| value_of(r.get_ref(i)?))
                        .collect::<rusqlite::Result<Vec<_>>>()
                        .map(SqlRow)
                })
                .map_err(failed)?;
            rows.collect::<Result<_, _>>().map_err(failed)
        })
    }
}

#[async_trait::async_trait]
impl Tx for SqliteTx {
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<SqlRow>, StoreError> {
        self.rows(sql, params)
    }

    async fn query_planned(
        &mut self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<SqlRow>, StoreError> {
        self.rows(sql, params)
    }

    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        blocking(|| {
            let mut stmt = self
                .conn
                .prepare_cached(&sqlite_placeholders(sql))
                .map_err(failed)?;
            let n = stmt
                .execute(rusqlite::params_from_iter(params.iter()))
                .map_err(failed)?;
            Ok(n as u64)
        })
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        blocking(|| self.conn.execute_batch("COMMIT").map_err(failed))?;
        self.open = false;
        Ok(())
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if self.open {
            let _ = blocking(|| self.conn.execute_batch("ROLLBACK"));
        }
    }
}

impl SqliteDb {
    async fn begin(&self, sql: &'static str) -> Result<Box<dyn Tx + '_>, StoreError> {
        let conn = self.conn.clone().lock_owned().await;
        blocking(|| conn.execute_batch(sql).map_err(failed))?;
        Ok(Box::new(SqliteTx { conn, open: true }))
    }
}

#[async_trait::async_trait]
impl Db for SqliteDb {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn write(&self, _lock: WriteLock) -> Result<Box<dyn Tx + '_>, StoreError> {
        self.begin("BEGIN IMMEDIATE").await
    }

    async fn read(&self) -> Result<Box<dyn Tx + '_>, StoreError> {
        self.begin("BEGIN").await
    }

    async fn analyze(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Bring the schema up to date, or refuse a newer one.
fn migrate(conn: &mut rusqlite::Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
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
    let all = migrations(Dialect::Sqlite);
    for (i, sql) in all.iter().enumerate().skip(found.max(0) as usize) {
        tx.execute_batch(sql).map_err(failed)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)
            .map_err(failed)?;
    }
    tx.commit().map_err(failed)
}

/// Open (creating and migrating as needed) the SQLite console database at `path`.
pub async fn open(path: &Path) -> Result<Store, StoreError> {
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
        super::restrict_permissions(&path);
        Ok::<_, StoreError>(conn)
    })
    .await
    .map_err(|e| StoreError::Failed(e.to_string()))??;
    let store = Store::new(Box::new(SqliteDb {
        conn: Arc::new(Mutex::new(conn)),
    }));
    store.backfill().await?;
    Ok(store)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_schema_newer_than_known_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.db");
        drop(open(&path).await.unwrap());
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        match open(&path).await {
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
            conn.execute_batch(&migrations(Dialect::Sqlite)[0]).unwrap();
            conn.execute(
                "INSERT INTO certificates (sha256, pem, subject, not_after, operator, station_id,
                     uploaded_at) VALUES ('ab', 'pem', 'CN=x', 1, 'op', 'st', 2)",
                [],
            )
            .unwrap();
            conn.execute("UPDATE meta SET value = 7", []).unwrap();
        }
        let store = open(&path).await.unwrap();
        assert_eq!(store.count().await.unwrap(), 1);
        assert_eq!(store.bundle_version().await.unwrap(), 7);
        let conn = rusqlite::Connection::open(&path).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }

    #[tokio::test]
    async fn stations_and_gateways_of_an_older_console_become_identities() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.db");
        {
            let mut conn = rusqlite::Connection::open(&path).unwrap();
            let tx = conn.transaction().unwrap();
            for (i, m) in migrations(Dialect::Sqlite).iter().take(5).enumerate() {
                tx.execute_batch(m).unwrap();
                tx.pragma_update(None, "user_version", i as i64 + 1)
                    .unwrap();
            }
            tx.execute_batch(
                "INSERT INTO stations VALUES ('aa', 'admin', 1, 9, NULL);
                 INSERT INTO gateways VALUES ('bb', 'gw-1', 1, 9, 5);
                 INSERT INTO certificates (sha256, pem, subject, not_after, operator, station_id,
                     uploaded_at, status, revoked_by) VALUES
                     ('c1', 'pem', 'CN=x', 1, 'op', 'admin', 2, 'revoked', 'admin'),
                     ('c2', 'pem', 'CN=y', 1, 'op', 'desk', 2, 'revoked', 'desk');
                 INSERT INTO bundle_published VALUES (1, 3, x'00');",
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let store = open(&path).await.unwrap();
        let ids = store.identities(None).await.unwrap();
        let seen: Vec<_> = ids
            .iter()
            .map(|i| (i.role, i.name.as_str(), i.revoked_at))
            .collect();
        assert_eq!(
            seen,
            [
                (super::super::Role::Gateway, "gw-1", Some(5)),
                (super::super::Role::Station, "admin", None)
            ]
        );
        // The station that was named "admin" no longer passes for the administrator.
        let by = |fp: &str| {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.query_row(
                "SELECT revoked_by FROM certificates WHERE sha256 = ?1",
                [fp],
                |r| r.get::<_, String>(0),
            )
            .unwrap()
        };
        assert_eq!(by("c1"), "administrator");
        assert_eq!(by("c2"), "station:desk");
    }
}
