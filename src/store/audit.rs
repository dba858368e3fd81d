//! The audit trail: one row per operator action, each carrying the hash of the
//! previous row, so an edited, deleted or reordered row breaks the chain.
//! Rows never contain secrets: callers pass identities and outcomes only.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{now_unix, Store, StoreError};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub operator: String,
    pub station_id: String,
    pub action: String,
    /// What the action was about: a card (serial/GUID), a fingerprint, a reader.
    pub subject: String,
    pub outcome: String,
    /// JSON object with further facts.
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum AuditVerdict {
    Intact { rows: usize },
    Broken { row_id: i64, reason: String },
}

/// Hash of one row: `fields` are operator, station, action, subject, outcome, details.
fn row_hash(prev: &str, at: i64, fields: [&str; 6]) -> String {
    let mut h = Sha256::new();
    let at = at.to_string();
    // Length-prefixed fields: no two different rows serialize to the same bytes.
    for field in [prev, at.as_str()].into_iter().chain(fields) {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize())
}

/// What an operator (or the station on their behalf) did. Stored as its text; rows read
/// back keep the text, since a newer station may have written actions this one does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditAction {
    Enroll,
    Export,
    SpotCheck,
    Replace,
    Upload,
    Revoke,
    PinChange,
    PukChange,
    PinUnblock,
    PinSetRetries,
    CardReset,
    Renew,
}

impl AuditAction {
    pub const ALL: [AuditAction; 12] = [
        AuditAction::Enroll,
        AuditAction::Export,
        AuditAction::SpotCheck,
        AuditAction::Replace,
        AuditAction::Upload,
        AuditAction::Revoke,
        AuditAction::PinChange,
        AuditAction::PukChange,
        AuditAction::PinUnblock,
        AuditAction::PinSetRetries,
        AuditAction::CardReset,
        AuditAction::Renew,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Enroll => "enroll",
            AuditAction::Export => "export",
            AuditAction::SpotCheck => "spot-check",
            AuditAction::Replace => "replace",
            AuditAction::Upload => "upload",
            AuditAction::Revoke => "revoke",
            AuditAction::PinChange => "pin-change",
            AuditAction::PukChange => "puk-change",
            AuditAction::PinUnblock => "pin-unblock",
            AuditAction::PinSetRetries => "pin-set-retries",
            AuditAction::CardReset => "card-reset",
            AuditAction::Renew => "renew",
        }
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One operator action, as written to the trail.
#[derive(Debug, Clone, Copy)]
pub struct AuditEntry<'a> {
    pub operator: &'a str,
    pub station_id: &'a str,
    pub action: AuditAction,
    pub subject: &'a str,
    pub outcome: &'a str,
    pub details: &'a serde_json::Value,
}

