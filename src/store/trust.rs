//! Trust bundles received from the console, kept for offline checks.

use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError};

#[derive(Debug, Clone)]
pub struct StoredBundle {
    pub version: u64,
    /// The exact signed payload bytes.
    pub payload: Vec<u8>,
    pub signature: String,
    pub key_id: String,
    pub issued_at: i64,
    pub expires_at: i64,
    pub fetched_at: i64,
}

impl Store {
    pub fn latest_bundle(&self) -> Result<Option<StoredBundle>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT version, payload, signature, key_id, issued_at, expires_at, fetched_at
                 FROM trust_bundles ORDER BY version DESC LIMIT 1",
                [],
                |r| {
                    let version: i64 = r.get(0)?;
                    Ok(StoredBundle {
                        version: u64::try_from(version).unwrap_or(0),
                        payload: r.get(1)?,
                        signature: r.get(2)?,
                        key_id: r.get(3)?,
                        issued_at: r.get(4)?,
                        expires_at: r.get(5)?,
                        fetched_at: r.get(6)?,
                    })
                },
            )
            .optional()?)
    }

    pub fn save_bundle(&self, b: &StoredBundle) -> Result<(), StoreError> {
        let version = i64::try_from(b.version)
            .map_err(|_| StoreError::Corrupt(format!("bundle version {} too large", b.version)))?;
        self.conn.execute(
            "INSERT INTO trust_bundles (version, payload, signature, key_id, issued_at, expires_at, fetched_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(version) DO UPDATE SET fetched_at = excluded.fetched_at",
            params![version, b.payload, b.signature, b.key_id, b.issued_at, b.expires_at, b.fetched_at],
        )?;
        Ok(())
    }
}
