//! The trust-bundle chain in SQLite (the `bundle_versions` and `bundle_published` tables).

use rusqlite::{params, OptionalExtension, Row};

use super::{BundleVersionRow, PublishedBundle};

fn to_i64(v: u64) -> rusqlite::Result<i64> {
    i64::try_from(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn to_u64(v: i64, col: usize) -> rusqlite::Result<u64> {
    u64::try_from(v).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Integer, Box::new(e))
    })
}

const COLUMNS: &str = "version, header, hash, changes, source_counter, created_at";

fn row(r: &Row<'_>) -> rusqlite::Result<BundleVersionRow> {
    Ok(BundleVersionRow {
        version: to_u64(r.get(0)?, 0)?,
        header: r.get(1)?,
        hash: r.get(2)?,
        changes: r.get(3)?,
        source_counter: to_u64(r.get(4)?, 4)?,
        created_at: r.get(5)?,
    })
}

pub(super) fn head(conn: &rusqlite::Connection) -> rusqlite::Result<Option<PublishedBundle>> {
    let Some(latest) = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM bundle_versions ORDER BY version DESC LIMIT 1"),
            [],
            row,
        )
        .optional()?
    else {
        return Ok(None);
    };
    let full: Option<Vec<u8>> = conn
        .query_row(
            "SELECT full FROM bundle_published WHERE id = 1 AND version = ?1",
            [to_i64(latest.version)?],
            |r| r.get(0),
        )
        .optional()?;
    Ok(full.map(|full| PublishedBundle { row: latest, full }))
}

pub(super) fn latest_version(conn: &rusqlite::Connection) -> rusqlite::Result<Option<u64>> {
    let v: Option<i64> =
        conn.query_row("SELECT MAX(version) FROM bundle_versions", [], |r| r.get(0))?;
    v.map(|v| to_u64(v, 0)).transpose()
}

pub(super) fn history(
    conn: &rusqlite::Connection,
    from_version: u64,
    limit: u32,
) -> rusqlite::Result<Vec<BundleVersionRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM bundle_versions WHERE version >= ?1 ORDER BY version LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![to_i64(from_version)?, limit], row)?;
    rows.collect()
}

/// In the caller's write transaction.
pub(super) fn cut(
    tx: &rusqlite::Transaction<'_>,
    r: &BundleVersionRow,
    full: &[u8],
) -> rusqlite::Result<bool> {
    let newest: Option<i64> =
        tx.query_row("SELECT MAX(version) FROM bundle_versions", [], |r| r.get(0))?;
    if newest.is_some_and(|n| n >= to_i64(r.version).unwrap_or(i64::MAX)) {
        return Ok(false);
    }
    insert(tx, r)?;
    tx.execute(
        "INSERT INTO bundle_published (id, version, full) VALUES (1, ?1, ?2)
         ON CONFLICT(id) DO UPDATE SET version = excluded.version, full = excluded.full",
        params![to_i64(r.version)?, full],
    )?;
    Ok(true)
}

pub(super) fn insert(conn: &rusqlite::Connection, r: &BundleVersionRow) -> rusqlite::Result<()> {
    conn.execute(
        &format!("INSERT INTO bundle_versions ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
        params![
            to_i64(r.version)?,
            r.header,
            r.hash,
            r.changes,
            to_i64(r.source_counter)?,
            r.created_at
        ],
    )?;
    Ok(())
}

/// Everything, for `migrate`.
pub(super) fn all(
    conn: &rusqlite::Connection,
) -> rusqlite::Result<(Vec<BundleVersionRow>, Option<Vec<u8>>)> {
    let chain = history(conn, 0, u32::MAX)?;
    let full = head(conn)?.map(|p| p.full);
    Ok((chain, full))
}

pub(super) fn import(
    conn: &rusqlite::Connection,
    chain: &[BundleVersionRow],
    full: Option<&[u8]>,
) -> rusqlite::Result<()> {
    for r in chain {
        insert(conn, r)?;
    }
    if let (Some(last), Some(full)) = (chain.last(), full) {
        conn.execute(
            "INSERT INTO bundle_published (id, version, full) VALUES (1, ?1, ?2)",
            params![to_i64(last.version)?, full],
        )?;
    }
    Ok(())
}
