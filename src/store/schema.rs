//! Schema and migrations, keyed on `PRAGMA user_version`.

use std::path::{Path, PathBuf};

use rusqlite::{Transaction, TransactionBehavior};

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
    // 4: records that survive several processes. Outbox ids are never reused
    // (AUTOINCREMENT) and each row carries a random token an acknowledgement must
    // name; facts about the database itself (its id, the highest trust bundle
    // version ever accepted) live in station_meta.
    "CREATE TABLE outbox_v4 (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        token           TEXT NOT NULL UNIQUE,
        kind            TEXT NOT NULL CHECK (kind IN ('upload', 'revoke')),
        fingerprint     TEXT NOT NULL,
        body            TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error      TEXT,
        state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'rejected'))
    );
    INSERT INTO outbox_v4 (id, token, kind, fingerprint, body, created_at, attempts,
                           next_attempt_at, last_error, state)
        SELECT id, lower(hex(randomblob(16))), kind, fingerprint, body, created_at, attempts,
               next_attempt_at, last_error, state FROM outbox;
    DROP TABLE outbox;
    ALTER TABLE outbox_v4 RENAME TO outbox;
    CREATE TABLE station_meta (
        key   TEXT PRIMARY KEY,
        value NOT NULL
    );
    INSERT INTO station_meta (key, value) VALUES ('database_id', lower(hex(randomblob(16))));
    INSERT INTO station_meta (key, value)
        SELECT 'bundle_high_water', MAX(version) FROM trust_bundles HAVING COUNT(*) > 0;",
    // 5: trust bundle format 2 (a chain of versions; full bundles and deltas). What
    // is held is a full version and the deltas taken after it, each as signed. Format 1
    // bundles cannot be read any more; the high-water mark stays, so the console's
    // first format-2 version must still not be older than what was accepted.
    "DROP TABLE trust_bundles;
    CREATE TABLE trust_held (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        kind       TEXT NOT NULL CHECK (kind IN ('full', 'delta')),
        version    INTEGER NOT NULL,
        bytes      BLOB NOT NULL,
        fetched_at INTEGER NOT NULL
    );
    INSERT INTO station_meta (key, value)
        SELECT 'bundle_format_upgraded', 1 FROM station_meta
        WHERE key = 'bundle_high_water';",
    // 6: who or what holds the card ("gw-17 Plant B", "J. Smith"), as the operator typed it.
    "ALTER TABLE enrollments ADD COLUMN label TEXT;",
    // 7: an item the console refused for a settings reason (this station's credential
    // or name) remembers the settings it was refused under, and is sent again once
    // they change.
    "ALTER TABLE outbox ADD COLUMN refused_under TEXT;",
    // 8: a renewal's retirement of the old certificate is queued like an upload
    // (SQLite cannot change a CHECK in place: the table is copied).
    "CREATE TABLE outbox_v8 (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        token           TEXT NOT NULL UNIQUE,
        kind            TEXT NOT NULL CHECK (kind IN ('upload', 'revoke', 'supersede')),
        fingerprint     TEXT NOT NULL,
        body            TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error      TEXT,
        state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'rejected')),
        refused_under   TEXT
    );
    INSERT INTO outbox_v8 (id, token, kind, fingerprint, body, created_at, attempts,
                           next_attempt_at, last_error, state, refused_under)
        SELECT id, token, kind, fingerprint, body, created_at, attempts, next_attempt_at,
               last_error, state, refused_under FROM outbox;
    DROP TABLE outbox;
    ALTER TABLE outbox_v8 RENAME TO outbox;",
    // 9: the card's proof that the enrolled key was generated on it (PIV attestation,
    // JSON), kept so a later `upload` of the certificate carries it too.
    "ALTER TABLE enrollments ADD COLUMN attestation TEXT;",
];

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

#[derive(Debug)]
pub enum MigrateError {
    Store(StoreError),
    /// The database holds no schema yet, but this file shows the station was used.
    Lost(PathBuf),
}

impl From<rusqlite::Error> for MigrateError {
    fn from(e: rusqlite::Error) -> Self {
        MigrateError::Store(e.into())
    }
}

/// Bring the schema up to date. The whole check-and-migrate runs under the write
/// lock (`BEGIN IMMEDIATE`), so two processes starting together on a fresh data
/// directory take turns: the second finds the schema the first created.
/// `used`: evidence the station was in use, which makes an empty database an error.
pub fn migrate(conn: &rusqlite::Connection, used: Option<&Path>) -> Result<(), MigrateError> {
    let known = MIGRATIONS.len() as i64;
    // The common case, without the write lock: already up to date.
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current == known {
        return Ok(());
    }
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > known {
        return Err(MigrateError::Store(StoreError::TooNew {
            found: version,
            known,
        }));
    }
    if version == 0 {
        if let Some(evidence) = used {
            return Err(MigrateError::Lost(evidence.to_path_buf()));
        }
    }
    if version == known {
        return Ok(());
    }
    for sql in MIGRATIONS.iter().skip(version as usize) {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", known)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_3_database_keeps_its_outbox_and_bundle_mark() {
        let dir = tempfile::tempdir().unwrap();
        let conn = rusqlite::Connection::open(dir.path().join("station.db")).unwrap();
        for sql in &MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "PRAGMA user_version = 3;
             INSERT INTO outbox (id, kind, fingerprint, body, created_at, next_attempt_at)
                 VALUES (7, 'upload', 'ff', '{}', 1, 1);
             INSERT INTO trust_bundles VALUES (4, x'00', 's', 'k', 1, 2, 3);
             INSERT INTO trust_bundles VALUES (9, x'00', 's', 'k', 1, 2, 3);",
        )
        .unwrap();
        migrate(&conn, None).unwrap();
        let (id, token): (i64, String) = conn
            .query_row("SELECT id, token FROM outbox", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((id, token.len()), (7, 32));
        let mark: i64 = conn
            .query_row(
                "SELECT value FROM station_meta WHERE key = 'bundle_high_water'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(mark, 9);
        // The next row after a deleted newest one gets a new id.
        conn.execute("DELETE FROM outbox", []).unwrap();
        conn.execute(
            "INSERT INTO outbox (token, kind, fingerprint, body, created_at, next_attempt_at)
             VALUES ('t', 'upload', 'ee', '{}', 1, 1)",
            [],
        )
        .unwrap();
        assert_eq!(conn.last_insert_rowid(), 8);
    }
}
