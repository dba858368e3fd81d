//! PostgreSQL storage for several console instances on one database.
//!
//! Correctness across instances comes from the database, never from a lock in
//! this process: every writing transaction first takes one transaction-scoped
//! advisory lock, so changes and their bundle versions are serialized across all
//! instances; bundle reads run in one REPEATABLE READ snapshot, so a version and
//! the lists read with it always belong together. Migrations run under their own
//! advisory lock, so instances starting at once apply each migration once.

use std::time::Duration;

use deadpool_postgres::Transaction;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::{IsolationLevel, NoTls, Row};

use cardstation_protocol::messages::{CertificateRecord, CertificateStatus, RevokedEntry};

use super::sqlite::status_text;
use super::{BundleState, FullRecord, NewCertificate, Snapshot, Store, StoreError, Stored};

/// Schema migrations, in order; `schema_migrations` lists those applied.
const MIGRATIONS: &[&str] = &["CREATE TABLE certificates (
        sha256      TEXT PRIMARY KEY,
        pem         TEXT NOT NULL,
        subject     TEXT NOT NULL,
        not_after   BIGINT NOT NULL,
        card_serial BIGINT,
        chuid_guid  TEXT,
        slot        TEXT,
        label       TEXT,
        operator    TEXT NOT NULL,
        station_id  TEXT NOT NULL,
        uploaded_at BIGINT NOT NULL,
        status      TEXT NOT NULL DEFAULT 'active',
        reason      TEXT,
        revoked_at  BIGINT
     );
     CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
     INSERT INTO meta (key, value) VALUES ('bundle_version', 1);"];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Advisory lock keys (any constants unique to the console: "CSCN" + purpose).
const WRITE_LOCK: i64 = 0x4353_434e_0000_0001;
const MIGRATION_LOCK: i64 = 0x4353_434e_0000_0002;

const COLUMNS: &str =
    "sha256, subject, not_after, card_serial, chuid_guid, slot, label, operator, \
     station_id, uploaded_at, status, reason, revoked_at";

pub struct PostgresStore {
    pool: Pool,
}

/// Connection trouble (server down or restarting, pool timeout) is `Unavailable`:
/// the request can be repeated; anything else is a failure.
fn pg(e: tokio_postgres::Error) -> StoreError {
    let transient = e.is_closed()
        || e.code().is_some_and(|c| {
            let c = c.code();
            c.starts_with("08") || c.starts_with("57P") || c == "53300"
        })
        || (e.as_db_error().is_none()
            && std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>()));
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

fn record(r: &Row) -> Result<CertificateRecord, StoreError> {
    let get_err = |e: tokio_postgres::Error| StoreError::Failed(e.to_string());
    let status: String = r.try_get(10).map_err(get_err)?;
    let serial: Option<i64> = r.try_get(3).map_err(get_err)?;
    Ok(CertificateRecord {
        sha256: r.try_get(0).map_err(get_err)?,
        subject: r.try_get(1).map_err(get_err)?,
        not_after: r.try_get(2).map_err(get_err)?,
        card_serial: serial.and_then(|s| u32::try_from(s).ok()),
        chuid_guid: r.try_get(4).map_err(get_err)?,
        slot: r.try_get(5).map_err(get_err)?,
        label: r.try_get(6).map_err(get_err)?,
        operator: r.try_get(7).map_err(get_err)?,
        station_id: r.try_get(8).map_err(get_err)?,
        uploaded_at: r.try_get(9).map_err(get_err)?,
        status: if status == "revoked" {
            CertificateStatus::Revoked
        } else {
            CertificateStatus::Active
        },
        revocation_reason: r.try_get(11).map_err(get_err)?,
        revoked_at: r.try_get(12).map_err(get_err)?,
    })
}

async fn get(
    tx: &impl deadpool_postgres::GenericClient,
    sha256: &str,
) -> Result<Option<CertificateRecord>, StoreError> {
    let row = tx
        .query_opt(
            &format!("SELECT {COLUMNS} FROM certificates WHERE sha256 = $1"),
            &[&sha256],
        )
        .await
        .map_err(pg)?;
    row.as_ref().map(record).transpose()
}

async fn bundle_version(tx: &impl deadpool_postgres::GenericClient) -> Result<u64, StoreError> {
    let row = tx
        .query_one("SELECT value FROM meta WHERE key = 'bundle_version'", &[])
        .await
        .map_err(pg)?;
    let v: i64 = row.try_get(0).map_err(pg)?;
    Ok(u64::try_from(v).unwrap_or(0))
}

/// The one lock every writer takes first (released at commit or rollback).
async fn lock_writers(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
        .await
        .map(|_| ())
        .map_err(pg)
}

async fn bump_version(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE meta SET value = value + 1 WHERE key = 'bundle_version'",
        &[],
    )
    .await
    .map(|_| ())
    .map_err(pg)
}

async fn migrate(client: &mut deadpool_postgres::Client) -> Result<(), StoreError> {
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
    let row = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
            &[],
        )
        .await
        .map_err(pg)?;
    let found: i64 = row.try_get(0).map_err(pg)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
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

