//! PostgreSQL storage for several console instances on one database.
//!
//! Correctness across instances comes from the database, never from a lock in
//! this process: every writing transaction first takes one transaction-scoped
//! advisory lock, so changes and their bundle versions are serialized across all
//! instances; bundle reads run in one REPEATABLE READ snapshot, so a version and
//! the lists read with it always belong together. Migrations run under their own
//! advisory lock, so instances starting at once apply each migration once.

use std::time::Duration;

use deadpool_postgres::{GenericClient, Transaction};
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::{IsolationLevel, NoTls, Row};

use cardstation_protocol::messages::{
    AuditAnchor, AuditHead, CertificateRecord, CertificateStatus, EventsAccepted, GatewayEvent,
    RecordedEvent,
};

use super::postgres_bundle;
use super::search::{self, Search};
use super::sqlite::status_text;
use super::{
    audit_hash, AnchorSet, AuditRow, BundleState, BundleVersionRow, EventQuery, FullRecord,
    GatewayRow, NewCertificate, PublishedBundle, Revoked, RevokedEntry, RevokedKey, Snapshot,
    StationAnchor, StationRow, Store, StoreError, Stored, ADMIN,
};

/// Schema migrations, in order; `schema_migrations` lists those applied.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE certificates (
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
     INSERT INTO meta (key, value) VALUES ('bundle_version', 1);",
    // 2: station identities, revocation by key and by whom, the console audit trail.
    "ALTER TABLE certificates ADD COLUMN key_sha256 TEXT;
     ALTER TABLE certificates ADD COLUMN revoked_by TEXT;
     CREATE INDEX certificates_revoked_by ON certificates (revoked_by, revoked_at);
     CREATE TABLE stations (
        cert_sha256 TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        issued_at   BIGINT NOT NULL,
        not_after   BIGINT NOT NULL,
        revoked_at  BIGINT
     );
     CREATE INDEX stations_name ON stations (name);
     CREATE TABLE revoked_keys (
        key_sha256  TEXT PRIMARY KEY,
        cert_sha256 TEXT NOT NULL,
        revoked_at  BIGINT NOT NULL,
        revoked_by  TEXT NOT NULL
     );
     CREATE TABLE audit (
        seq     BIGINT PRIMARY KEY,
        at      BIGINT NOT NULL,
        actor   TEXT NOT NULL,
        action  TEXT NOT NULL,
        subject TEXT NOT NULL,
        detail  TEXT NOT NULL,
        prev    TEXT NOT NULL,
        hash    TEXT NOT NULL
     );
     CREATE INDEX audit_actor ON audit (actor, action, at);",
    // The trust-bundle chain: one row per signed version, and the bundle served.
    "CREATE TABLE bundle_versions (
        version        BIGINT PRIMARY KEY,
        header         BYTEA NOT NULL,
        hash           BYTEA NOT NULL,
        changes        BYTEA,
        source_counter BIGINT NOT NULL,
        created_at     BIGINT NOT NULL
     );
     CREATE TABLE bundle_published (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        version     BIGINT NOT NULL,
        full_bundle BYTEA NOT NULL
     );",
    // 4: certificate search: the words each record is found by (byte order, so a
    // word's range is its prefix), and newest-first orders.
    "CREATE TABLE certificate_terms (
        term   TEXT COLLATE \"C\" NOT NULL,
        sha256 TEXT NOT NULL,
        PRIMARY KEY (term, sha256)
     );
     CREATE INDEX certificate_terms_sha256 ON certificate_terms (sha256, term);
     CREATE INDEX certificates_newest ON certificates (uploaded_at, sha256);
     CREATE INDEX certificates_status_newest ON certificates (status, uploaded_at, sha256);
     CREATE INDEX certificates_station_newest ON certificates (station_id, uploaded_at, sha256);",
    // Gateway identities, their events (each once per gateway and id), stations' audit anchors.
    "CREATE TABLE gateways (
        cert_sha256 TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        issued_at   BIGINT NOT NULL,
        not_after   BIGINT NOT NULL,
        revoked_at  BIGINT
     );
     CREATE INDEX gateways_name ON gateways (name);
     CREATE TABLE gateway_events (
        gateway        TEXT NOT NULL,
        id             TEXT NOT NULL,
        at             BIGINT NOT NULL,
        received_at    BIGINT NOT NULL,
        reader         TEXT NOT NULL,
        decision       TEXT NOT NULL,
        fingerprint    TEXT,
        subject        TEXT,
        reasons        TEXT NOT NULL,
        bundle_version BIGINT,
        PRIMARY KEY (gateway, id)
     );
     CREATE INDEX gateway_events_at ON gateway_events (at);
     CREATE INDEX gateway_events_fingerprint ON gateway_events (fingerprint, at);
     CREATE INDEX gateway_events_gateway ON gateway_events (gateway, at);
     CREATE TABLE audit_anchors (
        station     TEXT PRIMARY KEY,
        row_count   BIGINT NOT NULL,
        hash        TEXT NOT NULL,
        received_at BIGINT NOT NULL
     );",
];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Advisory lock keys (any constants unique to the console: "CSCN" + purpose).
const WRITE_LOCK: i64 = 0x4353_434e_0000_0001;
const MIGRATION_LOCK: i64 = 0x4353_434e_0000_0002;

