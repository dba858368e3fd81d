//! The console outbox: every upload or revocation is first a committed row here,
//! and leaves only when the console acknowledged it.

use rusqlite::{params, Row};
use serde::Serialize;

use super::{Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxKind {
    Upload,
    Revoke,
}

impl OutboxKind {
    fn as_str(self) -> &'static str {
        match self {
            OutboxKind::Upload => "upload",
            OutboxKind::Revoke => "revoke",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct OutboxItem {
    pub id: i64,
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
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<OutboxItem> {
    let kind: String = r.get(1)?;
    Ok(OutboxItem {
        id: r.get(0)?,
        kind: if kind == "revoke" {
            OutboxKind::Revoke
        } else {
            OutboxKind::Upload
        },
        fingerprint: r.get(2)?,
        body: r.get(3)?,
        created_at: r.get(4)?,
        attempts: r.get(5)?,
        next_attempt_at: r.get(6)?,
        last_error: r.get(7)?,
        state: r.get(8)?,
    })
}

const COLUMNS: &str =
    "id, kind, fingerprint, body, created_at, attempts, next_attempt_at, last_error, state";

impl Store {
    /// Queue a request (committed before anything is sent). Queuing the same
    /// request twice is harmless: the console is idempotent by fingerprint.
    pub fn outbox_enqueue(
        &self,
        kind: OutboxKind,
        fingerprint: &str,
        body: &str,
        now: i64,
    ) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO outbox (kind, fingerprint, body, created_at, next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, ?4)",
            params![kind.as_str(), fingerprint, body, now],
        )?;
        Ok(self.conn.last_insert_rowid())
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

    /// The console acknowledged the item: it leaves the outbox.
    pub fn outbox_ack(&self, id: i64) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM outbox WHERE id = ?1", [id])?;
        Ok(())
    }

    pub fn outbox_retry_later(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3 WHERE id = ?1",
            params![id, error, next_attempt_at],
        )?;
        Ok(())
    }

    /// The console refused the item for good (e.g. not a valid certificate): kept, visible, not retried.
    pub fn outbox_reject(&self, id: i64, error: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, state = 'rejected' WHERE id = ?1",
            params![id, error],
        )?;
        Ok(())
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
