//! SQLite storage: one file, WAL, full sync. Writes take SQLite's write lock up
//! front (`BEGIN IMMEDIATE`), so a second process on the same file (`migrate`, an
//! administration command) waits its turn instead of failing half-way.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};

use cardstation_protocol::messages::{
    AuditAnchor, AuditHead, CertificateRecord, CertificateStatus, EventsAccepted, GatewayEvent,
    RecordedEvent,
};

use super::search::{self, Search};
use super::sqlite_bundle;
use super::{
    audit_hash, AnchorSet, AuditRow, BundleState, BundleVersionRow, EventQuery, FullRecord,
    GatewayRow, NewCertificate, PublishedBundle, Revoked, RevokedEntry, RevokedKey, Snapshot,
    StationAnchor, StationRow, Store, StoreError, Stored, ADMIN,
};

/// Schema migrations, in order; `PRAGMA user_version` is how many have run. The
/// first is the schema consoles had before versioning (hence `IF NOT EXISTS`).
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS certificates (
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
     INSERT OR IGNORE INTO meta (key, value) VALUES ('bundle_version', 1);",
    // 2: station identities, revocation by key and by whom, the console audit trail.
    "ALTER TABLE certificates ADD COLUMN key_sha256 TEXT;
     ALTER TABLE certificates ADD COLUMN revoked_by TEXT;
     CREATE INDEX certificates_revoked_by ON certificates (revoked_by, revoked_at);
     CREATE TABLE stations (
        cert_sha256 TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        issued_at   INTEGER NOT NULL,
        not_after   INTEGER NOT NULL,
        revoked_at  INTEGER
     );
     CREATE INDEX stations_name ON stations (name);
     CREATE TABLE revoked_keys (
        key_sha256  TEXT PRIMARY KEY,
        cert_sha256 TEXT NOT NULL,
        revoked_at  INTEGER NOT NULL,
        revoked_by  TEXT NOT NULL
     );
     CREATE TABLE audit (
        seq     INTEGER PRIMARY KEY,
        at      INTEGER NOT NULL,
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
        version        INTEGER PRIMARY KEY,
        header         BLOB NOT NULL,
        hash           BLOB NOT NULL,
        changes        BLOB,
        source_counter INTEGER NOT NULL,
        created_at     INTEGER NOT NULL
     );
     CREATE TABLE bundle_published (
        id      INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL,
        full    BLOB NOT NULL
     );",
    // 4: certificate search: the words each record is found by, and newest-first orders.
    "CREATE TABLE certificate_terms (
        term   TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        PRIMARY KEY (term, sha256)
     ) WITHOUT ROWID;
     CREATE INDEX certificate_terms_sha256 ON certificate_terms (sha256, term);
     CREATE INDEX certificates_newest ON certificates (uploaded_at, sha256);
     CREATE INDEX certificates_status_newest ON certificates (status, uploaded_at, sha256);
     CREATE INDEX certificates_station_newest ON certificates (station_id, uploaded_at, sha256);",
    // Gateway identities, their events (each once per gateway and id), stations' audit anchors.
    "CREATE TABLE gateways (
        cert_sha256 TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        issued_at   INTEGER NOT NULL,
        not_after   INTEGER NOT NULL,
        revoked_at  INTEGER
     );
     CREATE INDEX gateways_name ON gateways (name);
     CREATE TABLE gateway_events (
        gateway        TEXT NOT NULL,
        id             TEXT NOT NULL,
        at             INTEGER NOT NULL,
        received_at    INTEGER NOT NULL,
        reader         TEXT NOT NULL,
        decision       TEXT NOT NULL,
        fingerprint    TEXT,
        subject        TEXT,
        reasons        TEXT NOT NULL,
        bundle_version INTEGER,
        PRIMARY KEY (gateway, id)
     );
     CREATE INDEX gateway_events_at ON gateway_events (at);
     CREATE INDEX gateway_events_fingerprint ON gateway_events (fingerprint, at);
     CREATE INDEX gateway_events_gateway ON gateway_events (gateway, at);
     CREATE TABLE audit_anchors (
        station     TEXT PRIMARY KEY,
        row_count   INTEGER NOT NULL,
        hash        TEXT NOT NULL,
        received_at INTEGER NOT NULL
     );",
];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const COLUMNS: &str =
    "sha256, subject, not_after, card_serial, chuid_guid, slot, label, operator, \
     station_id, uploaded_at, status, reason, revoked_at, revoked_by";

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
        revoked_by: r.get(13)?,
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