/// Append `e` inside `tx`, which must hold the write lock (`BEGIN IMMEDIATE`):
/// then no other process can append between reading the last hash and writing.
pub(super) fn append(tx: &rusqlite::Transaction<'_>, e: &AuditEntry<'_>) -> Result<(), StoreError> {
    let prev: String = tx
        .query_row("SELECT hash FROM audit ORDER BY id DESC LIMIT 1", [], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or_else(|| GENESIS.to_string());
    let at = now_unix();
    let details = e.details.to_string();
    let hash = row_hash(
        &prev,
        at,
        [
            e.operator,
            e.station_id,
            e.action.as_str(),
            e.subject,
            e.outcome,
            &details,
        ],
    );
    tx.execute(
        "INSERT INTO audit (at, operator, station_id, action, subject, outcome, details, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![at, e.operator, e.station_id, e.action.as_str(), e.subject, e.outcome, details, prev, hash],
    )?;
    Ok(())
}

impl Store {
    /// Append one audit row (its own transaction). An error means the action is
    /// not on the trail: the caller reports it as a failure of the action.
    pub fn audit(
        &self,
        operator: &str,
        station_id: &str,
        action: AuditAction,
        subject: &str,
        outcome: &str,
        details: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.record(&AuditEntry {
            operator,
            station_id,
            action,
            subject,
            outcome,
            details,
        })
    }

    /// Append one audit row (its own transaction).
    pub fn record(&self, entry: &AuditEntry<'_>) -> Result<(), StoreError> {
        let tx = self.write_tx()?;
        append(&tx, entry)?;
        tx.commit()?;
        Ok(())
    }

    pub fn audit_rows(&self) -> Result<Vec<AuditRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, at, operator, station_id, action, subject, outcome, details, prev_hash, hash
             FROM audit ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(AuditRow {
                id: r.get(0)?,
                at: r.get(1)?,
                operator: r.get(2)?,
                station_id: r.get(3)?,
                action: r.get(4)?,
                subject: r.get(5)?,
                outcome: r.get(6)?,
                details: r.get(7)?,
                prev_hash: r.get(8)?,
                hash: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Walk the chain from the first row and report the first break.
    pub fn verify_audit(&self) -> Result<AuditVerdict, StoreError> {
        let rows = self.audit_rows()?;
        let mut prev = GENESIS.to_string();
        for row in &rows {
            if row.prev_hash != prev {
                return Ok(AuditVerdict::Broken {
                    row_id: row.id,
                    reason: "does not follow the row before it (a row was deleted, inserted or reordered)".into(),
                });
            }
            let expect = row_hash(
                &row.prev_hash,
                row.at,
                [
                    &row.operator,
                    &row.station_id,
                    &row.action,
                    &row.subject,
                    &row.outcome,
                    &row.details,
                ],
            );
            if row.hash != expect {
                return Ok(AuditVerdict::Broken {
                    row_id: row.id,
                    reason: "its contents were changed after it was written".into(),
                });
            }
            prev = row.hash.clone();
        }
        Ok(AuditVerdict::Intact { rows: rows.len() })
    }
}

/// Whether the local trail still holds an anchored chain head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum AnchorCheck {
    /// Row `rows` carries the anchored hash: nothing before it was removed or changed.
    Holds { rows: u64, local_rows: u64 },
    /// The trail has fewer rows than were anchored.
    RowsMissing { rows: u64, local_rows: u64 },
    /// Row `rows` has another hash than was anchored: the trail was rewritten.
    Rewritten { rows: u64, local_rows: u64 },
}

impl Store {
    /// The head of the chain: how many rows, and the hash of the last (the
    /// genesis value when there is none). What the console anchors.
    pub fn audit_head(&self) -> Result<(u64, String), StoreError> {
        let (rows, hash): (i64, Option<String>) = self.conn.query_row(
            "SELECT COUNT(*), (SELECT hash FROM audit ORDER BY id DESC LIMIT 1) FROM audit",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((
            u64::try_from(rows).unwrap_or(0),
            hash.unwrap_or_else(|| GENESIS.to_string()),
        ))
    }

    /// Whether row `rows` of the trail (in chain order) has hash `hash`.
    pub fn audit_holds(&self, rows: u64, hash: &str) -> Result<AnchorCheck, StoreError> {
        let all = self.audit_rows()?;
        let local_rows = all.len() as u64;
        let at = match rows {
            0 => Some(GENESIS),
            n => usize::try_from(n - 1)
                .ok()
                .and_then(|i| all.get(i))
                .map(|r| r.hash.as_str()),
        };
        Ok(match at {
            None => AnchorCheck::RowsMissing { rows, local_rows },
            Some(h) if h == hash => AnchorCheck::Holds { rows, local_rows },
            Some(_) => AnchorCheck::Rewritten { rows, local_rows },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_is_found_again_until_rows_are_removed_or_rewritten() {
        let s = filled();
        let (rows, hash) = s.audit_head().unwrap();
        assert_eq!(rows, 4);
        let holds = AnchorCheck::Holds {
            rows: 4,
            local_rows: 4,
        };
        assert_eq!(s.audit_holds(rows, &hash).unwrap(), holds);
        s.audit(
            "op",
            "st",
            AuditAction::Export,
            "x",
            "ok",
            &serde_json::json!({}),
        )
        .unwrap();
        assert!(matches!(
            s.audit_holds(rows, &hash).unwrap(),
            AnchorCheck::Holds { local_rows: 5, .. }
        ));
        s.conn
            .execute("DELETE FROM audit WHERE id >= 4", [])
            .unwrap();
        assert!(matches!(
            s.audit_holds(rows, &hash).unwrap(),
            AnchorCheck::RowsMissing { local_rows: 3, .. }
        ));
        let empty = Store::in_memory().unwrap();
        let (rows, hash) = empty.audit_head().unwrap();
        assert_eq!((rows, hash.as_str()), (0, GENESIS));
        assert!(matches!(
            filled().audit_holds(4, GENESIS).unwrap(),
            AnchorCheck::Rewritten { .. }
        ));
    }

    fn filled() -> Store {
        let s = Store::in_memory().unwrap();
        for i in 0..4 {
            s.audit(
                "op",
                "st",
                AuditAction::Enroll,
                &format!("card {i}"),
                "ok",
                &serde_json::json!({"i": i}),
            )
            .unwrap();
        }
        s
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(
            filled().verify_audit().unwrap(),
            AuditVerdict::Intact { rows: 4 }
        );
    }

    #[test]
    fn edited_deleted_and_reordered_rows_are_detected() {
        let s = filled();
        s.conn
            .execute("UPDATE audit SET outcome = 'failed' WHERE id = 2", [])
            .unwrap();
        assert!(matches!(
            s.verify_audit().unwrap(),
            AuditVerdict::Broken { row_id: 2, .. }
        ));

        let s = filled();
        s.conn
            .execute("DELETE FROM audit WHERE id = 2", [])
            .unwrap();
        assert!(matches!(
            s.verify_audit().unwrap(),
            AuditVerdict::Broken { row_id: 3, .. }
        ));

        let s = filled();
        s.conn
            .execute("UPDATE audit SET id = 10 WHERE id = 2", [])
            .unwrap();
        assert!(matches!(
            s.verify_audit().unwrap(),
            AuditVerdict::Broken { row_id: 3, .. }
        ));
    }

    #[test]
    fn writers_on_separate_connections_lose_no_row_and_keep_one_chain() {
        // Separate connections lock the file as separate processes do.
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("station.db");
        Store::open(&db).unwrap();
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let db = db.clone();
                std::thread::spawn(move || {
                    let s = Store::open(&db).unwrap();
                    for i in 0..40 {
                        s.audit(
                            "op",
                            "st",
                            AuditAction::SpotCheck,
                            &format!("{w}/{i}"),
                            "ok",
                            &serde_json::json!({}),
                        )
                        .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        assert_eq!(
            Store::open(&db).unwrap().verify_audit().unwrap(),
            AuditVerdict::Intact { rows: 160 }
        );
    }
}
