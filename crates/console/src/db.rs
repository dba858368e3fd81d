//! The console's SQLite storage: certificates and the bundle version counter.

use std::path::Path;

use rusqlite::{params, OptionalExtension, Row};

use cardstation_protocol::messages::{
    CertificateRecord, CertificateStatus, RevokedEntry, UploadRequest,
};

pub struct ConsoleDb {
    conn: rusqlite::Connection,
}

const COLUMNS: &str =
    "sha256, subject, not_after, card_serial, chuid_guid, slot, label, operator, \
     station_id, uploaded_at, status, reason, revoked_at";

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

/// What an upload did.
pub enum Stored {
    Created(CertificateRecord),
    Existing(CertificateRecord),
}

impl ConsoleDb {
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        let conn = rusqlite::Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
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
        )?;
        Ok(ConsoleDb { conn })
    }

    /// Store a certificate unless its fingerprint is known (then return the existing record).
    pub fn upload(
        &mut self,
        sha256: &str,
        pem: &str,
        subject: &str,
        not_after: i64,
        req: &UploadRequest,
        now: i64,
    ) -> rusqlite::Result<Stored> {
        let tx = self.conn.transaction()?;
        let existing = tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM certificates WHERE sha256 = ?1"),
                [sha256],
                record,
            )
            .optional()?;
        if let Some(rec) = existing {
            return Ok(Stored::Existing(rec));
        }
        tx.execute(
            "INSERT INTO certificates (sha256, pem, subject, not_after, card_serial, chuid_guid, slot,
                 label, operator, station_id, uploaded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                sha256,
                pem,
                subject,
                not_after,
                req.card_serial.map(i64::from),
                req.chuid_guid,
                req.slot,
                req.label,
                req.operator,
                req.station_id,
                now
            ],
        )?;
        tx.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'bundle_version'",
            [],
        )?;
        let rec = tx.query_row(
            &format!("SELECT {COLUMNS} FROM certificates WHERE sha256 = ?1"),
            [sha256],
            record,
        )?;
        tx.commit()?;
        Ok(Stored::Created(rec))
    }

    pub fn get(&self, sha256: &str) -> rusqlite::Result<Option<CertificateRecord>> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM certificates WHERE sha256 = ?1"),
                [sha256],
                record,
            )
            .optional()
    }

    /// Revoke; revoking again keeps the first reason and time.
    pub fn revoke(
        &mut self,
        sha256: &str,
        reason: &str,
        now: i64,
    ) -> rusqlite::Result<Option<CertificateRecord>> {
        let tx = self.conn.transaction()?;
        let changed = tx.execute(
            "UPDATE certificates SET status = 'revoked', reason = ?2, revoked_at = ?3
             WHERE sha256 = ?1 AND status = 'active'",
            params![sha256, reason, now],
        )?;
        if changed > 0 {
            tx.execute(
                "UPDATE meta SET value = value + 1 WHERE key = 'bundle_version'",
                [],
            )?;
        }
        let rec = tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM certificates WHERE sha256 = ?1"),
                [sha256],
                record,
            )
            .optional()?;
        tx.commit()?;
        Ok(rec)
    }

    /// The current bundle content: (version, allowed, revoked).
    pub fn bundle_state(&self) -> rusqlite::Result<(u64, Vec<String>, Vec<RevokedEntry>)> {
        let version: i64 = self.conn.query_row(
            "SELECT value FROM meta WHERE key = 'bundle_version'",
            [],
            |r| r.get(0),
        )?;
        let mut allowed_stmt = self
            .conn
            .prepare("SELECT sha256 FROM certificates WHERE status = 'active' ORDER BY sha256")?;
        let allowed = allowed_stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        let mut revoked_stmt = self.conn.prepare(
            "SELECT sha256, reason, revoked_at FROM certificates WHERE status = 'revoked' ORDER BY sha256",
        )?;
        let revoked = revoked_stmt
            .query_map([], |r| {
                Ok(RevokedEntry {
                    sha256: r.get(0)?,
                    reason: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    revoked_at: r.get::<_, Option<i64>>(2)?.unwrap_or_default(),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((u64::try_from(version).unwrap_or(0), allowed, revoked))
    }

    pub fn count(&self) -> rusqlite::Result<i64> {
        self.conn
            .query_row("SELECT COUNT(*) FROM certificates", [], |r| r.get(0))
    }
}
