//! What the station last learned of the site's rules from its console, kept so that a
//! station that cannot reach the console still checks a card against them, and so that
//! a queue of enrollments asks the console once rather than once a card.

use rusqlite::OptionalExtension;

use super::{Store, StoreError};

impl Store {
    /// Whether the site's console requires attested keys, as last learned, and when
    /// (unix seconds); `None` before the console was first asked.
    pub fn site_attestation_rule(&self) -> Result<Option<(bool, i64)>, StoreError> {
        let value = |key: &str| -> Result<Option<i64>, StoreError> {
            Ok(self
                .conn
                .query_row(
                    "SELECT value FROM station_meta WHERE key = ?1",
                    [key],
                    |r| r.get(0),
                )
                .optional()?)
        };
        match (
            value("site_attestation_required")?,
            value("site_rules_learned_at")?,
        ) {
            (Some(required), Some(at)) => Ok(Some((required != 0, at))),
            _ => Ok(None),
        }
    }

    /// Keep the rule the console just published.
    pub fn set_site_attestation_rule(&self, required: bool, at: i64) -> Result<(), StoreError> {
        let tx = self.write_tx()?;
        for (key, value) in [
            ("site_attestation_required", i64::from(required)),
            ("site_rules_learned_at", at),
        ] {
            tx.execute(
                "INSERT INTO station_meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                rusqlite::params![key, value],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_rule_is_kept_and_replaced() {
        let s = Store::in_memory().unwrap();
        assert_eq!(s.site_attestation_rule().unwrap(), None);
        s.set_site_attestation_rule(true, 100).unwrap();
        assert_eq!(s.site_attestation_rule().unwrap(), Some((true, 100)));
        s.set_site_attestation_rule(false, 200).unwrap();
        assert_eq!(s.site_attestation_rule().unwrap(), Some((false, 200)));
    }
}