/// Append a row to the audit trail (inside the caller's write transaction, so rows
/// and their chain are written in one order).
fn audit(
    tx: &rusqlite::Transaction<'_>,
    at: i64,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> rusqlite::Result<()> {
    let last: Option<(i64, String)> = tx
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (seq, prev) = last.map_or((1, String::new()), |(s, h)| (s + 1, h));
    let hash = audit_hash(&prev, seq, at, actor, action, subject, detail);
    tx.execute(
        "INSERT INTO audit (seq, at, actor, action, subject, detail, prev, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![seq, at, actor, action, subject, detail, prev, hash],
    )
    .map(|_| ())
}

fn station_row(r: &Row<'_>) -> rusqlite::Result<StationRow> {
    Ok(StationRow {
        cert_sha256: r.get(0)?,
        name: r.get(1)?,
        issued_at: r.get(2)?,
        not_after: r.get(3)?,
        revoked_at: r.get(4)?,
    })
}

const STATION_COLUMNS: &str = "cert_sha256, name, issued_at, not_after, revoked_at";

/// Reinstate one revoked certificate and its key; false when it was not revoked.
fn reinstate_one(tx: &rusqlite::Transaction<'_>, sha256: &str, now: i64) -> rusqlite::Result<bool> {
    let key: Option<Option<String>> = tx
        .query_row(
            "SELECT key_sha256 FROM certificates WHERE sha256 = ?1 AND status = 'revoked'",
            [sha256],
            |r| r.get(0),
        )
        .optional()?;
    let Some(key) = key else {
        return Ok(false);
    };
    tx.execute(
        "UPDATE certificates SET status = 'active', reason = NULL, revoked_at = NULL,
             revoked_by = NULL WHERE sha256 = ?1",
        [sha256],
    )?;
    if let Some(key) = key {
        tx.execute("DELETE FROM revoked_keys WHERE key_sha256 = ?1", [key])?;
    }
    bump_version(tx)?;
    audit(tx, now, ADMIN, "reinstate", sha256, "")?;
    Ok(true)
}

/// Fill in the key hash of certificates stored before the schema had it.
fn backfill_key_hashes(conn: &mut rusqlite::Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(failed)?;
    let rows: Vec<(String, String)> = {
        let mut stmt = tx
            .prepare("SELECT sha256, pem FROM certificates WHERE key_sha256 IS NULL")
            .map_err(failed)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(failed)?;
        rows.collect::<Result<_, _>>().map_err(failed)?
    };
    for (sha256, pem) in rows {
        if let Some(key) = super::key_sha256_of_pem(&pem) {
            tx.execute(
                "UPDATE certificates SET key_sha256 = ?2 WHERE sha256 = ?1",
                params![sha256, key],
            )
            .map_err(failed)?;
        }
    }
    tx.commit().map_err(failed)
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
            backfill_key_hashes(&mut conn)?;
            backfill_terms(&mut conn)?;
            super::restrict_permissions(&path);
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
            let revoked_at: Option<i64> = tx
                .query_row(
                    "SELECT revoked_at FROM revoked_keys WHERE key_sha256 = ?1",
                    [&c.key_sha256],
                    |r| r.get(0),
                )
                .optional()
                .map_err(failed)?;
            if let Some(revoked_at) = revoked_at {
                return Ok(Stored::KeyRevoked { revoked_at });
            }
            tx.execute(
                "INSERT INTO certificates (sha256, pem, subject, not_after, card_serial, chuid_guid,
                     slot, label, operator, station_id, uploaded_at, key_sha256)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
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
                    c.uploaded_at,
                    c.key_sha256
                ],
            )
            .map_err(failed)?;
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
            .map_err(failed)?;
            bump_version(&tx).map_err(failed)?;
            audit(
                &tx,
                c.uploaded_at,
                &c.station_id,
                "upload",
                &c.sha256,
                &c.subject,
            )
            .map_err(failed)?;
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
        actor: &str,
        limit_per_hour: Option<u32>,
    ) -> Result<Revoked, StoreError> {
        let (sha256, reason, actor) = (sha256.to_string(), reason.to_string(), actor.to_string());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(failed)?;
            let Some(rec) = get(&tx, &sha256).map_err(failed)? else {
                return Ok(Revoked::NotFound);
            };
            if rec.status == CertificateStatus::Revoked {
                return Ok(Revoked::Done(rec));
            }
            if let Some(limit) = limit_per_hour {
                let recent: i64 = tx
                    .query_row(
                        "SELECT COUNT(*) FROM audit WHERE actor = ?1 AND action = 'revoke' AND at > ?2",
                        params![actor, now - 3600],
                        |r| r.get(0),
                    )
                    .map_err(failed)?;
                if recent >= i64::from(limit) {
                    return Ok(Revoked::RateLimited { limit });
                }
            }
            tx.execute(
                "UPDATE certificates SET status = 'revoked', reason = ?2, revoked_at = ?3,
                     revoked_by = ?4 WHERE sha256 = ?1 AND status = 'active'",
                params![sha256, reason, now, actor],
            )
            .map_err(failed)?;
            tx.execute(
                "INSERT OR IGNORE INTO revoked_keys (key_sha256, cert_sha256, revoked_at, revoked_by)
                 SELECT key_sha256, sha256, ?2, ?3 FROM certificates
                 WHERE sha256 = ?1 AND key_sha256 IS NOT NULL",
                params![sha256, now, actor],
            )
            .map_err(failed)?;
            bump_version(&tx).map_err(failed)?;
            audit(&tx, now, &actor, "revoke", &sha256, &reason).map_err(failed)?;
            let rec = get(&tx, &sha256)
                .map_err(failed)?
                .ok_or_else(|| StoreError::Failed("the revoked record vanished".into()))?;
            tx.commit().map_err(failed)?;
            Ok(Revoked::Done(rec))
        })
        .await
    }

    async fn reinstate(
        &self,
        sha256: &str,
        now: i64,
    ) -> Result<Option<CertificateRecord>, StoreError> {
        let sha256 = sha256.to_string();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(failed)?;
            reinstate_one(&tx, &sha256, now).map_err(failed)?;
            let rec = get(&tx, &sha256).map_err(failed)?;
            tx.commit().map_err(failed)?;
            Ok(rec)
        })
        .await
    }

    async fn reinstate_by_station(
        &self,
        station: &str,
        since: i64,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        let station = station.to_string();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(failed)?;
            let fps: Vec<String> = {
                let mut stmt = tx
                    .prepare(
                        "SELECT sha256 FROM certificates WHERE status = 'revoked'
                         AND revoked_by = ?1 AND revoked_at >= ?2 ORDER BY sha256",
                    )
                    .map_err(failed)?;
                let rows = stmt
                    .query_map(params![station, since], |r| r.get(0))
                    .map_err(failed)?;
                rows.collect::<Result<_, _>>().map_err(failed)?
            };
            for fp in &fps {
                reinstate_one(&tx, fp, now).map_err(failed)?;
            }
            tx.commit().map_err(failed)?;
            Ok(fps)
        })
        .await
    }

    async fn add_station(&self, st: &StationRow, actor: &str) -> Result<(), StoreError> {
        let (st, actor) = (st.clone(), actor.to_string());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(failed)?;
            let active: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM stations WHERE name = ?1 AND revoked_at IS NULL",
                    [&st.name],
                    |r| r.get(0),
                )
                .map_err(failed)?;
            if active > 0 {
                return Err(StoreError::Conflict(format!(
                    "station {} already has an active credential; revoke it first (station revoke {})",
                    st.name, st.name
                )));
            }
            tx.execute(
                &format!("INSERT INTO stations ({STATION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, NULL)"),
                params![st.cert_sha256, st.name, st.issued_at, st.not_after],
            )
            .map_err(failed)?;
            audit(&tx, st.issued_at, &actor, "station-add", &st.name, &st.cert_sha256)
                .map_err(failed)?;
            tx.commit().map_err(failed)
        })
        .await
    }

    async fn stations(&self) -> Result<Vec<StationRow>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {STATION_COLUMNS} FROM stations ORDER BY name, issued_at"
                ))
                .map_err(failed)?;
            let rows = stmt.query_map([], station_row).map_err(failed)?;
            rows.collect::<Result<_, _>>().map_err(failed)
        })
        .await
    }

    async fn revoke_station(&self, name: &str, now: i64) -> Result<usize, StoreError> {
        let name = name.to_string();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(failed)?;
            let n = tx
                .execute(
                    "UPDATE stations SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
                    params![name, now],
                )
                .map_err(failed)?;
            if n > 0 {
                audit(&tx, now, ADMIN, "station-revoke", &name, "").map_err(failed)?;
            }
            tx.commit().map_err(failed)?;
            Ok(n)
        })
        .await
    }

    async fn station_by_cert(&self, cert_sha256: &str) -> Result<Option<StationRow>, StoreError> {
        let fp = cert_sha256.to_string();
        self.with(move |conn| {
            conn.query_row(
                &format!("SELECT {STATION_COLUMNS} FROM stations WHERE cert_sha256 = ?1"),
                [fp],
                station_row,
            )
            .optional()
            .map_err(failed)
        })
        .await
    }

    async fn audit(&self) -> Result<Vec<AuditRow>, StoreError> {
        self.with(|conn| audit_rows(conn).map_err(failed)).await
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
                    .prepare("SELECT sha256 FROM certificates WHERE status = 'active'")
                    .map_err(failed)?;
                let rows = stmt.query_map([], |r| r.get(0)).map_err(failed)?;
                rows.collect::<Result<Vec<String>, _>>().map_err(failed)?
            };
            let revoked = {
                let mut stmt = tx
                    .prepare(
                        "SELECT sha256, reason, revoked_at FROM certificates
                         WHERE status = 'revoked'",
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
            let revoked_keys = {
                let mut stmt = tx
                    .prepare("SELECT key_sha256 FROM revoked_keys")
                    .map_err(failed)?;
                let rows = stmt.query_map([], |r| r.get(0)).map_err(failed)?;
                rows.collect::<Result<Vec<String>, _>>().map_err(failed)?
            };
            tx.commit().map_err(failed)?;
            Ok(BundleState {
                version,
                allowed,
                revoked,
                revoked_keys,
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
                        "SELECT {COLUMNS}, pem, key_sha256 FROM certificates ORDER BY sha256"
                    ))
                    .map_err(failed)?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok(FullRecord {
                            record: record(r)?,
                            pem: r.get(14)?,
                            key_sha256: r.get(15)?,
                            revoked_by: r.get(13)?,
                        })
                    })
                    .map_err(failed)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(failed)?
            };
            let stations = {
                let mut stmt = tx
                    .prepare(&format!(
                        "SELECT {STATION_COLUMNS} FROM stations ORDER BY cert_sha256"
                    ))
                    .map_err(failed)?;
                let rows = stmt.query_map([], station_row).map_err(failed)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(failed)?
            };
            let revoked_keys = {
                let mut stmt = tx
                    .prepare(
                        "SELECT key_sha256, cert_sha256, revoked_at, revoked_by FROM revoked_keys
                         ORDER BY key_sha256",
                    )
                    .map_err(failed)?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok(RevokedKey {
                            key_sha256: r.get(0)?,
                            cert_sha256: r.get(1)?,
                            revoked_at: r.get(2)?,
                            revoked_by: r.get(3)?,
                        })
                    })
                    .map_err(failed)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(failed)?
            };
            let audit = audit_rows(&tx).map_err(failed)?;
            let (bundle_chain, bundle_published) = sqlite_bundle::all(&tx).map_err(failed)?;
            let (gateways, events, anchors) = gateway_snapshot(&tx).map_err(failed)?;
            tx.commit().map_err(failed)?;
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
            let stations: i64 = tx
                .query_row("SELECT COUNT(*) FROM stations", [], |r| r.get(0))
                .map_err(failed)?;
            let audit_rows: i64 = tx
                .query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0))
                .map_err(failed)?;
            if stations + audit_rows > 0 {
                return Err(StoreError::NotEmpty(n));
            }
            for FullRecord {
                pem,
                record: r,
                key_sha256,
                revoked_by,
            } in &snapshot.records
            {
                tx.execute(
                    "INSERT INTO certificates (sha256, pem, subject, not_after, card_serial,
                         chuid_guid, slot, label, operator, station_id, uploaded_at, status,
                         reason, revoked_at, key_sha256, revoked_by)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
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
                        r.revoked_at,
                        key_sha256,
                        revoked_by
                    ],
                )
                .map_err(failed)?;
                insert_terms(&tx, &record_terms(r), &r.sha256).map_err(failed)?;
            }
            for st in &snapshot.stations {
                tx.execute(
                    &format!("INSERT INTO stations ({STATION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"),
                    params![st.cert_sha256, st.name, st.issued_at, st.not_after, st.revoked_at],
                )
                .map_err(failed)?;
            }
            for k in &snapshot.revoked_keys {
                tx.execute(
                    "INSERT INTO revoked_keys (key_sha256, cert_sha256, revoked_at, revoked_by)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![k.key_sha256, k.cert_sha256, k.revoked_at, k.revoked_by],
                )
                .map_err(failed)?;
            }
            for a in &snapshot.audit {
                tx.execute(
                    "INSERT INTO audit (seq, at, actor, action, subject, detail, prev, hash)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![a.seq, a.at, a.actor, a.action, a.subject, a.detail, a.prev, a.hash],
                )
                .map_err(failed)?;
            }
            sqlite_bundle::import(&tx, &snapshot.bundle_chain, snapshot.bundle_published.as_deref())
                .map_err(failed)?;
            gateway_import(&tx, &snapshot)?;
            tx.execute(
                "UPDATE meta SET value = ?1 WHERE key = 'bundle_version'",
                [i64::try_from(snapshot.bundle_version).unwrap_or(i64::MAX)],
            )
            .map_err(failed)?;
            tx.commit().map_err(failed)
        })
        .await
    }

    async fn bundle_head(&self) -> Result<Option<PublishedBundle>, StoreError> {
        self.with(|conn| sqlite_bundle::head(conn).map_err(failed))
            .await
    }

    async fn bundle_latest_version(&self) -> Result<Option<u64>, StoreError> {
        self.with(|conn| sqlite_bundle::latest_version(conn).map_err(failed))
            .await
    }

    async fn bundle_history(
        &self,
        from_version: u64,
        limit: u32,
    ) -> Result<Vec<BundleVersionRow>, StoreError> {
        self.with(move |conn| sqlite_bundle::history(conn, from_version, limit).map_err(failed))
            .await
    }

    async fn cut_bundle_version(
        &self,
        row: &BundleVersionRow,
        full: &[u8],
    ) -> Result<bool, StoreError> {
        let (row, full) = (row.clone(), full.to_vec());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(failed)?;
            let cut = sqlite_bundle::cut(&tx, &row, &full).map_err(failed)?;
            tx.commit().map_err(failed)?;
            Ok(cut)
        })
        .await
    }

    async fn search(&self, s: &Search) -> Result<Vec<CertificateRecord>, StoreError> {
        let s = s.clone();
        self.with(move |conn| {
            let sqlite = |values: Vec<search::Value>| -> Vec<rusqlite::types::Value> {
                values
                    .into_iter()
                    .map(|v| match v {
                        search::Value::Text(t) => rusqlite::types::Value::Text(t),
                        search::Value::Int(i) => rusqlite::types::Value::Integer(i),
                    })
                    .collect()
            };
            // One read snapshot for the counts and the page.
            let tx = conn.transaction().map_err(failed)?;
            let mut counts = Vec::new();
            for w in &s.words {
                let (sql, values) = search::probe(w, '?');
                let n: i64 = tx
                    .prepare_cached(&sql)
                    .and_then(|mut st| {
                        st.query_row(rusqlite::params_from_iter(sqlite(values)), |r| r.get(0))
                    })
                    .map_err(failed)?;
                counts.push(n);
            }
            let (sql, values) = search::query(&s, COLUMNS, '?', search::driver(&counts));
            let values = sqlite(values);
            let mut stmt = tx.prepare_cached(&sql).map_err(failed)?;
            let rows: Vec<CertificateRecord> = stmt
                .query_map(rusqlite::params_from_iter(values), record)
                .map_err(failed)?
                .collect::<Result<_, _>>()
                .map_err(failed)?;
            drop(stmt);
            tx.commit().map_err(failed)?;
            Ok(rows)
        })
        .await
    }

    // --- Gateways, their events and the stations' audit anchors ---

    async fn add_gateway(&self, gw: &GatewayRow, actor: &str) -> Result<(), StoreError> {
        let (gw, actor) = (gw.clone(), actor.to_string());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(failed)?;
            let active: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM gateways WHERE name = ?1 AND revoked_at IS NULL",
                    [&gw.name],
                    |r| r.get(0),
                )
                .map_err(failed)?;
            if active > 0 {
                return Err(StoreError::Conflict(format!(
                    "gateway {} already has an active credential; revoke it first (gateway revoke {})",
                    gw.name, gw.name
                )));
            }
            tx.execute(
                &format!("INSERT INTO gateways ({STATION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, NULL)"),
                params![gw.cert_sha256, gw.name, gw.issued_at, gw.not_after],
            )
            .map_err(failed)?;
            audit(&tx, gw.issued_at, &actor, "gateway-add", &gw.name, &gw.cert_sha256)
                .map_err(failed)?;
            tx.commit().map_err(failed)
        })
        .await
    }

    async fn gateways(&self) -> Result<Vec<GatewayRow>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {STATION_COLUMNS} FROM gateways ORDER BY name, issued_at"
                ))
                .map_err(failed)?;
            let rows = stmt.query_map([], station_row).map_err(failed)?;
            rows.collect::<Result<_, _>>().map_err(failed)
        })
        .await
    }

    async fn revoke_gateway(&self, name: &str, now: i64) -> Result<usize, StoreError> {
        let name = name.to_string();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(failed)?;
            let n = tx
                .execute(
                    "UPDATE gateways SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
                    params![name, now],
                )
                .map_err(failed)?;
            if n > 0 {
                audit(&tx, now, ADMIN, "gateway-revoke", &name, "").map_err(failed)?;
            }
            tx.commit().map_err(failed)?;
            Ok(n)
        })
        .await
    }

    async fn gateway_by_cert(&self, cert_sha256: &str) -> Result<Option<GatewayRow>, StoreError> {
        let fp = cert_sha256.to_string();
        self.with(move |conn| {
            conn.query_row(
                &format!("SELECT {STATION_COLUMNS} FROM gateways WHERE cert_sha256 = ?1"),
                [fp],
                station_row,
            )
            .optional()
            .map_err(failed)
        })
        .await
    }

    async fn add_events(
        &self,
        gateway: &str,
        events: &[GatewayEvent],
        received_at: i64,
    ) -> Result<EventsAccepted, StoreError> {
        let (gateway, events) = (gateway.to_string(), events.to_vec());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(failed)?;
            let mut accepted = 0;
            {
                let mut insert = tx
                    .prepare(&format!(
                        "INSERT INTO gateway_events ({EVENT_COLUMNS})
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                         ON CONFLICT (gateway, id) DO NOTHING"
                    ))
                    .map_err(failed)?;
                for e in &events {
                    accepted += insert
                        .execute(params![
                            gateway,
                            e.id,
                            e.at,
                            received_at,
                            e.reader,
                            e.decision.as_str(),
                            e.fingerprint,
                            e.subject,
                            super::join_reasons(&e.reasons),
                            e.bundle_version
                                .map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
                        ])
                        .map_err(failed)?;
                }
            }
            tx.commit().map_err(failed)?;
            Ok(EventsAccepted {
                accepted,
                duplicates: events.len() - accepted,
            })
        })
        .await
    }

    async fn events(&self, query: &EventQuery) -> Result<Vec<RecordedEvent>, StoreError> {
        let query = query.clone();
        self.with(move |conn| {
            let mut sql = format!("SELECT {EVENT_COLUMNS} FROM gateway_events WHERE 1 = 1");
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            if let Some(fp) = &query.fingerprint {
                args.push(fp.clone().into());
                sql.push_str(&format!(" AND fingerprint = ?{}", args.len()));
            }
            if let Some(gw) = &query.gateway {
                args.push(gw.clone().into());
                sql.push_str(&format!(" AND gateway = ?{}", args.len()));
            }
            if let Some(since) = query.since {
                args.push(since.into());
                sql.push_str(&format!(" AND at >= ?{}", args.len()));
            }
            args.push(i64::from(query.limit).into());
            sql.push_str(&format!(
                " ORDER BY at DESC, received_at DESC, gateway, id LIMIT ?{}",
                args.len()
            ));
            let mut stmt = conn.prepare(&sql).map_err(failed)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args), event_row)
                .map_err(failed)?;
            rows.collect::<Result<_, _>>().map_err(failed)
        })
        .await
    }

    async fn set_audit_anchor(
        &self,
        station: &str,
        head: &AuditHead,
        now: i64,
    ) -> Result<AnchorSet, StoreError> {
        let (station, head) = (station.to_string(), head.clone());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(failed)?;
            if let Some(held) = anchor(&tx, &station).map_err(failed)? {
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
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (station) DO UPDATE SET row_count = excluded.row_count,
                     hash = excluded.hash, received_at = excluded.received_at",
                params![station, rows, head.hash, now],
            )
            .map_err(failed)?;
            tx.commit().map_err(failed)?;
            Ok(AnchorSet::Stored(AuditAnchor {
                rows: head.rows,
                hash: head.hash,
                received_at: now,
            }))
        })
        .await
    }

    async fn audit_anchor(&self, station: &str) -> Result<Option<AuditAnchor>, StoreError> {
        let station = station.to_string();
        self.with(move |conn| anchor(conn, &station).map_err(failed))
            .await
    }

    async fn reset_audit_anchor(&self, station: &str, now: i64) -> Result<bool, StoreError> {
        let station = station.to_string();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(failed)?;
            let Some(held) = anchor(&tx, &station).map_err(failed)? else {
                return Ok(false);
            };
            tx.execute("DELETE FROM audit_anchors WHERE station = ?1", [&station])
                .map_err(failed)?;
            let detail = format!("{} rows, {}", held.rows, held.hash);
            audit(&tx, now, ADMIN, "anchor-reset", &station, &detail).map_err(failed)?;
            tx.commit().map_err(failed)?;
            Ok(true)
        })
        .await
    }
}