impl PostgresStore {
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Settings(format!("the PostgreSQL address cannot be read: {e}"))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.application_name("cardstation-console");
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| StoreError::Settings(e.to_string()))?;
        let store = PostgresStore { pool };
        let mut client = store.client().await?;
        migrate(&mut client).await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn upload(&self, c: NewCertificate) -> Result<Stored, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        lock_writers(&tx).await?;
        if let Some(rec) = get(&tx, &c.sha256).await? {
            return Ok(Stored::Existing(rec));
        }
        tx.execute(
            "INSERT INTO certificates (sha256, pem, subject, not_after, card_serial, chuid_guid,
                 slot, label, operator, station_id, uploaded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                &c.sha256,
                &c.pem,
                &c.subject,
                &c.not_after,
                &c.card_serial.map(i64::from),
                &c.chuid_guid,
                &c.slot,
                &c.label,
                &c.operator,
                &c.station_id,
                &c.uploaded_at,
            ],
        )
        .await
        .map_err(pg)?;
        bump_version(&tx).await?;
        let rec = get(&tx, &c.sha256)
            .await?
            .ok_or_else(|| StoreError::Failed("the stored record vanished".into()))?;
        tx.commit().await.map_err(pg)?;
        Ok(Stored::Created(rec))
    }

    async fn get(&self, sha256: &str) -> Result<Option<CertificateRecord>, StoreError> {
        let client = self.client().await?;
        get(&client, sha256).await
    }

    async fn revoke(
        &self,
        sha256: &str,
        reason: &str,
        now: i64,
    ) -> Result<Option<CertificateRecord>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        lock_writers(&tx).await?;
        let changed = tx
            .execute(
                "UPDATE certificates SET status = 'revoked', reason = $2, revoked_at = $3
                 WHERE sha256 = $1 AND status = 'active'",
                &[&sha256, &reason, &now],
            )
            .await
            .map_err(pg)?;
        if changed > 0 {
            bump_version(&tx).await?;
        }
        let rec = get(&tx, sha256).await?;
        tx.commit().await.map_err(pg)?;
        Ok(rec)
    }

    async fn bundle_version(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        bundle_version(&client).await
    }

    async fn bundle_state(&self) -> Result<BundleState, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg)?;
        let version = bundle_version(&tx).await?;
        let allowed = tx
            .query(
                "SELECT sha256 FROM certificates WHERE status = 'active' ORDER BY sha256",
                &[],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(|r| r.try_get(0).map_err(pg))
            .collect::<Result<Vec<String>, _>>()?;
        let revoked = tx
            .query(
                "SELECT sha256, reason, revoked_at FROM certificates
                 WHERE status = 'revoked' ORDER BY sha256",
                &[],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(|r| {
                Ok(RevokedEntry {
                    sha256: r.try_get(0).map_err(pg)?,
                    reason: r
                        .try_get::<_, Option<String>>(1)
                        .map_err(pg)?
                        .unwrap_or_default(),
                    revoked_at: r
                        .try_get::<_, Option<i64>>(2)
                        .map_err(pg)?
                        .unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        tx.commit().await.map_err(pg)?;
        Ok(BundleState {
            version,
            allowed,
            revoked,
        })
    }

    async fn count(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT COUNT(*) FROM certificates", &[])
            .await
            .map_err(pg)?;
        row.try_get(0).map_err(pg)
    }

    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg)?;
        let bundle_version = bundle_version(&tx).await?;
        let records = tx
            .query(
                &format!("SELECT {COLUMNS}, pem FROM certificates ORDER BY sha256"),
                &[],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(|r| {
                Ok(FullRecord {
                    record: record(r)?,
                    pem: r.try_get(13).map_err(pg)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        tx.commit().await.map_err(pg)?;
        Ok(Snapshot {
            bundle_version,
            records,
        })
    }

    async fn import(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        lock_writers(&tx).await?;
        let n: i64 = tx
            .query_one("SELECT COUNT(*) FROM certificates", &[])
            .await
            .map_err(pg)?
            .try_get(0)
            .map_err(pg)?;
        if n > 0 {
            return Err(StoreError::NotEmpty(n));
        }
        let insert = tx
            .prepare(
                "INSERT INTO certificates (sha256, pem, subject, not_after, card_serial,
                     chuid_guid, slot, label, operator, station_id, uploaded_at, status,
                     reason, revoked_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .await
            .map_err(pg)?;
        for FullRecord { pem, record: r } in &snapshot.records {
            tx.execute(
                &insert,
                &[
                    &r.sha256,
                    pem,
                    &r.subject,
                    &r.not_after,
                    &r.card_serial.map(i64::from),
                    &r.chuid_guid,
                    &r.slot,
                    &r.label,
                    &r.operator,
                    &r.station_id,
                    &r.uploaded_at,
                    &status_text(r.status),
                    &r.revocation_reason,
                    &r.revoked_at,
                ],
            )
            .await
            .map_err(pg)?;
        }
        let version = i64::try_from(snapshot.bundle_version).unwrap_or(i64::MAX);
        tx.execute(
            "UPDATE meta SET value = $1 WHERE key = 'bundle_version'",
            &[&version],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)
    }
}
