//! Trust bundles received from the console, kept for offline checks.
//!
//! What is held is one full version and the deltas taken after it, each exactly as
//! signed; the console layer verifies and replays them (src/console/trust.rs). The
//! highest version ever accepted is kept apart (`station_meta`), so deleted rows are
//! noticed instead of silently falling back to an older bundle.

use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError};

/// One stored piece of the held bundle.
#[derive(Debug, Clone)]
pub struct HeldRow {
    pub seq: i64,
    /// "full" (the base) or "delta".
    pub kind: String,
    /// The version column (a cache: the signed bytes name the real one).
    pub version: u64,
    pub bytes: Vec<u8>,
    pub fetched_at: i64,
}

/// What changes whenever the database changes (a commit by this connection or by any
/// other, in any process): a cheap way to tell whether a verified copy in memory is
/// still what is stored. Conservative: any write makes the next check verify again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldGeneration {
    pub data_version: i64,
    pub own_changes: i64,
    pub last_seq: i64,
    pub rows: i64,
}

fn to_i64(version: u64) -> Result<i64, StoreError> {
    i64::try_from(version)
        .map_err(|_| StoreError::Corrupt(format!("bundle version {version} too large")))
}

fn meta_i64(conn: &rusqlite::Connection, key: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT value FROM station_meta WHERE key = ?1",
            [key],
            |r| r.get(0),
        )
        .optional()?)
}

impl Store {
    /// This database's random id (tells two databases' held bundles apart in memory).
    pub fn database_id(&self) -> Result<String, StoreError> {
        Ok(self.conn.query_row(
            "SELECT value FROM station_meta WHERE key = 'database_id'",
            [],
            |r| r.get(0),
        )?)
    }

    pub fn held_generation(&self) -> Result<HeldGeneration, StoreError> {
        let data_version: i64 = self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?;
        Ok(self.conn.query_row(
            "SELECT total_changes(), COALESCE(MAX(seq), 0), COUNT(*) FROM trust_held",
            [],
            |r| {
                Ok(HeldGeneration {
                    data_version,
                    own_changes: r.get(0)?,
                    last_seq: r.get(1)?,
                    rows: r.get(2)?,
                })
            },
        )?)
    }

    /// The held rows in the order they were taken (the full version first).
    pub fn held_rows(&self) -> Result<Vec<HeldRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, kind, version, bytes, fetched_at FROM trust_held ORDER BY seq")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, kind, version, bytes, fetched_at) = row?;
            let version = u64::try_from(version)
                .map_err(|_| StoreError::Corrupt(format!("bundle version {version}")))?;
            out.push(HeldRow {
                seq,
                kind,
                version,
                bytes,
                fetched_at,
            });
        }
        Ok(out)
    }

    /// The highest bundle version this station ever accepted.
    pub fn bundle_high_water(&self) -> Result<Option<u64>, StoreError> {
        meta_i64(&self.conn, "bundle_high_water")?
            .map(|v| {
                u64::try_from(v)
                    .map_err(|_| StoreError::Corrupt(format!("bundle high-water mark {v}")))
            })
            .transpose()
    }

    /// Whether the station accepted format-1 bundles before and has not yet taken a
    /// format-2 one (so "nothing held" is expected, not damage).
    pub fn bundle_format_upgrade_pending(&self) -> Result<bool, StoreError> {
        Ok(meta_i64(&self.conn, "bundle_format_upgraded")?.is_some())
    }

    /// When the console last answered a bundle fetch (also "not modified"), and the
    /// tag it gave.
    pub fn bundle_fetch_mark(&self) -> Result<(Option<i64>, Option<String>), StoreError> {
        let at = meta_i64(&self.conn, "bundle_fetched_at")?;
        let tag: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM station_meta WHERE key = 'bundle_etag'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok((at, tag))
    }

    pub fn touch_bundle(&self, fetched_at: i64, etag: Option<&str>) -> Result<(), StoreError> {
        let tx = self.write_tx()?;
        set_fetch_mark(&tx, fetched_at, etag)?;
        tx.commit()?;
        Ok(())
    }

    /// Hold `bytes` (a verified full version) instead of everything held, and raise
    /// the high-water mark. `allow_lower`: an operator-confirmed new chain may start
    /// below the old mark (the mark then restarts from it).
    pub fn hold_full(
        &self,
        version: u64,
        bytes: &[u8],
        fetched_at: i64,
        etag: Option<&str>,
        allow_lower: bool,
    ) -> Result<(), StoreError> {
        let v = to_i64(version)?;
        let tx = self.write_tx()?;
        tx.execute("DELETE FROM trust_held", [])?;
        tx.execute(
            "INSERT INTO trust_held (kind, version, bytes, fetched_at) VALUES ('full', ?1, ?2, ?3)",
            params![v, bytes, fetched_at],
        )?;
        raise_high_water(&tx, v, allow_lower)?;
        tx.execute(
            "DELETE FROM station_meta WHERE key = 'bundle_format_upgraded'",
            [],
        )?;
        set_fetch_mark(&tx, fetched_at, etag)?;
        tx.commit()?;
        Ok(())
    }

    /// Hold a verified delta after the rows held, if they still end at `from`
    /// (another process may have moved on meanwhile: then false, nothing stored).
    pub fn hold_delta(
        &self,
        from: u64,
        version: u64,
        bytes: &[u8],
        fetched_at: i64,
        etag: Option<&str>,
    ) -> Result<bool, StoreError> {
        let tx = self.write_tx()?;
        let last: Option<i64> = tx
            .query_row(
                "SELECT version FROM trust_held ORDER BY seq DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        if last != Some(to_i64(from)?) {
            return Ok(false);
        }
        let v = to_i64(version)?;
        tx.execute(
            "INSERT INTO trust_held (kind, version, bytes, fetched_at) VALUES ('delta', ?1, ?2, ?3)",
            params![v, bytes, fetched_at],
        )?;
        raise_high_water(&tx, v, false)?;
        set_fetch_mark(&tx, fetched_at, etag)?;
        tx.commit()?;
        Ok(true)
    }
}

fn raise_high_water(
    tx: &rusqlite::Transaction<'_>,
    version: i64,
    allow_lower: bool,
) -> Result<(), StoreError> {
    let sql = if allow_lower {
        "INSERT INTO station_meta (key, value) VALUES ('bundle_high_water', ?1)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value"
    } else {
        "INSERT INTO station_meta (key, value) VALUES ('bundle_high_water', ?1)
         ON CONFLICT(key) DO UPDATE SET value = MAX(value, excluded.value)"
    };
    tx.execute(sql, [version])?;
    Ok(())
}

fn set_fetch_mark(
    tx: &rusqlite::Transaction<'_>,
    fetched_at: i64,
    etag: Option<&str>,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO station_meta (key, value) VALUES ('bundle_fetched_at', ?1)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [fetched_at],
    )?;
    match etag {
        Some(tag) => tx.execute(
            "INSERT INTO station_meta (key, value) VALUES ('bundle_etag', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [tag],
        )?,
        None => tx.execute("DELETE FROM station_meta WHERE key = 'bundle_etag'", [])?,
    };
    Ok(())
}
