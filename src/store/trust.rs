//! Trust bundles received from the console, kept for offline checks.
//!
//! The signed bytes are what counts: the other columns are caches that the
//! console layer checks against the verified payload every time. The highest
//! version ever accepted is kept apart (`station_meta`), so a deleted newest row
//! is noticed instead of silently falling back to an older bundle.

use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError};

#[derive(Debug, Clone)]
pub struct StoredBundle {
    /// The version column (a cache: the signed payload names the real one).
    pub version: u64,
    /// The exact signed payload bytes.
    pub payload: Vec<u8>,
    pub signature: String,
    pub key_id: String,
    pub issued_at: i64,
    pub expires_at: i64,
    pub fetched_at: i64,
}

fn to_i64(version: u64) -> Result<i64, StoreError> {
    i64::try_from(version)
        .map_err(|_| StoreError::Corrupt(format!("bundle version {version} too large")))
}

impl Store {
    /// The row with the highest version column.
    pub fn latest_bundle(&self) -> Result<Option<StoredBundle>, StoreError> {
        self.conn
            .query_row(
                "SELECT version, payload, signature, key_id, issued_at, expires_at, fetched_at
                 FROM trust_bundles ORDER BY version DESC LIMIT 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        StoredBundle {
                            version: 0,
                            payload: r.get(1)?,
                            signature: r.get(2)?,
                            key_id: r.get(3)?,
                            issued_at: r.get(4)?,
                            expires_at: r.get(5)?,
                            fetched_at: r.get(6)?,
                        },
                    ))
                },
            )
            .optional()?
            .map(|(version, b)| {
                let version = u64::try_from(version)
                    .map_err(|_| StoreError::Corrupt(format!("bundle version {version}")))?;
                Ok(StoredBundle { version, ..b })
            })
            .transpose()
    }

    /// The highest bundle version this station ever accepted.
    pub fn bundle_high_water(&self) -> Result<Option<u64>, StoreError> {
        let v: Option<i64> = self
            .conn
            .query_row(
                "SELECT value FROM station_meta WHERE key = 'bundle_high_water'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        v.map(|v| {
            u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("bundle high-water mark {v}")))
        })
        .transpose()
    }

    /// Keep a verified bundle (replacing a row of the same version: the console
    /// re-signs the same lists with fresh times) and raise the high-water mark.
    pub fn save_bundle(&self, b: &StoredBundle) -> Result<(), StoreError> {
        let version = to_i64(b.version)?;
        let tx = self.write_tx()?;
        tx.execute(
            "INSERT INTO trust_bundles (version, payload, signature, key_id, issued_at, expires_at, fetched_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(version) DO UPDATE SET payload = excluded.payload,
                 signature = excluded.signature, key_id = excluded.key_id,
                 issued_at = excluded.issued_at, expires_at = excluded.expires_at,
                 fetched_at = excluded.fetched_at",
            params![version, b.payload, b.signature, b.key_id, b.issued_at, b.expires_at, b.fetched_at],
        )?;
        tx.execute(
            "INSERT INTO station_meta (key, value) VALUES ('bundle_high_water', ?1)
             ON CONFLICT(key) DO UPDATE SET value = MAX(value, excluded.value)",
            [version],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Only the time of the last successful fetch changes.
    pub fn touch_bundle(&self, version: u64, fetched_at: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE trust_bundles SET fetched_at = ?2 WHERE version = ?1",
            params![to_i64(version)?, fetched_at],
        )?;
        Ok(())
    }
}
