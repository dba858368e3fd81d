//! The PostgreSQL backend, for several console instances on one database.
//!
//! Correctness across instances comes from the database, never from a lock in
//! this process: every writing transaction first takes a transaction-scoped
//! advisory lock, so changes (and, under a lock of their own, bundle versions) are
//! serialized across all instances; reads run in one REPEATABLE READ snapshot, so
//! a version and the lists read with it always belong together. Migrations run
//! under their own advisory lock, so instances starting at once apply each once.

use std::error::Error;
use std::time::Duration;

use bytes::BytesMut;
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use tokio_postgres::NoTls;

use super::db::{Db, Dialect, SqlRow, Tx, Value, WriteLock};
use super::schema::{migrations, SCHEMA_VERSION};
use super::{Store, StoreError};

/// Advisory lock keys (any constants unique to the console: "CSCN" + purpose).
const WRITE_LOCK: i64 = 0x4353_434e_0000_0001;
const MIGRATION_LOCK: i64 = 0x4353_434e_0000_0002;
const CUT_LOCK: i64 = 0x4353_434E_4355_5400; // "CSCNCUT"

type BoxError = Box<dyn Error + Sync + Send>;

/// Connection trouble (server down or restarting, pool timeout) is `Unavailable`:
/// the request can be repeated; anything else is a failure.
fn pg(e: tokio_postgres::Error) -> StoreError {
    let transient = e.is_closed()
        || e.code().is_some_and(|c| {
            let c = c.code();
            c.starts_with("08") || c.starts_with("57P") || c == "53300"
        })
        || (e.as_db_error().is_none() && e.source().is_some_and(|s| s.is::<std::io::Error>()));
    if transient {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Failed(e.to_string())
    }
}

fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => match pg(e) {
            StoreError::Failed(m) => StoreError::Unavailable(m),
            other => other,
        },
        other => StoreError::Unavailable(other.to_string()),
    }
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            // Our integers are BIGINT, but a few INTEGER columns and literals exist.
            Value::Int(v) if *ty == Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
            Value::Int(v) if *ty == Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
            Value::Int(v) => v.to_sql(ty, out),
            Value::Text(t) => t.to_sql(ty, out),
            Value::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as ToSql>::accepts(ty)
            || <i32 as ToSql>::accepts(ty)
            || <i16 as ToSql>::accepts(ty)
            || <String as ToSql>::accepts(ty)
            || <Vec<u8> as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Value, BoxError> {
        Ok(match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)?.into()),
            Type::BYTEA => Value::Blob(Vec::<u8>::from_sql(ty, raw)?),
            _ => Value::Text(String::from_sql(ty, raw)?),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Value, BoxError> {
        Ok(Value::Null)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::INT8 | Type::INT4 | Type::INT2 | Type::BYTEA)
            || <String as FromSql>::accepts(ty)
    }
}

fn bind(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

fn rows(rows: Vec<tokio_postgres::Row>) -> Result<Vec<SqlRow>, StoreError> {
    rows.iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.try_get::<_, Value>(i).map_err(pg))
                .collect::<Result<Vec<_>, _>>()
                .map(SqlRow)
        })
        .collect()
}

pub struct PostgresDb {
    pool: Pool,
}

/// A transaction on a pooled connection. Dropped without commit, it is rolled back
/// before the connection goes back to the pool.
struct PgTx {
    client: Option<Object>,
}

impl PgTx {
    fn client(&self) -> Result<&Object, StoreError> {
        self.client
            .as_ref()
            .ok_or_else(|| StoreError::Failed("the transaction is already finished".into()))
    }
}

#[async_trait::async_trait]
impl Tx for PgTx {
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<SqlRow>, StoreError> {
        let client = self.client()?;
        let stmt = client.prepare_cached(sql).await.map_err(pg)?;
        rows(client.query(&stmt, &bind(params)).await.map_err(pg)?)
    }

    async fn query_planned(
        &mut self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<SqlRow>, StoreError> {
        // An unnamed statement, planned with these values.
        let client = self.client()?;
        rows(client.query(sql, &bind(params)).await.map_err(pg)?)
    }

    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let client = self.client()?;
        let stmt = client.prepare_cached(sql).await.map_err(pg)?;
        client.execute(&stmt, &bind(params)).await.map_err(pg)
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        let client = self
            .client
            .take()
            .ok_or_else(|| StoreError::Failed("the transaction is already finished".into()))?;
        client.batch_execute("COMMIT").await.map_err(pg)
    }
}

impl Drop for PgTx {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if client.batch_execute("ROLLBACK").await.is_err() {
                        // Never hand a connection in an unknown state back to the pool.
                        drop(Object::take(client));
                    }
                });
            }
            Err(_) => drop(Object::take(client)),
        }
    }
}

impl PostgresDb {
    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    async fn begin(&self, sql: &str, lock: Option<i64>) -> Result<Box<dyn Tx + '_>, StoreError> {
        let client = self.client().await?;
        client.batch_execute(sql).await.map_err(pg)?;
        let mut tx = PgTx {
            client: Some(client),
        };
        if let Some(key) = lock {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[Value::Int(key)])
                .await?;
        }
        Ok(Box::new(tx))
    }
}

#[async_trait::async_trait]
impl Db for PostgresDb {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn write(&self, lock: WriteLock) -> Result<Box<dyn Tx + '_>, StoreError> {
        let key = match lock {
            WriteLock::Records => Some(WRITE_LOCK),
            WriteLock::BundleCut => Some(CUT_LOCK),
            WriteLock::RowsOnly => None,
        };
        self.begin("BEGIN", key).await
    }

    async fn read(&self) -> Result<Box<dyn Tx + '_>, StoreError> {
        self.begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", None)
            .await
    }

    async fn analyze(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .batch_execute("ANALYZE certificates, certificate_terms")
            .await
            .map_err(pg)
    }
}

async fn migrate(client: &mut Object) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at BIGINT NOT NULL
         )",
    )
    .await
    .map_err(pg)?;
    let found: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
            &[],
        )
        .await
        .map_err(pg)?
        .try_get(0)
        .map_err(pg)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let all = migrations(Dialect::Postgres);
    for (i, sql) in all.iter().enumerate().skip(found.max(0) as usize) {
        tx.batch_execute(sql).await.map_err(pg)?;
        let version = i as i32 + 1;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[&version, &now],
        )
        .await
        .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)
}

/// Connect to (and migrate) the PostgreSQL console database at `url`.
pub async fn open(url: &str) -> Result<Store, StoreError> {
    let (url, ca) = super::pg_tls::split_tls(url)?;
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| StoreError::Settings(format!("the PostgreSQL address cannot be read: {e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    config.application_name("cardstation-console");
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match ca {
        Some(ca) => Manager::from_config(
            config,
            super::pg_tls::RustlsConnector::from_ca_file(&ca)?,
            manager_config,
        ),
        None => Manager::from_config(config, NoTls, manager_config),
    };
    let pool = Pool::builder(manager)
        .max_size(16)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|e| StoreError::Settings(e.to_string()))?;
    let db = PostgresDb { pool };
    migrate(&mut db.client().await?).await?;
    let store = Store::new(Box::new(db));
    store.backfill().await?;
    Ok(store)
}