// Certificate search: its terms, written with each record.

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

fn insert_terms(
    conn: &rusqlite::Connection,
    terms: &[String],
    sha256: &str,
) -> rusqlite::Result<()> {
    let mut stmt = conn
        .prepare_cached("INSERT OR IGNORE INTO certificate_terms (term, sha256) VALUES (?1, ?2)")?;
    for t in terms {
        stmt.execute(params![t, sha256])?;
    }
    Ok(())
}

/// Index certificates stored before search existed (once: afterwards every record has terms).
fn backfill_terms(conn: &mut rusqlite::Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(failed)?;
    let missing: Vec<CertificateRecord> = {
        let mut stmt = tx
            .prepare(&format!(
                "SELECT {COLUMNS} FROM certificates c WHERE NOT EXISTS
                     (SELECT 1 FROM certificate_terms t WHERE t.sha256 = c.sha256)"
            ))
            .map_err(failed)?;
        let rows = stmt.query_map([], record).map_err(failed)?;
        rows.collect::<Result<_, _>>().map_err(failed)?
    };
    for r in &missing {
        insert_terms(&tx, &record_terms(r), &r.sha256).map_err(failed)?;
    }
    tx.commit().map_err(failed)
}

fn audit_rows(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<AuditRow>> {
    let mut stmt = conn.prepare(
        "SELECT seq, at, actor, action, subject, detail, prev, hash FROM audit ORDER BY seq",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(AuditRow {
            seq: r.get(0)?,
            at: r.get(1)?,
            actor: r.get(2)?,
            action: r.get(3)?,
            subject: r.get(4)?,
            detail: r.get(5)?,
            prev: r.get(6)?,
            hash: r.get(7)?,
        })
    })?;
    rows.collect()
}