const COLUMNS: &str =
    "sha256, subject, not_after, card_serial, chuid_guid, slot, label, operator, \
     station_id, uploaded_at, status, reason, revoked_at, revoked_by";

pub struct PostgresStore {
    pool: Pool,
}

/// Connection trouble (server down or restarting, pool timeout) is `Unavailable`:
/// the request can be repeated; anything else is a failure.
pub(super) fn pg(e: tokio_postgres::Error) -> StoreError {
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
        revoked_by: r.try_get(13).map_err(get_err)?,
    })
}

async fn get(
    tx: &impl GenericClient,
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

async fn bundle_version(tx: &impl GenericClient) -> Result<u64, StoreError> {
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

/// Append a row to the audit trail. Callers hold the writer lock, so rows and
/// their chain are written in one order across every instance.
async fn audit(
    tx: &Transaction<'_>,
    at: i64,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> Result<(), StoreError> {
    let last = tx
        .query_opt("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", &[])
        .await
        .map_err(pg)?;
    let (seq, prev) = match last {
        Some(r) => (
            r.try_get::<_, i64>(0).map_err(pg)? + 1,
            r.try_get::<_, String>(1).map_err(pg)?,
        ),
        None => (1, String::new()),
    };
    let hash = audit_hash(&prev, seq, at, actor, action, subject, detail);
    tx.execute(
        "INSERT INTO audit (seq, at, actor, action, subject, detail, prev, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[&seq, &at, &actor, &action, &subject, &detail, &prev, &hash],
    )
    .await
    .map(|_| ())
    .map_err(pg)
}

const STATION_COLUMNS: &str = "cert_sha256, name, issued_at, not_after, revoked_at";

fn station_row(r: &Row) -> Result<StationRow, StoreError> {
    Ok(StationRow {
        cert_sha256: r.try_get(0).map_err(pg)?,
        name: r.try_get(1).map_err(pg)?,
        issued_at: r.try_get(2).map_err(pg)?,
        not_after: r.try_get(3).map_err(pg)?,
        revoked_at: r.try_get(4).map_err(pg)?,
    })
}

async fn audit_rows(tx: &impl GenericClient) -> Result<Vec<AuditRow>, StoreError> {
    tx.query(
        "SELECT seq, at, actor, action, subject, detail, prev, hash FROM audit ORDER BY seq",
        &[],
    )
    .await
    .map_err(pg)?
    .iter()
    .map(|r| {
        Ok(AuditRow {
            seq: r.try_get(0).map_err(pg)?,
            at: r.try_get(1).map_err(pg)?,
            actor: r.try_get(2).map_err(pg)?,
            action: r.try_get(3).map_err(pg)?,
            subject: r.try_get(4).map_err(pg)?,
            detail: r.try_get(5).map_err(pg)?,
            prev: r.try_get(6).map_err(pg)?,
            hash: r.try_get(7).map_err(pg)?,
        })
    })
    .collect()
}

/// Reinstate one revoked certificate and its key; false when it was not revoked.
async fn reinstate_one(tx: &Transaction<'_>, sha256: &str, now: i64) -> Result<bool, StoreError> {
    let Some(row) = tx
        .query_opt(
            "SELECT key_sha256 FROM certificates WHERE sha256 = $1 AND status = 'revoked'",
            &[&sha256],
        )
        .await
        .map_err(pg)?
    else {
        return Ok(false);
    };
    let key: Option<String> = row.try_get(0).map_err(pg)?;
    tx.execute(
        "UPDATE certificates SET status = 'active', reason = NULL, revoked_at = NULL,
             revoked_by = NULL WHERE sha256 = $1",
        &[&sha256],
    )
    .await
    .map_err(pg)?;
    if let Some(key) = key {
        tx.execute("DELETE FROM revoked_keys WHERE key_sha256 = $1", &[&key])
            .await
            .map_err(pg)?;
    }
    bump_version(tx).await?;
    audit(tx, now, ADMIN, "reinstate", sha256, "").await?;
    Ok(true)
}

async fn backfill_key_hashes(client: &mut deadpool_postgres::Client) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(pg)?;
    lock_writers(&tx).await?;
    let rows = tx
        .query(
            "SELECT sha256, pem FROM certificates WHERE key_sha256 IS NULL",
            &[],
        )
        .await
        .map_err(pg)?;
    for r in rows {
        let (sha256, pem): (String, String) =
            (r.try_get(0).map_err(pg)?, r.try_get(1).map_err(pg)?);
        if let Some(key) = super::key_sha256_of_pem(&pem) {
            tx.execute(
                "UPDATE certificates SET key_sha256 = $2 WHERE sha256 = $1",
                &[&sha256, &key],
            )
            .await
            .map_err(pg)?;
        }
    }
    tx.commit().await.map_err(pg)
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
        let (url, ca) = super::pg_tls::split_tls(url)?;
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Settings(format!("the PostgreSQL address cannot be read: {e}"))
        })?;
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
        let store = PostgresStore { pool };
        let mut client = store.client().await?;
        migrate(&mut client).await?;
        backfill_key_hashes(&mut client).await?;
        backfill_terms(&mut client).await?;
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
        if let Some(r) = tx
            .query_opt(
                "SELECT revoked_at FROM revoked_keys WHERE key_sha256 = $1",
                &[&c.key_sha256],
            )
            .await
            .map_err(pg)?
        {
            return Ok(Stored::KeyRevoked {
                revoked_at: r.try_get(0).map_err(pg)?,
            });
        }
        tx.execute(
            "INSERT INTO certificates (sha256, pem, subject, not_after, card_serial, chuid_guid,
                 slot, label, operator, station_id, uploaded_at, key_sha256)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
                &c.key_sha256,
            ],
        )
        .await
        .map_err(pg)?;
        insert_terms(
            &tx,
            &search::terms(
                &c.sha256,
                &c.subject,
                c.label.as_deref(),
                &c.station_id,
                c.card_serial,
                c.chuid_guid.as_deref(),
            ),
            &c.sha256,
        )
        .await?;
        bump_version(&tx).await?;
        audit(
            &tx,
            c.uploaded_at,
            &c.station_id,
            "upload",
            &c.sha256,
            &c.subject,
        )
        .await?;
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
        actor: &str,
        limit_per_hour: Option<u32>,
    ) -> Result<Revoked, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        lock_writers(&tx).await?;
        let Some(rec) = get(&tx, sha256).await? else {
            return Ok(Revoked::NotFound);
        };
        if rec.status == CertificateStatus::Revoked {
            return Ok(Revoked::Done(rec));
        }
        if let Some(limit) = limit_per_hour {
            let recent: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM audit WHERE actor = $1 AND action = 'revoke' AND at > $2",
                    &[&actor, &(now - 3600)],
                )
                .await
                .map_err(pg)?
                .try_get(0)
                .map_err(pg)?;
            if recent >= i64::from(limit) {
                return Ok(Revoked::RateLimited { limit });
            }
        }
        tx.execute(
            "UPDATE certificates SET status = 'revoked', reason = $2, revoked_at = $3,
                 revoked_by = $4 WHERE sha256 = $1 AND status = 'active'",
            &[&sha256, &reason, &now, &actor],
        )
        .await
        .map_err(pg)?;
        tx.execute(
            "INSERT INTO revoked_keys (key_sha256, cert_sha256, revoked_at, revoked_by)
             SELECT key_sha256, sha256, $2, $3 FROM certificates
             WHERE sha256 = $1 AND key_sha256 IS NOT NULL
             ON CONFLICT (key_sha256) DO NOTHING",
            &[&sha256, &now, &actor],
        )
        .await
        .map_err(pg)?;
        bump_version(&tx).await?;
        audit(&tx, now, actor, "revoke", sha256, reason).await?;
        let rec = get(&tx, sha256)
            .await?
            .ok_or_else(|| StoreError::Failed("the revoked record vanished".into()))?;
        tx.commit().await.map_err(pg)?;
        Ok(Revoked::Done(rec))
    }

    async fn reinstate(
        &self,
        sha256: &str,
        now: i64,
    ) -> Result<Option<CertificateRecord>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        lock_writers(&tx).await?;
        reinstate_one(&tx, sha256, now).await?;
        let rec = get(&tx, sha256).await?;
        tx.commit().await.map_err(pg)?;
        Ok(rec)
    }

    async fn reinstate_by_station(
        &self,
        station: &str,
        since: i64,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        lock_writers(&tx).await?;
        let fps = tx
            .query(
                "SELECT sha256 FROM certificates WHERE status = 'revoked'
                 AND revoked_by = $1 AND revoked_at >= $2 ORDER BY sha256",
                &[&station, &since],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(|r| r.try_get(0).map_err(pg))
            .collect::<Result<Vec<String>, _>>()?;
        for fp in &fps {
            reinstate_one(&tx, fp, now).await?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(fps)
    }

    async fn add_station(&self, st: &StationRow, actor: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        lock_writers(&tx).await?;
        let active: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM stations WHERE name = $1 AND revoked_at IS NULL",
                &[&st.name],
            )
            .await
            .map_err(pg)?
            .try_get(0)
            .map_err(pg)?;
        if active > 0 {
            return Err(StoreError::Conflict(format!(
                "station {} already has an active credential; revoke it first (station revoke {})",
                st.name, st.name
            )));
        }
        tx.execute(
            &format!("INSERT INTO stations ({STATION_COLUMNS}) VALUES ($1, $2, $3, $4, NULL)"),
            &[&st.cert_sha256, &st.name, &st.issued_at, &st.not_after],
        )
        .await
        .map_err(pg)?;
        audit(
            &tx,
            st.issued_at,
            actor,
            "station-add",
            &st.name,
            &st.cert_sha256,
        )
        .await?;
        tx.commit().await.map_err(pg)
    }

    async fn stations(&self) -> Result<Vec<StationRow>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                &format!("SELECT {STATION_COLUMNS} FROM stations ORDER BY name, issued_at"),
                &[],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(station_row)
            .collect()
    }

    async fn revoke_station(&self, name: &str, now: i64) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        lock_writers(&tx).await?;
        let n = tx
            .execute(
                "UPDATE stations SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
                &[&name, &now],
            )
            .await
            .map_err(pg)?;
        if n > 0 {
            audit(&tx, now, ADMIN, "station-revoke", name, "").await?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(n as usize)
    }

    async fn station_by_cert(&self, cert_sha256: &str) -> Result<Option<StationRow>, StoreError> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("SELECT {STATION_COLUMNS} FROM stations WHERE cert_sha256 = $1"),
                &[&cert_sha256],
            )
            .await
            .map_err(pg)?
            .as_ref()
            .map(station_row)
            .transpose()
    }

    async fn audit(&self) -> Result<Vec<AuditRow>, StoreError> {
        let client = self.client().await?;
        audit_rows(&client).await
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
                "SELECT sha256 FROM certificates WHERE status = 'active'",
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
                 WHERE status = 'revoked'",
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
        let revoked_keys = tx
            .query("SELECT key_sha256 FROM revoked_keys", &[])
            .await
            .map_err(pg)?
            .iter()
            .map(|r| r.try_get(0).map_err(pg))
            .collect::<Result<Vec<String>, _>>()?;
        tx.commit().await.map_err(pg)?;
        Ok(BundleState {
            version,
            allowed,
            revoked,
            revoked_keys,
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
                &format!("SELECT {COLUMNS}, pem, key_sha256 FROM certificates ORDER BY sha256"),
                &[],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(|r| {
                Ok(FullRecord {
                    record: record(r)?,
                    pem: r.try_get(14).map_err(pg)?,
                    key_sha256: r.try_get(15).map_err(pg)?,
                    revoked_by: r.try_get(13).map_err(pg)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let stations = tx
            .query(
                &format!("SELECT {STATION_COLUMNS} FROM stations ORDER BY cert_sha256"),
                &[],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(station_row)
            .collect::<Result<Vec<_>, _>>()?;
        let revoked_keys = tx
            .query(
                "SELECT key_sha256, cert_sha256, revoked_at, revoked_by FROM revoked_keys
                 ORDER BY key_sha256",
                &[],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(|r| {
                Ok(RevokedKey {
                    key_sha256: r.try_get(0).map_err(pg)?,
                    cert_sha256: r.try_get(1).map_err(pg)?,
                    revoked_at: r.try_get(2).map_err(pg)?,
                    revoked_by: r.try_get(3).map_err(pg)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let audit = audit_rows(&tx).await?;
        let (bundle_chain, bundle_published) = postgres_bundle::all(&tx).await?;
        let (gateways, events, anchors) = gateway_snapshot(&tx).await?;
        tx.commit().await.map_err(pg)?;
        Ok(Snapshot {
            bundle_version,
            records,
            stations,
            revoked_keys,
            audit,
            bundle_chain,
            bundle_published,
            gateways,
            events,
            anchors,
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
        let others: i64 = tx
            .query_one(
                "SELECT (SELECT COUNT(*) FROM stations) + (SELECT COUNT(*) FROM audit)",
                &[],
            )
            .await
            .map_err(pg)?
            .try_get(0)
            .map_err(pg)?;
        if n > 0 || others > 0 {
            return Err(StoreError::NotEmpty(n));
        }
        let insert = tx
            .prepare(
                "INSERT INTO certificates (sha256, pem, subject, not_after, card_serial,
                     chuid_guid, slot, label, operator, station_id, uploaded_at, status,
                     reason, revoked_at, key_sha256, revoked_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            )
            .await
            .map_err(pg)?;
        for FullRecord {
            pem,
            record: r,
            key_sha256,
            revoked_by,
        } in &snapshot.records
        {
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
                    key_sha256,
                    revoked_by,
                ],
            )
            .await
            .map_err(pg)?;
            insert_terms(&tx, &record_terms(r), &r.sha256).await?;
        }
        for st in &snapshot.stations {
            tx.execute(
                &format!("INSERT INTO stations ({STATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"),
                &[
                    &st.cert_sha256,
                    &st.name,
                    &st.issued_at,
                    &st.not_after,
                    &st.revoked_at,
                ],
            )
            .await
            .map_err(pg)?;
        }
        for k in &snapshot.revoked_keys {
            tx.execute(
                "INSERT INTO revoked_keys (key_sha256, cert_sha256, revoked_at, revoked_by)
                 VALUES ($1, $2, $3, $4)",
                &[&k.key_sha256, &k.cert_sha256, &k.revoked_at, &k.revoked_by],
            )
            .await
            .map_err(pg)?;
        }
        for a in &snapshot.audit {
            tx.execute(
                "INSERT INTO audit (seq, at, actor, action, subject, detail, prev, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &a.seq, &a.at, &a.actor, &a.action, &a.subject, &a.detail, &a.prev, &a.hash,
                ],
            )
            .await
            .map_err(pg)?;
        }
        postgres_bundle::import(
            &tx,
            &snapshot.bundle_chain,
            snapshot.bundle_published.as_deref(),
        )
        .await?;
        gateway_import(&tx, snapshot).await?;
        let version = i64::try_from(snapshot.bundle_version).unwrap_or(i64::MAX);
        tx.execute(
            "UPDATE meta SET value = $1 WHERE key = 'bundle_version'",
            &[&version],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        // Statistics for what was just moved in, so searches are planned for it
        // at once rather than after autovacuum's next visit.
        client
            .batch_execute("ANALYZE certificates, certificate_terms")
            .await
            .map_err(pg)
    }

    async fn search(&self, s: &Search) -> Result<Vec<CertificateRecord>, StoreError> {
        let boxed = |values: Vec<search::Value>| -> Vec<Param> {
            values
                .into_iter()
                .map(|v| -> Param {
                    match v {
                        search::Value::Text(t) => Box::new(t),
                        search::Value::Int(i) => Box::new(i),
                    }
                })
                .collect()
        };
        let mut client = self.client().await?;
        // One snapshot for the counts and the page.
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg)?;
        let mut counts = Vec::new();
        for w in &s.words {
            let (sql, values) = search::probe(w, '$');
            let values = boxed(values);
            let n: i64 = tx
                .query_one(sql.as_str(), &pg_params(&values))
                .await
                .map_err(pg)?
                .try_get(0)
                .map_err(pg)?;
            counts.push(n);
        }
        let (sql, values) = search::query(s, COLUMNS, '$', search::driver(&counts));
        let values = boxed(values);
        // An unnamed statement is planned with the words' own ranges (a cached one
        // turns generic after a few runs and walks every record for a rare word).
        let rows = tx
            .query(sql.as_str(), &pg_params(&values))
            .await
            .map_err(pg)?
            .iter()
            .map(record)
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().await.map_err(pg)?;
        Ok(rows)
    }

    async fn bundle_head(&self) -> Result<Option<PublishedBundle>, StoreError> {
        let client = self.client().await?;
        postgres_bundle::head(&client).await
    }

    async fn bundle_latest_version(&self) -> Result<Option<u64>, StoreError> {
        let client = self.client().await?;
        postgres_bundle::latest_version(&client).await
    }

    async fn bundle_history(
        &self,
        from_version: u64,
        limit: u32,
    ) -> Result<Vec<BundleVersionRow>, StoreError> {
        let client = self.client().await?;
        postgres_bundle::history(&client, from_version, limit).await
    }

    async fn cut_bundle_version(
        &self,
        row: &BundleVersionRow,
        full: &[u8],
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let cut = postgres_bundle::cut(&tx, row, full).await?;
        tx.commit().await.map_err(pg)?;
        Ok(cut)
    }

    // --- Gateways, their events and the stations' audit anchors ---

    async fn add_gateway(&self, gw: &GatewayRow, actor: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        lock_writers(&tx).await?;
        let active: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM gateways WHERE name = $1 AND revoked_at IS NULL",
                &[&gw.name],
            )
            .await
            .map_err(pg)?
            .try_get(0)
            .map_err(pg)?;
        if active > 0 {
            return Err(StoreError::Conflict(format!(
                "gateway {} already has an active credential; revoke it first (gateway revoke {})",
                gw.name, gw.name
            )));
        }
        tx.execute(
            &format!("INSERT INTO gateways ({STATION_COLUMNS}) VALUES ($1, $2, $3, $4, NULL)"),
            &[&gw.cert_sha256, &gw.name, &gw.issued_at, &gw.not_after],
        )
        .await
        .map_err(pg)?;
        audit(
            &tx,
            gw.issued_at,
            actor,
            "gateway-add",
            &gw.name,
            &gw.cert_sha256,
        )
        .await?;
        tx.commit().await.map_err(pg)
    }

    async fn gateways(&self) -> Result<Vec<GatewayRow>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                &format!("SELECT {STATION_COLUMNS} FROM gateways ORDER BY name, issued_at"),
                &[],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(station_row)
            .collect()
    }

    async fn revoke_gateway(&self, name: &str, now: i64) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        lock_writers(&tx).await?;
        let n = tx
            .execute(
                "UPDATE gateways SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
                &[&name, &now],
            )
            .await
            .map_err(pg)?;
        if n > 0 {
            audit(&tx, now, ADMIN, "gateway-revoke", name, "").await?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(n as usize)
    }

    async fn gateway_by_cert(&self, cert_sha256: &str) -> Result<Option<GatewayRow>, StoreError> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("SELECT {STATION_COLUMNS} FROM gateways WHERE cert_sha256 = $1"),
                &[&cert_sha256],
            )
            .await
            .map_err(pg)?
            .as_ref()
            .map(station_row)
            .transpose()
    }

    async fn add_events(
        &self,
        gateway: &str,
        events: &[GatewayEvent],
        received_at: i64,
    ) -> Result<EventsAccepted, StoreError> {
        let mut client = self.client().await?;
        // Events touch neither the bundle nor the audit trail: no writer lock; the
        // primary key keeps each (gateway, id) once even when two batches race.
        let tx = client.transaction().await.map_err(pg)?;
        let insert = tx
            .prepare(&format!(
                "INSERT INTO gateway_events ({EVENT_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (gateway, id) DO NOTHING"
            ))
            .await
            .map_err(pg)?;
        let mut accepted = 0;
        for e in events {
            accepted += tx
                .execute(
                    &insert,
                    &[
                        &gateway,
                        &e.id,
                        &e.at,
                        &received_at,
                        &e.reader,
                        &e.decision.as_str(),
                        &e.fingerprint,
                        &e.subject,
                        &super::join_reasons(&e.reasons),
                        &e.bundle_version
                            .map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
                    ],
                )
                .await
                .map_err(pg)? as usize;
        }
        tx.commit().await.map_err(pg)?;
        Ok(EventsAccepted {
            accepted,
            duplicates: events.len() - accepted,
        })
    }

    async fn events(&self, query: &EventQuery) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.client().await?;
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM gateway_events WHERE TRUE");
        let mut args: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> = Vec::new();
        if let Some(fp) = &query.fingerprint {
            args.push(Box::new(fp.clone()));
            sql.push_str(&format!(" AND fingerprint = ${}", args.len()));
        }
        if let Some(gw) = &query.gateway {
            args.push(Box::new(gw.clone()));
            sql.push_str(&format!(" AND gateway = ${}", args.len()));
        }
        if let Some(since) = query.since {
            args.push(Box::new(since));
            sql.push_str(&format!(" AND at >= ${}", args.len()));
        }
        args.push(Box::new(i64::from(query.limit)));
        sql.push_str(&format!(
            " ORDER BY at DESC, received_at DESC, gateway, id LIMIT ${}",
            args.len()
        ));
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = args
            .iter()
            .map(|a| a.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        client
            .query(&sql, &params)
            .await
            .map_err(pg)?
            .iter()
            .map(event_row)
            .collect()
    }

    async fn set_audit_anchor(
        &self,
        station: &str,
        head: &AuditHead,
        now: i64,
    ) -> Result<AnchorSet, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        lock_writers(&tx).await?;
        if let Some(held) = anchor(&tx, station).await? {
            if head.rows < held.rows {
                return Ok(AnchorSet::Shorter(held));
            }
            if head.rows == held.rows {
                return Ok(if head.hash == held.hash {
                    AnchorSet::Stored(held)
                } else {
                    AnchorSet::Different(held)
                });
            }
        }
        let rows = i64::try_from(head.rows).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO audit_anchors (station, row_count, hash, received_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (station) DO UPDATE SET row_count = EXCLUDED.row_count,
                 hash = EXCLUDED.hash, received_at = EXCLUDED.received_at",
            &[&station, &rows, &head.hash, &now],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(AnchorSet::Stored(AuditAnchor {
            rows: head.rows,
            hash: head.hash.clone(),
            received_at: now,
        }))
    }

    async fn audit_anchor(&self, station: &str) -> Result<Option<AuditAnchor>, StoreError> {
        let client = self.client().await?;
        anchor(&client, station).await
    }

    async fn reset_audit_anchor(&self, station: &str, now: i64) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        lock_writers(&tx).await?;
        let Some(held) = anchor(&tx, station).await? else {
            return Ok(false);
        };
        tx.execute("DELETE FROM audit_anchors WHERE station = $1", &[&station])
            .await
            .map_err(pg)?;
        let detail = format!("{} rows, {}", held.rows, held.hash);
        audit(&tx, now, ADMIN, "anchor-reset", station, &detail).await?;
        tx.commit().await.map_err(pg)?;
        Ok(true)
    }
}

// --- Gateways, their events and the stations' audit anchors ---

const EVENT_COLUMNS: &str = "gateway, id, at, received_at, reader, decision, fingerprint, \
     subject, reasons, bundle_version";

fn event_row(r: &Row) -> Result<RecordedEvent, StoreError> {
    let decision: String = r.try_get(5).map_err(pg)?;
    let reasons: String = r.try_get(8).map_err(pg)?;
    let bundle_version: Option<i64> = r.try_get(9).map_err(pg)?;
    Ok(RecordedEvent {
        gateway: r.try_get(0).map_err(pg)?,
        received_at: r.try_get(3).map_err(pg)?,
        event: GatewayEvent {
            id: r.try_get(1).map_err(pg)?,
            at: r.try_get(2).map_err(pg)?,
            reader: r.try_get(4).map_err(pg)?,
            decision: super::decision_of(&decision),
            fingerprint: r.try_get(6).map_err(pg)?,
            subject: r.try_get(7).map_err(pg)?,
            reasons: super::split_reasons(&reasons),
            bundle_version: bundle_version.and_then(|v| u64::try_from(v).ok()),
        },
    })
}

fn anchor_of(r: &Row, first: usize) -> Result<AuditAnchor, StoreError> {
    Ok(AuditAnchor {
        rows: u64::try_from(r.try_get::<_, i64>(first).map_err(pg)?).unwrap_or(0),
        hash: r.try_get(first + 1).map_err(pg)?,
        received_at: r.try_get(first + 2).map_err(pg)?,
    })
}

async fn anchor(tx: &impl GenericClient, station: &str) -> Result<Option<AuditAnchor>, StoreError> {
    tx.query_opt(
        "SELECT row_count, hash, received_at FROM audit_anchors WHERE station = $1",
        &[&station],
    )
    .await
    .map_err(pg)?
    .map(|r| anchor_of(&r, 0))
    .transpose()
}

type GatewayParts = (Vec<GatewayRow>, Vec<RecordedEvent>, Vec<StationAnchor>);

/// The gateway part of a snapshot, read in the caller's transaction.
async fn gateway_snapshot(tx: &Transaction<'_>) -> Result<GatewayParts, StoreError> {
    let gateways = tx
        .query(
            &format!("SELECT {STATION_COLUMNS} FROM gateways ORDER BY cert_sha256"),
            &[],
        )
        .await
        .map_err(pg)?
        .iter()
        .map(station_row)
        .collect::<Result<Vec<_>, _>>()?;
    let events = tx
        .query(
            &format!("SELECT {EVENT_COLUMNS} FROM gateway_events ORDER BY gateway, id"),
            &[],
        )
        .await
        .map_err(pg)?
        .iter()
        .map(event_row)
        .collect::<Result<Vec<_>, _>>()?;
    let anchors = tx
        .query(
            "SELECT station, row_count, hash, received_at FROM audit_anchors ORDER BY station",
            &[],
        )
        .await
        .map_err(pg)?
        .iter()
        .map(|r| {
            Ok(StationAnchor {
                station: r.try_get(0).map_err(pg)?,
                anchor: anchor_of(r, 1)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok((gateways, events, anchors))
}

/// Write the gateway part of a snapshot into the caller's transaction (tables empty).
async fn gateway_import(tx: &Transaction<'_>, snapshot: &Snapshot) -> Result<(), StoreError> {
    let held: i64 = tx
        .query_one(
            "SELECT (SELECT COUNT(*) FROM gateways) + (SELECT COUNT(*) FROM gateway_events)
                 + (SELECT COUNT(*) FROM audit_anchors)",
            &[],
        )
        .await
        .map_err(pg)?
        .try_get(0)
        .map_err(pg)?;
    if held > 0 {
        return Err(StoreError::NotEmpty(0));
    }
    for g in &snapshot.gateways {
        tx.execute(
            &format!("INSERT INTO gateways ({STATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"),
            &[
                &g.cert_sha256,
                &g.name,
                &g.issued_at,
                &g.not_after,
                &g.revoked_at,
            ],
        )
        .await
        .map_err(pg)?;
    }
    let insert = tx
        .prepare(&format!(
            "INSERT INTO gateway_events ({EVENT_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .await
        .map_err(pg)?;
    for r in &snapshot.events {
        let e = &r.event;
        tx.execute(
            &insert,
            &[
                &r.gateway,
                &e.id,
                &e.at,
                &r.received_at,
                &e.reader,
                &e.decision.as_str(),
                &e.fingerprint,
                &e.subject,
                &super::join_reasons(&e.reasons),
                &e.bundle_version
                    .map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
            ],
        )
        .await
        .map_err(pg)?;
    }
    for a in &snapshot.anchors {
        tx.execute(
            "INSERT INTO audit_anchors (station, row_count, hash, received_at)
             VALUES ($1, $2, $3, $4)",
            &[
                &a.station,
                &i64::try_from(a.anchor.rows).unwrap_or(i64::MAX),
                &a.anchor.hash,
                &a.anchor.received_at,
            ],
        )
        .await
        .map_err(pg)?;
    }
    Ok(())
}

// Certificate search: its terms, written with each record.

type Param = Box<dyn tokio_postgres::types::ToSql + Sync + Send>;

fn pg_params(values: &[Param]) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    values
        .iter()
        .map(|v| v.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect()
}

fn record_terms(r: &CertificateRecord) -> Vec<String> {
    search::terms(
        &r.sha256,
        &r.subject,
        r.label.as_deref(),
        &r.station_id,
        r.card_serial,
        r.chuid_guid.as_deref(),
    )
}

async fn insert_terms(
    tx: &impl GenericClient,
    terms: &[String],
    sha256: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO certificate_terms (term, sha256) SELECT unnest($1::text[]), $2
         ON CONFLICT DO NOTHING",
        &[&terms, &sha256],
    )
    .await
    .map(|_| ())
    .map_err(pg)
}

/// Index certificates stored before search existed (once: afterwards every record has terms).
async fn backfill_terms(client: &mut deadpool_postgres::Client) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(pg)?;
    lock_writers(&tx).await?;
    let missing = tx
        .query(
            &format!(
                "SELECT {COLUMNS} FROM certificates c WHERE NOT EXISTS
                     (SELECT 1 FROM certificate_terms t WHERE t.sha256 = c.sha256)"
            ),
            &[],
        )
        .await
        .map_err(pg)?
        .iter()
        .map(record)
        .collect::<Result<Vec<_>, _>>()?;
    for r in &missing {
        insert_terms(&tx, &record_terms(r), &r.sha256).await?;
    }
    tx.commit().await.map_err(pg)
}
