//! The event queue (SQLite): every decision is a committed row before its action runs,
//! and leaves the queue only when the console acknowledged it. Each event carries an id
//! chosen once, so sending a batch again after a lost answer is harmless (the console
//! keeps each id once): exactly once, across kills, restarts and console outages.

use std::path::{Path, PathBuf};

use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use cardstation_protocol::messages::{
    event_text, GatewayEvent, AT_UNKNOWN, EARLIEST_EVENT_TIME, MAX_EVENT_READER, MAX_EVENT_SUBJECT,
};

use crate::decision::Outcome;

const FILE: &str = "events.db";

/// Acknowledged events kept for `status` and local inspection, newest first.
const KEEP_SENT: i64 = 10_000;

#[derive(Debug, thiserror::Error)]
#[error("the event queue {path}: {source}")]
pub struct QueueError {
    path: PathBuf,
    #[source]
    source: rusqlite::Error,
}

pub struct Queue {
    conn: Connection,
    path: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueStatus {
    pub pending: i64,
    pub sent: i64,
    /// Events the console refused for good: set aside (kept with the console's reason,
    /// never sent again) so that the queue moves on.
    pub refused: i64,
    /// Unix seconds of the oldest event not yet acknowledged.
    pub oldest_pending_at: Option<i64>,
}

/// A fresh event id: 128 bits from the OS generator, hex.
pub fn new_event_id() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// The event of `outcome`, decided at `at` (the gateway's clock), in the form the
/// console takes: see [`sendable`].
pub fn event_for(outcome: &Outcome, id: String, at: i64) -> GatewayEvent {
    sendable(GatewayEvent {
        id,
        at,
        reader: outcome.reader.clone(),
        decision: outcome.decision,
        fingerprint: outcome.fingerprint.clone(),
        subject: outcome.subject.clone(),
        reasons: outcome.reasons.iter().map(|r| r.code.clone()).collect(),
        bundle_version: outcome.bundle_version,
    })
}

/// An event as the console accepts it: subject and reader without control characters
/// and within the console's bounds (cut on a character boundary, marked), and a time
/// before 2000 (a clock never set) sent as unknown rather than as a bogus date.
/// Applied when an event is queued and again when it is sent (rows queued by earlier
/// versions).
pub fn sendable(mut e: GatewayEvent) -> GatewayEvent {
    if e.at < EARLIEST_EVENT_TIME {
        e.at = AT_UNKNOWN;
    }
    e.reader = event_text(&e.reader, MAX_EVENT_READER);
    if e.reader.is_empty() {
        e.reader = "?".into();
    }
    e.subject = e
        .subject
        .map(|s| event_text(&s, MAX_EVENT_SUBJECT))
        .filter(|s| !s.is_empty());
    e
}

impl Queue {
    pub fn open(data_dir: &Path) -> Result<Self, QueueError> {
        let path = data_dir.join(FILE);
        let fail = |source| QueueError {
            path: path.clone(),
            source,
        };
        if let Err(e) = std::fs::create_dir_all(data_dir) {
            return Err(fail(rusqlite::Error::ToSqlConversionFailure(Box::new(e))));
        }
        let conn = Connection::open(&path).map_err(fail)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(fail)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(fail)?;
        // A decision is on disk before its action runs: no "probably written".
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(fail)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS events (
                seq        INTEGER PRIMARY KEY AUTOINCREMENT,
                id         TEXT NOT NULL UNIQUE,
                at         INTEGER NOT NULL,
                body       TEXT NOT NULL,
                sent_at    INTEGER
             );
             CREATE INDEX IF NOT EXISTS events_pending ON events (seq) WHERE sent_at IS NULL;",
        )
        .map_err(fail)?;
        // Events the console refused for good are set aside: kept, never sent again.
        let has_refused = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('events') WHERE name = 'refused_at'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(fail)?
            > 0;
        if !has_refused {
            conn.execute_batch(
                "ALTER TABLE events ADD COLUMN refused_at INTEGER;
                 ALTER TABLE events ADD COLUMN refused_why TEXT;",
            )
            .map_err(fail)?;
        }
        Ok(Queue { conn, path })
    }

    fn fail(&self, source: rusqlite::Error) -> QueueError {
        QueueError {
            path: self.path.clone(),
            source,
        }
    }

    /// Commit `event` (durably) to the queue.
    pub fn push(&self, event: &GatewayEvent) -> Result<(), QueueError> {
        let body = serde_json::to_string(event)
            .map_err(|e| self.fail(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
        self.conn
            .execute(
                "INSERT INTO events (id, at, body) VALUES (?1, ?2, ?3)",
                params![event.id, event.at, body],
            )
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// The oldest `limit` events not yet acknowledged, in the order they were decided.
    pub fn pending(&self, limit: usize) -> Result<Vec<(i64, GatewayEvent)>, QueueError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, body FROM events WHERE sent_at IS NULL AND refused_at IS NULL
                 ORDER BY seq LIMIT ?1",
            )
            .map_err(|e| self.fail(e))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map([limit], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, body) = row.map_err(|e| self.fail(e))?;
            // Our own rows; one that no longer parses is skipped rather than blocking the queue.
            match serde_json::from_str(&body) {
                Ok(ev) => out.push((seq, ev)),
                Err(e) => tracing::error!("event queue row {seq} cannot be read ({e}); skipped"),
            }
        }
        Ok(out)
    }

