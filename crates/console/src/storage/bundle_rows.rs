//! The signed trust-bundle chain as stored: one row per version in
//! `bundle_versions` and the newest full bundle in `bundle_published`
//! (crates/console/src/bundle.rs builds and signs them).

use super::db::{int_of, query_one, query_opt, SqlRow, Tx, WriteLock};
use super::{BundleVersionRow, PublishedBundle, Store, StoreError};

const COLUMNS: &str = "version, header, hash, changes, source_counter, created_at";

fn row(r: &SqlRow) -> Result<BundleVersionRow, StoreError> {
    Ok(BundleVersionRow {
        version: r.unsigned(0)?,
        header: r.blob(1)?,
        hash: r.blob(2)?,
        changes: r.opt_blob(3)?,
        source_counter: r.unsigned(4)?,
        created_at: r.int(5)?,
    })
}

/// The newest version and its full bundle, in the caller's transaction (one
/// snapshot: a version cut meanwhile is either wholly seen or not at all).
pub(super) async fn head(tx: &mut dyn Tx) -> Result<Option<PublishedBundle>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM bundle_versions ORDER BY version DESC LIMIT 1");
    let Some(latest) = query_opt(tx, &sql, &[]).await? else {
        return Ok(None);
    };
    let latest = row(&latest)?;
    let full = query_opt(
        tx,
        "SELECT full_bundle FROM bundle_published WHERE id = 1 AND version = $1",
        &[int_of(latest.version)?],
    )
    .await?;
    match full {
        Some(f) => Ok(Some(PublishedBundle {
            row: latest,
            full: f.blob(0)?,
        })),
        // Every cut writes both in one transaction: a version without its bundle is damage.
        None => Err(StoreError::Failed(format!(
            "bundle version {} is stored without its published bundle",
            latest.version
        ))),
    }
}

pub(super) async fn history(
    tx: &mut dyn Tx,
    from_version: u64,
    limit: u32,
) -> Result<Vec<BundleVersionRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM bundle_versions WHERE version >= $1 ORDER BY version LIMIT $2"
    );
    tx.query(&sql, &[int_of(from_version)?, i64::from(limit).into()])
        .await?
        .iter()
        .map(row)
        .collect()
}

async fn insert(tx: &mut dyn Tx, r: &BundleVersionRow) -> Result<(), StoreError> {
    let sql = format!("INSERT INTO bundle_versions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)");
    tx.execute(
        &sql,
        &[
            int_of(r.version)?,
            r.header.as_slice().into(),
            r.hash.as_slice().into(),
            r.changes.as_deref().into(),
            int_of(r.source_counter)?,
            r.created_at.into(),
        ],
    )
    .await
    .map(|_| ())
}

async fn publish(tx: &mut dyn Tx, version: u64, full: &[u8]) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO bundle_published (id, version, full_bundle) VALUES (1, $1, $2)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version,
             full_bundle = excluded.full_bundle",
        &[int_of(version)?, full.into()],
    )
    .await
    .map(|_| ())
}

/// The whole chain and the bundle served, for `migrate`.
pub(super) async fn all(
    tx: &mut dyn Tx,
) -> Result<(Vec<BundleVersionRow>, Option<Vec<u8>>), StoreError> {
    let chain = history(tx, 0, u32::MAX).await?;
    let full = head(tx).await?.map(|p| p.full);
    Ok((chain, full))
}

/// Write a moved chain into the caller's transaction (the tables are empty).
pub(super) async fn import(
    tx: &mut dyn Tx,
    chain: &[BundleVersionRow],
    full: Option<&[u8]>,
) -> Result<(), StoreError> {
    for r in chain {
        insert(tx, r).await?;
    }
    if let (Some(last), Some(full)) = (chain.last(), full) {
        publish(tx, last.version, full).await?;
    }
    Ok(())
}

impl Store {
    /// The newest version and the full bundle signed for it.
    pub async fn bundle_head(&self) -> Result<Option<PublishedBundle>, StoreError> {
        let mut tx = self.db.read().await?;
        let h = head(&mut *tx).await?;
        tx.commit().await?;
        Ok(h)
    }

    /// The newest version's number alone (cheap: tells whether a cached one is current).
    pub async fn bundle_latest_version(&self) -> Result<Option<u64>, StoreError> {
        let mut tx = self.db.read().await?;
        let v = query_one(&mut *tx, "SELECT MAX(version) FROM bundle_versions", &[]).await?;
        tx.commit().await?;
        v.opt_int(0)?
            .map(|v| {
                u64::try_from(v)
                    .map_err(|_| StoreError::Failed(format!("negative bundle version {v}")))
            })
            .transpose()
    }

    /// Versions `from_version` and later, oldest first, at most `limit`.
    pub async fn bundle_history(
        &self,
        from_version: u64,
        limit: u32,
    ) -> Result<Vec<BundleVersionRow>, StoreError> {
        let mut tx = self.db.read().await?;
        let rows = history(&mut *tx, from_version, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Add `row` as the newest version with `full` as the bundle served, if the
    /// newest stored version is still `after` (`None`: the history is empty) and
    /// `row` comes after it. False when another console instance cut one first.
    pub async fn cut_bundle_version(
        &self,
        row: &BundleVersionRow,
        full: &[u8],
        after: Option<u64>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.db.write(WriteLock::BundleCut).await?;
        let newest = query_one(&mut *tx, "SELECT MAX(version) FROM bundle_versions", &[])
            .await?
            .opt_int(0)?
            .map(|n| u64::try_from(n).unwrap_or(u64::MAX));
        if newest != after || newest.is_some_and(|n| n >= row.version) {
            return Ok(false);
        }
        insert(&mut *tx, row).await?;
        publish(&mut *tx, row.version, full).await?;
        tx.commit().await?;
        Ok(true)
    }
}
