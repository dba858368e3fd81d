//! The console's schema in both dialects. Migrations 1–5 were written for each
//! backend on its own; from 6 on a migration is written once (in the SQL both
//! accept: TEXT, BIGINT) with only what truly differs added per dialect.

use super::db::Dialect;

/// Migrations 1–5 as SQLite consoles applied them (`PRAGMA user_version` counts them).
const SQLITE_FIRST: &[&str] = &[
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

/// Migrations 1–5 as PostgreSQL consoles applied them (`schema_migrations` lists them).
const POSTGRES_FIRST: &[&str] = &[
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

/// 6: one credential store for every role (stations and gateways were two tables
/// of the same shape), and actors typed in what records who revoked: a station
/// named like the administrator can no longer pass for it.
const IDENTITIES: &str = "
     CREATE TABLE identities (
        cert_sha256 TEXT PRIMARY KEY,
        role        TEXT NOT NULL,
        name        TEXT NOT NULL,
        issued_at   BIGINT NOT NULL,
        not_after   BIGINT NOT NULL,
        revoked_at  BIGINT
     );
     CREATE INDEX identities_role_name ON identities (role, name);
     INSERT INTO identities (cert_sha256, role, name, issued_at, not_after, revoked_at)
        SELECT cert_sha256, 'station', name, issued_at, not_after, revoked_at FROM stations;
     INSERT INTO identities (cert_sha256, role, name, issued_at, not_after, revoked_at)
        SELECT cert_sha256, 'gateway', name, issued_at, not_after, revoked_at FROM gateways;
     DROP TABLE stations;
     DROP TABLE gateways;
     UPDATE certificates SET revoked_by = CASE WHEN revoked_by = 'admin' THEN 'administrator'
        ELSE 'station:' || revoked_by END WHERE revoked_by IS NOT NULL;
     UPDATE revoked_keys SET revoked_by = CASE WHEN revoked_by = 'admin' THEN 'administrator'
        ELSE 'station:' || revoked_by END;";

/// 7: renewal: a certificate names the one that superseded it (it stays valid until
/// its own end; nothing is revoked).
const SUPERSEDED: &str = "
     ALTER TABLE certificates ADD COLUMN superseded_by TEXT;
     ALTER TABLE certificates ADD COLUMN superseded_at BIGINT;";

/// 8: attestation: what the console verified about a key's origin (JSON, the record's
/// `attestation`), and the evidence it verified (the two certificates, JSON).
const ATTESTATION: &str = "
     ALTER TABLE certificates ADD COLUMN attestation TEXT;
     ALTER TABLE certificates ADD COLUMN attestation_evidence TEXT;";

/// Every migration for `dialect`, in order.
pub fn migrations(dialect: Dialect) -> Vec<String> {
    let (first, column_rename) = match dialect {
        Dialect::Sqlite => (
            SQLITE_FIRST,
            // SQLite consoles named the published bundle's column `full`.
            "ALTER TABLE bundle_published RENAME COLUMN full TO full_bundle;",
        ),
        Dialect::Postgres => (POSTGRES_FIRST, ""),
    };
    let mut all: Vec<String> = first.iter().map(|m| m.to_string()).collect();
    all.push(format!("{IDENTITIES}\n     {column_rename}"));
    all.push(SUPERSEDED.to_string());
    all.push(ATTESTATION.to_string());
    all
}

/// How many migrations this console knows (the same on both backends).
pub const SCHEMA_VERSION: i64 = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_dialects_know_the_same_number_of_migrations() {
        for d in [Dialect::Sqlite, Dialect::Postgres] {
            assert_eq!(migrations(d).len() as i64, SCHEMA_VERSION);
        }
    }
}
