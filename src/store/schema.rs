//! Schema and migrations, keyed on `PRAGMA user_version`.

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: enrollments and the audit trail.
    "CREATE TABLE enrollments (
        id            INTEGER PRIMARY KEY,
        started_at    INTEGER NOT NULL,
        finished_at   INTEGER,
        state         TEXT NOT NULL CHECK (state IN ('in-progress', 'enrolled', 'failed')),
        reader        TEXT NOT NULL,
        card_serial   INTEGER,
        old_guid      TEXT,
        new_guid      TEXT NOT NULL,
        slot          TEXT NOT NULL,
        subject       TEXT NOT NULL,
        fingerprint   TEXT,
        not_after     INTEGER,
        certificate   BLOB,
        error         TEXT,
        operator      TEXT NOT NULL,
        station_id    TEXT NOT NULL
    );
    CREATE INDEX enrollments_fingerprint ON enrollments(fingerprint);
    CREATE INDEX enrollments_guid ON enrollments(new_guid);
    CREATE TABLE audit (
        id         INTEGER PRIMARY KEY,
        at         INTEGER NOT NULL,
        operator   TEXT NOT NULL,
        station_id TEXT NOT NULL,
        action     TEXT NOT NULL,
        subject    TEXT NOT NULL,
        outcome    TEXT NOT NULL,
        details    TEXT NOT NULL,
        prev_hash  TEXT NOT NULL,
        hash       TEXT NOT NULL
    );",
    // 2: the console outbox and the trust bundles received.
    "CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY,
        kind            TEXT NOT NULL CHECK (kind IN ('upload', 'revoke')),
        fingerprint     TEXT NOT NULL,
        body            TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error      TEXT,
        state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'rejected'))
    );
    CREATE TABLE trust_bundles (
        version    INTEGER PRIMARY KEY,
        payload    BLOB NOT NULL,
        signature  TEXT NOT NULL,
        key_id     TEXT NOT NULL,
        issued_at  INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        fetched_at INTEGER NOT NULL
    );",
    // 3: card replacements, old and new linked.
    "CREATE TABLE replacements (
        id              INTEGER PRIMARY KEY,
        at              INTEGER NOT NULL,
        old_fingerprint TEXT NOT NULL,
        new_fingerprint TEXT NOT NULL,
        reason          TEXT NOT NULL,
        enrollment_id   INTEGER NOT NULL REFERENCES enrollments(id),
        operator        TEXT NOT NULL
    );",
];

pub fn migrate(conn: &rusqlite::Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew {
            found: version,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