pub(super) fn status_text(s: CertificateStatus) -> &'static str {
    match s {
        CertificateStatus::Active => "active",
        CertificateStatus::Revoked => "revoked",
    }
}

// --- Gateways, their events and the stations' audit anchors ---

const EVENT_COLUMNS: &str = "gateway, id, at, received_at, reader, decision, fingerprint, \
     subject, reasons, bundle_version";

fn event_row(r: &Row<'_>) -> rusqlite::Result<RecordedEvent> {
    let decision: String = r.get(5)?;
    let reasons: String = r.get(8)?;
    let bundle_version: Option<i64> = r.get(9)?;
    Ok(RecordedEvent {
        gateway: r.get(0)?,
        received_at: r.get(3)?,
        event: GatewayEvent {
            id: r.get(1)?,
            at: r.get(2)?,
            reader: r.get(4)?,
            decision: super::decision_of(&decision),
            fingerprint: r.get(6)?,
            subject: r.get(7)?,
            reasons: super::split_reasons(&reasons),
            bundle_version: bundle_version.and_then(|v| u64::try_from(v).ok()),
        },
    })
}

fn anchor(conn: &rusqlite::Connection, station: &str) -> rusqlite::Result<Option<AuditAnchor>> {
    conn.query_row(
        "SELECT row_count, hash, received_at FROM audit_anchors WHERE station = ?1",
        [station],
        |r| {
            Ok(AuditAnchor {
                rows: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                hash: r.get(1)?,
                received_at: r.get(2)?,
            })
        },
    )
    .optional()
}