    /// Mark the events up to and including `seqs` as acknowledged by the console.
    pub fn mark_sent(&mut self, seqs: &[i64], now: i64) -> Result<(), QueueError> {
        let path = self.path.clone();
        let fail = |source| QueueError {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(fail)?;
        for seq in seqs {
            tx.execute(
                "UPDATE events SET sent_at = ?2 WHERE seq = ?1 AND sent_at IS NULL",
                params![seq, now],
            )
            .map_err(fail)?;
        }
        tx.execute(
            "DELETE FROM events WHERE sent_at IS NOT NULL AND seq NOT IN
                 (SELECT seq FROM events WHERE sent_at IS NOT NULL ORDER BY seq DESC LIMIT ?1)",
            [KEEP_SENT],
        )
        .map_err(fail)?;
        tx.commit().map_err(fail)
    }

    /// The console refused the event `seq` for good (`why`): set it aside, so that it
    /// neither goes again nor holds back the events after it.
    pub fn set_aside(&self, seq: i64, why: &str, now: i64) -> Result<(), QueueError> {
        self.conn
            .execute(
                "UPDATE events SET refused_at = ?2, refused_why = ?3
                 WHERE seq = ?1 AND sent_at IS NULL",
                params![seq, now, why],
            )
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    pub fn status(&self) -> Result<QueueStatus, QueueError> {
        let count = |sql: &str| -> Result<i64, QueueError> {
            self.conn
                .query_row(sql, [], |r| r.get(0))
                .map_err(|e| self.fail(e))
        };
        Ok(QueueStatus {
            pending: count(
                "SELECT COUNT(*) FROM events WHERE sent_at IS NULL AND refused_at IS NULL",
            )?,
            sent: count("SELECT COUNT(*) FROM events WHERE sent_at IS NOT NULL")?,
            refused: count("SELECT COUNT(*) FROM events WHERE refused_at IS NOT NULL")?,
            oldest_pending_at: self
                .conn
                .query_row(
                    "SELECT MIN(at) FROM events WHERE sent_at IS NULL AND refused_at IS NULL",
                    [],
                    |r| r.get::<_, Option<i64>>(0),
                )
                .optional()
                .map_err(|e| self.fail(e))?
                .flatten(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn events_stay_until_acknowledged_and_survive_reopening() {
        const T: i64 = 1_800_000_000;
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path()).unwrap();
        let outcome = Outcome::card_unreachable("R", "gone".into(), Some(2));
        let ids: Vec<String> = (0..3).map(|_| new_event_id()).collect();
        for (i, id) in ids.iter().enumerate() {
            q.push(&event_for(&outcome, id.clone(), T + i as i64))
                .unwrap();
        }
        // The same id twice is refused: an event is recorded once.
        assert!(q.push(&event_for(&outcome, ids[0].clone(), T + 9)).is_err());
        drop(q);
        let mut q = Queue::open(dir.path()).unwrap();
        let pending = q.pending(2).unwrap();
        assert_eq!(
            pending
                .iter()
                .map(|(_, e)| e.id.clone())
                .collect::<Vec<_>>(),
            ids[..2]
        );
        q.mark_sent(&[pending[0].0, pending[1].0], 10).unwrap();
        let rest = q.pending(10).unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].1.id, ids[2]);
        let s = q.status().unwrap();
        assert_eq!(
            (s.pending, s.sent, s.oldest_pending_at),
            (1, 2, Some(T + 2))
        );
        // Refused for good: set aside, counted, never pending again.
        q.set_aside(rest[0].0, "bad-event: test", 11).unwrap();
        assert!(q.pending(10).unwrap().is_empty());
        let s = q.status().unwrap();
        assert_eq!((s.pending, s.sent, s.refused), (0, 2, 1));
    }

    #[test]
    fn a_hostile_subject_and_an_unset_clock_become_an_event_the_console_takes() {
        let mut outcome = Outcome::card_unreachable("R\u{7}", "gone".into(), None);
        outcome.subject = Some(format!("CN=a\u{0}b{}", "x".repeat(2000)));
        let e = event_for(&outcome, new_event_id(), 86_400);
        assert_eq!(e.at, AT_UNKNOWN);
        assert_eq!(e.reader, "R?");
        let subject = e.subject.unwrap();
        assert!(subject.starts_with("CN=a?bxxx"), "{subject}");
        assert_eq!(subject.chars().count(), MAX_EVENT_SUBJECT);
        assert!(!subject.chars().any(char::is_control));
        let e = event_for(&outcome, new_event_id(), 1_800_000_000);
        assert_eq!(e.at, 1_800_000_000);
    }
}
