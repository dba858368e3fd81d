//! The console outbox: every upload or revocation is first a committed row here,
//! and leaves only when the console acknowledged it.
//!
//! Several processes may deliver from one outbox at once. Row ids are never
//! reused (AUTOINCREMENT) and every row carries a random token: an
//! acknowledgement, a retry or a refusal names both, so a late answer for a row
//! another process already delivered touches nothing else.

use rand::RngCore;
use rusqlite::{params, Row};
use serde::Serialize;

use super::audit::{self, AuditEntry};
use super::{Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxKind {
    Upload,
    Revoke,
    /// A renewal's last step: the old certificate is marked superseded by the new.
    Supersede,
}

impl OutboxKind {
    fn as_str(self) -> &'static str {
        match self {
            OutboxKind::Upload => "upload",
            OutboxKind::Revoke => "revoke",
            OutboxKind::Supersede => "supersede",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct OutboxItem {
    pub id: i64,
    /// The row's identity beside its id: what an acknowledgement must name.
    #[serde(skip)]
    pub token: String,
    pub kind: OutboxKind,
    pub fingerprint: String,
    /// The JSON request body to send.
    pub body: String,
    pub created_at: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    /// "pending", or "rejected" when the console refused it for good.
    pub state: String,
    /// Refused for a settings reason (this station's credential or name): the
    /// fingerprint of the console settings it was refused under. Sent again once
    /// they differ, or on `outbox retry`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_under: Option<String>,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<OutboxItem> {
    let kind: String = r.get(2)?;
    Ok(OutboxItem {
        id: r.get(0)?,
        token: r.get(1)?,
        kind: match kind.as_str() {
            "revoke" => OutboxKind::Revoke,
            "supersede" => OutboxKind::Supersede,
            _ => OutboxKind::Upload,
        },
        fingerprint: r.get(3)?,
        body: r.get(4)?,
        created_at: r.get(5)?,
        attempts: r.get(6)?,
        next_attempt_at: r.get(7)?,
        last_error: r.get(8)?,
        state: r.get(9)?,
        refused_under: r.get(10)?,
    })
}

const COLUMNS: &str =
    "id, token, kind, fingerprint, body, created_at, attempts, next_attempt_at, last_error, state, refused_under";

fn new_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Insert one outbox row inside `tx`.
pub(super) fn insert(
    tx: &rusqlite::Transaction<'_>,
    kind: OutboxKind,
    fingerprint: &str,
    body: &str,
    now: i64,
) -> Result<i64, StoreError> {
    tx.execute(
        "INSERT INTO outbox (token, kind, fingerprint, body, created_at, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![new_token(), kind.as_str(), fingerprint, body, now],
    )?;
    Ok(tx.last_insert_rowid())
}

impl Store {
    /// Queue a request (committed before anything is sent) and its audit row, in one
    /// transaction: the request is never queued without the trail saying so.
    /// Queuing the same request twice is harmless: the console is idempotent by fingerprint.
    pub fn outbox_enqueue(
        &self,
        kind: OutboxKind,
        fingerprint: &str,
        body: &str,
        now: i64,
        entry: &AuditEntry<'_>,
    ) -> Result<i64, StoreError> {
        let tx = self.write_tx()?;
        let id = insert(&tx, kind, fingerprint, body, now)?;
        audit::append(&tx, entry)?;
        tx.commit()?;
        Ok(id)
    }

    /// Pending items whose next attempt is due, oldest first.
    pub fn outbox_due(&self, now: i64) -> Result<Vec<OutboxItem>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM outbox WHERE state = 'pending' AND next_attempt_at <= ?1 ORDER BY id"
        ))?;
        let rows = stmt.query_map([now], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn outbox_items(&self) -> Result<Vec<OutboxItem>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM outbox ORDER BY id"))?;
        let rows = stmt.query_map([], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Number of items still to deliver.
    pub fn outbox_pending(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM outbox WHERE state = 'pending'",
            [],
            |r| r.get(0),
        )?)
    }

    /// Earliest next attempt among pending items.
    pub fn outbox_next_attempt(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.conn.query_row(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending'",
            [],
            |r| r.get(0),
        )?)
    }

    /// The console acknowledged `item`: that row, and only that row, leaves the
    /// outbox. Returns false when it was already gone (another process delivered it).
    pub fn outbox_ack(&self, item: &OutboxItem) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "DELETE FROM outbox WHERE id = ?1 AND token = ?2",
            params![item.id, item.token],
        )?;
        Ok(n > 0)
    }

    pub fn outbox_retry_later(
        &self,
        item: &OutboxItem,
        error: &str,
        next_attempt_at: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?3, next_attempt_at = ?4
             WHERE id = ?1 AND token = ?2",
            params![item.id, item.token, error, next_attempt_at],
        )?;
        Ok(())
    }

    /// The console refused the item for good (e.g. not a valid certificate): kept, visible, not retried.
    pub fn outbox_reject(&self, item: &OutboxItem, error: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?3, state = 'rejected'
             WHERE id = ?1 AND token = ?2",
            params![item.id, item.token, error],
        )?;
        Ok(())
    }

    /// The console refused `item` because of this station's settings (its credential
    /// or its name), which were `settings` (a fingerprint): kept as refused until the
    /// settings change or an operator asks for a retry.
    pub fn outbox_refuse_for_settings(
        &self,
        item: &OutboxItem,
        error: &str,
        settings: &str,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?3, state = 'rejected',
                 refused_under = ?4
             WHERE id = ?1 AND token = ?2",
            params![item.id, item.token, error, settings],
        )?;
        Ok(())
    }

    /// Put refused items back in the queue, due `now`: those refused for a settings
    /// reason under settings other than `settings` (every one of them when `None`),
    /// and with `all` every refused item. Returns how many.
    pub fn outbox_requeue_refused(
        &self,
        settings: Option<&str>,
        all: bool,
        now: i64,
    ) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "UPDATE outbox SET state = 'pending', next_attempt_at = ?1, refused_under = NULL
             WHERE state = 'rejected'
               AND (?3 OR (refused_under IS NOT NULL AND (?2 IS NULL OR refused_under != ?2)))",
            params![now, settings, all],
        )?)
    }

    /// Make every pending item due now (an operator's "sync now").
    pub fn outbox_due_now(&self, now: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE outbox SET next_attempt_at = ?1 WHERE state = 'pending'",
            [now],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> AuditEntry<'static> {
        static DETAILS: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
        AuditEntry {
            operator: "op",
            station_id: "st",
            action: crate::store::AuditAction::Upload,
            subject: "fp",
            outcome: "queued",
            details: DETAILS.get_or_init(|| serde_json::json!({})),
        }
    }

    #[test]
    fn an_acknowledgement_removes_only_its_own_row_and_ids_are_never_reused() {
        let s = Store::in_memory().unwrap();
        let x = s
            .outbox_enqueue(OutboxKind::Upload, "x", "{}", 1, &entry())
            .unwrap();
        let late = s.outbox_due(1).unwrap().remove(0);
        assert_eq!(late.id, x);
        // Another process delivers X; then Z is queued.
        assert!(s.outbox_ack(&late).unwrap());
        let z = s
            .outbox_enqueue(OutboxKind::Upload, "z", "{}", 2, &entry())
            .unwrap();
        assert_ne!(z, x, "a deleted row's id must not come back");
        // The first process's late acknowledgement, retry or refusal of X touches nothing.
        assert!(!s.outbox_ack(&late).unwrap());
        s.outbox_retry_later(&late, "late", 99).unwrap();
        s.outbox_reject(&late, "late").unwrap();
        let left = s.outbox_items().unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!((left[0].fingerprint.as_str(), left[0].attempts), ("z", 0));
        // Even a forged acknowledgement naming Z's id with another token leaves it.
        let forged = OutboxItem {
            token: "00".into(),
            ..left[0].clone()
        };
        assert!(!s.outbox_ack(&forged).unwrap());
        assert_eq!(s.outbox_pending().unwrap(), 1);
        // Each queued item has its audit row.
        assert_eq!(s.audit_rows().unwrap().len(), 2);
    }

    #[test]
    fn items_refused_for_settings_come_back_when_the_settings_change() {
        let s = Store::in_memory().unwrap();
        for fp in ["a", "b"] {
            s.outbox_enqueue(OutboxKind::Upload, fp, "{}", 1, &entry())
                .unwrap();
        }
        let due = s.outbox_due(1).unwrap();
        s.outbox_refuse_for_settings(&due[0], "name", "s1").unwrap();
        s.outbox_reject(&due[1], "not a certificate").unwrap();
        assert_eq!(s.outbox_pending().unwrap(), 0);
        // The same settings: nothing comes back.
        assert_eq!(s.outbox_requeue_refused(Some("s1"), false, 5).unwrap(), 0);
        // Other settings: the item refused for settings, not the other one.
        assert_eq!(s.outbox_requeue_refused(Some("s2"), false, 5).unwrap(), 1);
        let back = s.outbox_due(5).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].fingerprint, "a");
        assert_eq!(back[0].refused_under, None);
        // An operator's retry of everything.
        assert_eq!(s.outbox_requeue_refused(None, true, 6).unwrap(), 1);
        assert_eq!(s.outbox_pending().unwrap(), 2);
    }
}
