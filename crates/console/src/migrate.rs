//! `cardstation-console migrate`: move a console's records from one database to
//! another (SQLite to PostgreSQL, or back), then prove nothing was lost or changed
//! by comparing counts and a hash of every record on both sides.

use crate::storage::{self, Database, StoreError};

/// What a migration moved, as checked on both sides.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MigrationReport {
    pub records: usize,
    pub bundle_version: u64,
    /// SHA-256 of the bundle version and every record, equal on both sides.
    pub digest: String,
    /// Gateway credentials, gateway events and stations' audit anchors moved.
    pub gateways: usize,
    pub events: usize,
    pub anchors: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("source {db}: {source}")]
    Source {
        db: Database,
        #[source]
        source: StoreError,
    },
    #[error("target {db}: {source}")]
    Target {
        db: Database,
        #[source]
        source: StoreError,
    },
    #[error("the source and the target are the same database")]
    SameDatabase,
    #[error("the check after copying failed: the source has {source_records} records (hash {source_digest}), the target {target_records} (hash {target_digest}). Do not switch the console over; empty the target and try again")]
    Mismatch {
        source_records: usize,
        source_digest: String,
        target_records: usize,
        target_digest: String,
    },
}

/// Copy everything in `from` into the empty database `to` in one transaction, then
/// read both back and compare. Stop the console on `from` first: changes made to it
/// during the copy would not be moved.
pub async fn migrate(from: &Database, to: &Database) -> Result<MigrationReport, MigrateError> {
    if from == to {
        return Err(MigrateError::SameDatabase);
    }
    // Opening a missing SQLite file would create an empty site: refuse instead.
    if let Database::Sqlite(path) = from {
        if !path.is_file() {
            return Err(MigrateError::Source {
                db: from.clone(),
                source: StoreError::Settings(format!("{} does not exist", path.display())),
            });
        }
    }
    let src_err = |source| MigrateError::Source {
        db: from.clone(),
        source,
    };
    let dst_err = |source| MigrateError::Target {
        db: to.clone(),
        source,
    };
    let source = storage::open(from).await.map_err(src_err)?;
    let snapshot = source.snapshot().await.map_err(src_err)?;
    let source_digest = snapshot.digest().map_err(src_err)?;

    let target = storage::open(to).await.map_err(dst_err)?;
    target.import(&snapshot).await.map_err(dst_err)?;
    let copied = target.snapshot().await.map_err(dst_err)?;
    let target_digest = copied.digest().map_err(dst_err)?;

    // Read the source again: it must not have changed while it was copied.
    let again = source.snapshot().await.map_err(src_err)?;
    let again_digest = again.digest().map_err(src_err)?;
    if copied.records.len() != snapshot.records.len()
        || target_digest != source_digest
        || again_digest != source_digest
    {
        return Err(MigrateError::Mismatch {
            source_records: again.records.len(),
            source_digest: again_digest,
            target_records: copied.records.len(),
            target_digest,
        });
    }
    Ok(MigrationReport {
        records: copied.records.len(),
        bundle_version: copied.bundle_version,
        digest: target_digest,
        gateways: copied
            .identities
            .iter()
            .filter(|i| i.role == crate::storage::Role::Gateway)
            .count(),
        events: copied.events.len(),
        anchors: copied.anchors.len(),
    })
}
