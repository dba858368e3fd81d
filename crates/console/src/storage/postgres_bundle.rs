//! The trust-bundle chain in PostgreSQL (the `bundle_versions` and `bundle_published` tables).

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::postgres::pg;
use super::{BundleVersionRow, PublishedBundle, StoreError};

/// Advisory lock held while a version is cut: one instance at a time adds one.
const CUT_LOCK: i64 = 0x4353_434E_4355_5400; // "CSCNCUT"

const COLUMNS: &str = "version, header, hash, changes, source_counter, created_at";

fn int(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Failed(format!("bundle version {v} is too large")))
}

fn row(r: &Row) -> Result<BundleVersionRow, StoreError> {
    let version: i64 = r.try_get(0).map_err(pg)?;
    let counter: i64 = r.try_get(4).map_err(pg)?;
    let unsigned = |v: i64| {
        u64::try_from(v).map_err(|_| StoreError::Failed(format!("negative bundle number {v}")))
    };
    Ok(BundleVersionRow {
        version: unsigned(version)?,
        header: r.try_get(1).map_err(pg)?,
        hash: r.try_get(2).map_err(pg)?,
        changes: r.try_get(3).map_err(pg)?,
        source_counter: unsigned(counter)?,
        created_at: r.try_get(5).map_err(pg)?,
    })
}

pub(super) async fn head(c: &impl GenericClient) -> Result<Option<PublishedBundle>, StoreError> {
    let Some(latest) = c
        .query_opt(
            &format!("SELECT {COLUMNS} FROM bundle_versions ORDER BY version DESC LIMIT 1"),
            &[],
        )
        .await
        .map_err(pg)?
    else {
        return Ok(None);
    };
    let latest = row(&latest)?;
    let full = c
        .query_opt(
            "SELECT full_bundle FROM bundle_published WHERE id = 1 AND version = $1",
            &[&int(latest.version)?],
        )
        .await
        .map_err(pg)?;
    match full {
        Some(r) => Ok(Some(PublishedBundle {
            row: latest,
            full: r.try_get(0).map_err(pg)?,
        })),
        None => Ok(None),
    }
}

pub(super) async fn latest_version(c: &impl GenericClient) -> Result<Option<u64>, StoreError> {
    let v: Option<i64> = c
        .query_one("SELECT MAX(version) FROM bundle_versions", &[])
        .await
        .map_err(pg)?
        .try_get(0)
        .map_err(pg)?;
    v.map(|v| {
        u64::try_from(v).map_err(|_| StoreError::Failed(format!("negative bundle version {v}")))
    })
    .transpose()
}

pub(super) async fn history(
    c: &impl GenericClient,
    from_version: u64,
    limit: u32,
) -> Result<Vec<BundleVersionRow>, StoreError> {
    c.query(
        &format!(
            "SELECT {COLUMNS} FROM bundle_versions WHERE version >= $1 ORDER BY version LIMIT $2"
        ),
        &[&int(from_version)?, &i64::from(limit)],
    )
    .await
    .map_err(pg)?
    .iter()
    .map(row)
    .collect()
}

async fn insert(c: &impl GenericClient, r: &BundleVersionRow) -> Result<(), StoreError> {
    c.execute(
        &format!("INSERT INTO bundle_versions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"),
        &[
            &int(r.version)?,
            &r.header,
            &r.hash,
            &r.changes,
            &int(r.source_counter)?,
            &r.created_at,
        ],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

async fn publish(c: &impl GenericClient, version: u64, full: &[u8]) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO bundle_published (id, version, full_bundle) VALUES (1, $1, $2)
         ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, full_bundle = EXCLUDED.full_bundle",
        &[&int(version)?, &full],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

pub(super) async fn cut(
    tx: &deadpool_postgres::Transaction<'_>,
    r: &BundleVersionRow,
    full: &[u8],
) -> Result<bool, StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CUT_LOCK])
        .await
        .map_err(pg)?;
    let newest: Option<i64> = tx
        .query_one("SELECT MAX(version) FROM bundle_versions", &[])
        .await
        .map_err(pg)?
        .try_get(0)
        .map_err(pg)?;
    if newest.is_some_and(|n| n >= int(r.version).unwrap_or(i64::MAX)) {
        return Ok(false);
    }
    insert(tx, r).await?;
    publish(tx, r.version, full).await?;
    Ok(true)
}

/// Everything, for `migrate`.
pub(super) async fn all(
    c: &impl GenericClient,
) -> Result<(Vec<BundleVersionRow>, Option<Vec<u8>>), StoreError> {
    let chain = history(c, 0, u32::MAX).await?;
    let full = head(c).await?.map(|p| p.full);
    Ok((chain, full))
}

pub(super) async fn import(
    c: &impl GenericClient,
    chain: &[BundleVersionRow],
    full: Option<&[u8]>,
) -> Result<(), StoreError> {
    for r in chain {
        insert(c, r).await?;
    }
    if let (Some(last), Some(full)) = (chain.last(), full) {
        publish(c, last.version, full).await?;
    }
    Ok(())
}