type GatewayParts = (Vec<GatewayRow>, Vec<RecordedEvent>, Vec<StationAnchor>);

/// The gateway part of a snapshot, read in the caller's transaction.
fn gateway_snapshot(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<GatewayParts> {
    let gateways = {
        let mut stmt = tx.prepare(&format!(
            "SELECT {STATION_COLUMNS} FROM gateways ORDER BY cert_sha256"
        ))?;
        let rows = stmt.query_map([], station_row)?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    let events = {
        let mut stmt = tx.prepare(&format!(
            "SELECT {EVENT_COLUMNS} FROM gateway_events ORDER BY gateway, id"
        ))?;
        let rows = stmt.query_map([], event_row)?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    let anchors = {
        let mut stmt = tx.prepare(
            "SELECT station, row_count, hash, received_at FROM audit_anchors ORDER BY station",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(StationAnchor {
                station: r.get(0)?,
                anchor: AuditAnchor {
                    rows: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                    hash: r.get(2)?,
                    received_at: r.get(3)?,
                },
            })
        })?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    Ok((gateways, events, anchors))
}

/// Write the gateway part of a snapshot into the caller's transaction (tables empty).
fn gateway_import(tx: &rusqlite::Transaction<'_>, snapshot: &Snapshot) -> Result<(), StoreError> {
    let held: i64 = tx
        .query_row(
            "SELECT (SELECT COUNT(*) FROM gateways) + (SELECT COUNT(*) FROM gateway_events)
                 + (SELECT COUNT(*) FROM audit_anchors)",
            [],
            |r| r.get(0),
        )
        .map_err(failed)?;
    if held > 0 {
        return Err(StoreError::NotEmpty(0));
    }
    for g in &snapshot.gateways {
        tx.execute(
            &format!("INSERT INTO gateways ({STATION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"),
            params![
                g.cert_sha256,
                g.name,
                g.issued_at,
                g.not_after,
                g.revoked_at
            ],
        )
        .map_err(failed)?;
    }
    for r in &snapshot.events {
        let e = &r.event;
        tx.execute(
            &format!(
                "INSERT INTO gateway_events ({EVENT_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            ),
            params![
                r.gateway,
                e.id,
                e.at,
                r.received_at,
                e.reader,
                e.decision.as_str(),
                e.fingerprint,
                e.subject,
                super::join_reasons(&e.reasons),
                e.bundle_version
                    .map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
            ],
        )
        .map_err(failed)?;
    }
    for a in &snapshot.anchors {
        tx.execute(
            "INSERT INTO audit_anchors (station, row_count, hash, received_at) VALUES (?1, ?2, ?3, ?4)",
            params![
                a.station,
                i64::try_from(a.anchor.rows).unwrap_or(i64::MAX),
                a.anchor.hash,
                a.anchor.received_at
            ],
        )
        .map_err(failed)?;
    }
    Ok(())
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
