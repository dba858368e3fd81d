//! The console's records, each query written once over the [`Db`] seam:
//! certificates (upload, revocation, reinstatement, search), the change counter
//! the trust bundle is built from, and the hash-chained audit trail.
//! Identities, gateway events, the bundle chain and snapshots live beside this
//! file as further `impl Store` blocks.

use cardstation_protocol::messages::{CertificateRecord, CertificateStatus};

use super::db::{params, query_one, query_opt, Db, SqlRow, Tx, WriteLock};
use super::search::{self, Search};
use super::{
    audit_hash, Actor, AuditRow, BundleState, NewCertificate, Revoked, RevokedEntry, StoreError,
    Stored, Superseded,
};

/// The attested-since mark of the site's CA (see [`Store::attestation_required`]).
pub(super) const ATTESTED_SINCE_SQL: &str = "SELECT value FROM meta WHERE key = 'attested_since'";

/// The record columns, in the order [`record`] reads them.
pub(super) const COLUMNS: &str =
    "sha256, subject, not_after, card_serial, chuid_guid, slot, label, operator, \
     station_id, uploaded_at, status, reason, revoked_at, revoked_by, superseded_by, \
     superseded_at, attestation";

/// The console's storage: one implementation of every query, on SQLite or
/// PostgreSQL (crates/console/src/storage/{sqlite,postgres}.rs open the database).
pub struct Store {
    pub(super) db: Box<dyn Db>,
}

/// A record from the [`COLUMNS`] of a row.
pub(super) fn record(r: &SqlRow) -> Result<CertificateRecord, StoreError> {
    Ok(CertificateRecord {
        sha256: r.text(0)?,
        subject: r.text(1)?,
        not_after: r.int(2)?,
        card_serial: r.opt_int(3)?.and_then(|s| u32::try_from(s).ok()),
        chuid_guid: r.opt_text(4)?,
        slot: r.opt_text(5)?,
        label: r.opt_text(6)?,
        operator: r.text(7)?,
        station_id: r.text(8)?,
        uploaded_at: r.int(9)?,
        status: if r.text(10)? == "revoked" {
            CertificateStatus::Revoked
        } else {
            CertificateStatus::Active
        },
        revocation_reason: r.opt_text(11)?,
        revoked_at: r.opt_int(12)?,
        revoked_by: r.opt_text(13)?,
        superseded_by: r.opt_text(14)?,
        superseded_at: r.opt_int(15)?,
        attestation: r
            .opt_text(16)?
            .map(|json| serde_json::from_str(&json))
            .transpose()
            .map_err(|e| StoreError::Failed(format!("a stored attestation is unreadable: {e}")))?,
    })
}

/// The record's attestation as its column holds it.
pub(super) fn attestation_json(
    attestation: Option<&cardstation_protocol::messages::KeyAttestation>,
) -> Result<Option<String>, StoreError> {
    attestation
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Failed(e.to_string()))
}

pub(super) async fn get(
    tx: &mut dyn Tx,
    sha256: &str,
) -> Result<Option<CertificateRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM certificates WHERE sha256 = $1");
    query_opt(tx, &sql, params![sha256])
        .await?
        .as_ref()
        .map(record)
        .transpose()
}

/// The trust bundle's change counter: raised by one with every change to its lists.
pub(super) async fn bundle_version(tx: &mut dyn Tx) -> Result<u64, StoreError> {
    query_one(
        tx,
        "SELECT value FROM meta WHERE key = 'bundle_version'",
        &[],
    )
    .await?
    .unsigned(0)
}

async fn bump_version(tx: &mut dyn Tx) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE meta SET value = value + 1 WHERE key = 'bundle_version'",
        &[],
    )
    .await
    .map(|_| ())
}

/// Append a row to the audit trail, inside the caller's write transaction (writers
/// are serialized, so rows and their chain are written in one order).
pub(super) async fn audit(
    tx: &mut dyn Tx,
    at: i64,
    actor: &Actor,
    action: &str,
    subject: &str,
    detail: &str,
) -> Result<(), StoreError> {
    let last = query_opt(
        tx,
        "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
        &[],
    )
    .await?;
    let (seq, prev) = match last {
        Some(r) => (r.int(0)? + 1, r.text(1)?),
        None => (1, String::new()),
    };
    let actor = actor.to_string();
    let hash = audit_hash(&prev, seq, at, &actor, action, subject, detail);
    tx.execute(
        "INSERT INTO audit (seq, at, actor, action, subject, detail, prev, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        params![seq, at, actor, action, subject, detail, prev, hash],
    )
    .await
    .map(|_| ())
}

pub(super) fn audit_row(r: &SqlRow) -> Result<AuditRow, StoreError> {
    Ok(AuditRow {
        seq: r.int(0)?,
        at: r.int(1)?,
        actor: r.text(2)?,
        action: r.text(3)?,
        subject: r.text(4)?,
        detail: r.text(5)?,
        prev: r.text(6)?,
        hash: r.text(7)?,
    })
}

pub(super) async fn audit_rows(tx: &mut dyn Tx) -> Result<Vec<AuditRow>, StoreError> {
    tx.query(
        "SELECT seq, at, actor, action, subject, detail, prev, hash FROM audit ORDER BY seq",
        &[],
    )
    .await?
    .iter()
    .map(audit_row)
    .collect()
}

pub(super) fn record_terms(r: &CertificateRecord) -> Vec<String> {
    search::terms(
        &r.sha256,
        &r.subject,
        r.label.as_deref(),
        &r.station_id,
        r.card_serial,
        r.chuid_guid.as_deref(),
    )
}

/// The words a record is found by (kept with it, in the caller's transaction).
pub(super) async fn insert_terms(
    tx: &mut dyn Tx,
    terms: &[String],
    sha256: &str,
) -> Result<(), StoreError> {
    for t in terms {
        tx.execute(
            "INSERT INTO certificate_terms (term, sha256) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            params![t, sha256],
        )
        .await?;
    }
    Ok(())
}

/// Reinstate one revoked certificate and its key; false when it was not revoked.
async fn reinstate_one(tx: &mut dyn Tx, sha256: &str, now: i64) -> Result<bool, StoreError> {
    let Some(row) = query_opt(
        tx,
        "SELECT key_sha256 FROM certificates WHERE sha256 = $1 AND status = 'revoked'",
        params![sha256],
    )
    .await?
    else {
        return Ok(false);
    };
    tx.execute(
        "UPDATE certificates SET status = 'active', reason = NULL, revoked_at = NULL,
             revoked_by = NULL WHERE sha256 = $1",
        params![sha256],
    )
    .await?;
    if let Some(key) = row.opt_text(0)? {
        tx.execute(
            "DELETE FROM revoked_keys WHERE key_sha256 = $1",
            params![key],
        )
        .await?;
    }
    bump_version(tx).await?;
    audit(tx, now, &Actor::Administrator, "reinstate", sha256, "").await?;
    Ok(true)
}

impl Store {
    pub(super) fn new(db: Box<dyn Db>) -> Store {
        Store { db }
    }

    /// Store a certificate unless its fingerprint is known (then return the existing record).
    /// Since when the site's CA has issued only for attested keys (`since`: the notBefore
    /// of the first such certificate), kept while `required` holds and forgotten when it
    /// does not; the bundle carries it (a change cuts a version). Returns the mark, 0 for
    /// none.
    pub async fn attestation_required(
        &self,
        required: bool,
        since: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.db.write(WriteLock::Records).await?;
        let held = query_opt(&mut *tx, ATTESTED_SINCE_SQL, &[])
            .await?
            .map(|r| r.int(0))
            .transpose()?;
        let mark = match (required, held) {
            (true, Some(t)) => t,
            (false, None) => 0,
            (true, None) => {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('attested_since', $1)",
                    params![since],
                )
                .await?;
                bump_version(&mut *tx).await?;
                since
            }
            (false, Some(_)) => {
                tx.execute("DELETE FROM meta WHERE key = 'attested_since'", &[])
                    .await?;
                bump_version(&mut *tx).await?;
                0
            }
        };
        tx.commit().await?;
        Ok(mark)
    }

    pub async fn upload(&self, c: NewCertificate) -> Result<Stored, StoreError> {
        let mut tx = self.db.write(WriteLock::Records).await?;
        if let Some(rec) = get(&mut *tx, &c.sha256).await? {
            return Ok(Stored::Existing(rec));
        }
        if let Some(r) = query_opt(
            &mut *tx,
            "SELECT revoked_at FROM revoked_keys WHERE key_sha256 = $1",
            params![&c.key_sha256],
        )
        .await?
        {
            return Ok(Stored::KeyRevoked {
                revoked_at: r.int(0)?,
            });
        }
        tx.execute(
            "INSERT INTO certificates (sha256, pem, subject, not_after, card_serial, chuid_guid,
                 slot, label, operator, station_id, uploaded_at, key_sha256, attestation,
                 attestation_evidence)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            params![
                &c.sha256,
                &c.pem,
                &c.subject,
                c.not_after,
                c.card_serial.map(i64::from),
                c.chuid_guid.clone(),
                c.slot.clone(),
                c.label.clone(),
                &c.operator,
                &c.station_id,
                c.uploaded_at,
                &c.key_sha256,
                attestation_json(c.attestation.as_ref())?,
                c.attestation_evidence.clone(),
            ],
        )
        .await?;
        let terms = search::terms(
            &c.sha256,
            &c.subject,
            c.label.as_deref(),
            &c.station_id,
            c.card_serial,
            c.chuid_guid.as_deref(),
        );
        insert_terms(&mut *tx, &terms, &c.sha256).await?;
        bump_version(&mut *tx).await?;
        let uploader = Actor::station(&c.station_id);
        audit(
            &mut *tx,
            c.uploaded_at,
            &uploader,
            "upload",
            &c.sha256,
            &c.subject,
        )
        .await?;
        let rec = get(&mut *tx, &c.sha256)
            .await?
            .ok_or_else(|| StoreError::Failed("the stored record vanished".into()))?;
        tx.commit().await?;
        Ok(Stored::Created(rec))
    }

    /// When the key with this SubjectPublicKeyInfo SHA-256 was revoked, if it was.
    pub async fn key_revoked_at(&self, key_sha256: &str) -> Result<Option<i64>, StoreError> {
        let mut tx = self.db.read().await?;
        let row = query_opt(
            &mut *tx,
            "SELECT revoked_at FROM revoked_keys WHERE key_sha256 = $1",
            params![key_sha256],
        )
        .await?;
        tx.commit().await?;
        row.map(|r| r.int(0)).transpose()
    }

    /// Whether an active certificate holds the key with this SubjectPublicKeyInfo SHA-256.
    pub async fn key_has_active_certificate(&self, key_sha256: &str) -> Result<bool, StoreError> {
        let mut tx = self.db.read().await?;
        let row = query_opt(
            &mut *tx,
            "SELECT sha256 FROM certificates WHERE key_sha256 = $1 AND status = 'active' LIMIT 1",
            params![key_sha256],
        )
        .await?;
        tx.commit().await?;
        Ok(row.is_some())
    }

    pub async fn get(&self, sha256: &str) -> Result<Option<CertificateRecord>, StoreError> {
        let mut tx = self.db.read().await?;
        let rec = get(&mut *tx, sha256).await?;
        tx.commit().await?;
        Ok(rec)
    }

    /// Revoke (the certificate and its key) for `actor`; revoking again keeps the first
    /// reason and time. An actor past `limit_per_hour` revocations is refused.
    pub async fn revoke(
        &self,
        sha256: &str,
        reason: &str,
        now: i64,
        actor: &Actor,
        limit_per_hour: Option<u32>,
    ) -> Result<Revoked, StoreError> {
        let mut tx = self.db.write(WriteLock::Records).await?;
        let Some(rec) = get(&mut *tx, sha256).await? else {
            return Ok(Revoked::NotFound);
        };
        if rec.status == CertificateStatus::Revoked {
            return Ok(Revoked::Done(rec));
        }
        let by = actor.to_string();
        if let Some(limit) = limit_per_hour {
            let recent = query_one(
                &mut *tx,
                "SELECT COUNT(*) FROM audit WHERE actor = $1 AND action = 'revoke' AND at > $2",
                params![&by, now - 3600],
            )
            .await?
            .int(0)?;
            if recent >= i64::from(limit) {
                return Ok(Revoked::RateLimited { limit });
            }
        }
        tx.execute(
            "UPDATE certificates SET status = 'revoked', reason = $2, revoked_at = $3,
                 revoked_by = $4 WHERE sha256 = $1 AND status = 'active'",
            params![sha256, reason, now, &by],
        )
        .await?;
        tx.execute(
            "INSERT INTO revoked_keys (key_sha256, cert_sha256, revoked_at, revoked_by)
             SELECT key_sha256, sha256, $2, $3 FROM certificates
             WHERE sha256 = $1 AND key_sha256 IS NOT NULL
             ON CONFLICT DO NOTHING",
            params![sha256, now, &by],
        )
        .await?;
        bump_version(&mut *tx).await?;
        audit(&mut *tx, now, actor, "revoke", sha256, reason).await?;
        let rec = get(&mut *tx, sha256)
            .await?
            .ok_or_else(|| StoreError::Failed("the revoked record vanished".into()))?;
        tx.commit().await?;
        Ok(Revoked::Done(rec))
    }

    /// The card holding `old` was renewed with `new`: mark `old` superseded. Nothing is
    /// revoked and the bundle does not change (both stay valid until their own ends).
    pub async fn supersede(
        &self,
        old: &str,
        new: &str,
        now: i64,
        actor: &Actor,
    ) -> Result<Superseded, StoreError> {
        let mut tx = self.db.write(WriteLock::Records).await?;
        let Some(old_rec) = get(&mut *tx, old).await? else {
            return Ok(Superseded::NotFound(old.to_string()));
        };
        let Some(new_rec) = get(&mut *tx, new).await? else {
            return Ok(Superseded::NotFound(new.to_string()));
        };
        match &old_rec.superseded_by {
            Some(by) if by == new => return Ok(Superseded::Done(Box::new(old_rec))),
            Some(by) => return Ok(Superseded::Already(by.clone())),
            None => {}
        }
        for r in [&old_rec, &new_rec] {
            if r.status == CertificateStatus::Revoked {
                return Ok(Superseded::Revoked(r.sha256.clone()));
            }
        }
        if new_rec.not_after < old_rec.not_after {
            return Ok(Superseded::NotLater);
        }
        let keys = query_one(
            &mut *tx,
            "SELECT COUNT(DISTINCT key_sha256) FROM certificates WHERE sha256 IN ($1, $2)
                 AND key_sha256 IS NOT NULL",
            params![old, new],
        )
        .await?
        .int(0)?;
        let same_card =
            keys == 1 || (old_rec.chuid_guid.is_some() && old_rec.chuid_guid == new_rec.chuid_guid);
        if !same_card {
            return Ok(Superseded::OtherCard);
        }
        tx.execute(
            "UPDATE certificates SET superseded_by = $2, superseded_at = $3 WHERE sha256 = $1",
            params![old, new, now],
        )
        .await?;
        audit(&mut *tx, now, actor, "supersede", old, new).await?;
        let rec = get(&mut *tx, old)
            .await?
            .ok_or_else(|| StoreError::Failed("the superseded record vanished".into()))?;
        tx.commit().await?;
        Ok(Superseded::Done(Box::new(rec)))
    }

    /// Undo a revocation (certificate and key): the administrator's alone.
    pub async fn reinstate(
        &self,
        sha256: &str,
        now: i64,
    ) -> Result<Option<CertificateRecord>, StoreError> {
        let mut tx = self.db.write(WriteLock::Records).await?;
        reinstate_one(&mut *tx, sha256, now).await?;
        let rec = get(&mut *tx, sha256).await?;
        tx.commit().await?;
        Ok(rec)
    }

    /// Undo every revocation `by` made at or after `since`; the fingerprints.
    pub async fn reinstate_by(
        &self,
        by: &Actor,
        since: i64,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.db.write(WriteLock::Records).await?;
        let fps = tx
            .query(
                "SELECT sha256 FROM certificates WHERE status = 'revoked'
                 AND revoked_by = $1 AND revoked_at >= $2 ORDER BY sha256",
                params![by.to_string(), since],
            )
            .await?
            .iter()
            .map(|r| r.text(0))
            .collect::<Result<Vec<_>, _>>()?;
        for fp in &fps {
            reinstate_one(&mut *tx, fp, now).await?;
        }
        tx.commit().await?;
        Ok(fps)
    }

    pub async fn audit(&self) -> Result<Vec<AuditRow>, StoreError> {
        let mut tx = self.db.read().await?;
        let rows = audit_rows(&mut *tx).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// The current bundle change counter alone (cheap: decides whether a cached bundle is current).
    pub async fn bundle_version(&self) -> Result<u64, StoreError> {
        let mut tx = self.db.read().await?;
        let v = bundle_version(&mut *tx).await?;
        tx.commit().await?;
        Ok(v)
    }

    /// The bundle content, read in one snapshot so it matches its version.
    pub async fn bundle_state(&self) -> Result<BundleState, StoreError> {
        let mut tx = self.db.read().await?;
        let version = bundle_version(&mut *tx).await?;
        let allowed = tx
            .query(
                "SELECT sha256 FROM certificates WHERE status = 'active'",
                &[],
            )
            .await?
            .iter()
            .map(|r| r.text(0))
            .collect::<Result<Vec<_>, _>>()?;
        let attested = tx
            .query(
                "SELECT sha256 FROM certificates
                 WHERE status = 'active' AND attestation IS NOT NULL",
                &[],
            )
            .await?
            .iter()
            .map(|r| r.text(0))
            .collect::<Result<Vec<_>, _>>()?;
        let revoked = tx
            .query(
                "SELECT sha256, reason, revoked_at, key_sha256 FROM certificates
                 WHERE status = 'revoked'",
                &[],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(RevokedEntry {
                    sha256: r.text(0)?,
                    reason: r.opt_text(1)?.unwrap_or_default(),
                    revoked_at: r.opt_int(2)?.unwrap_or_default(),
                    key_sha256: r.opt_text(3)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let revoked_keys = tx
            .query("SELECT key_sha256 FROM revoked_keys", &[])
            .await?
            .iter()
            .map(|r| r.text(0))
            .collect::<Result<Vec<_>, _>>()?;
        let newest_recorded_at = query_one(
            &mut *tx,
            "SELECT COALESCE(MAX(uploaded_at), 0) FROM certificates",
            &[],
        )
        .await?
        .int(0)?;
        let attested_since = query_opt(&mut *tx, ATTESTED_SINCE_SQL, &[])
            .await?
            .map(|r| r.int(0))
            .transpose()?
            .unwrap_or(0);
        tx.commit().await?;
        Ok(BundleState {
            version,
            allowed,
            revoked,
            revoked_keys,
            attested,
            attested_since,
            newest_recorded_at,
        })
    }

    pub async fn count(&self) -> Result<i64, StoreError> {
        let mut tx = self.db.read().await?;
        let n = query_one(&mut *tx, "SELECT COUNT(*) FROM certificates", &[])
            .await?
            .int(0)?;
        tx.commit().await?;
        Ok(n)
    }

    /// Certificates matching `search`, newest first, at most `search.limit` of them.
    pub async fn search(&self, s: &Search) -> Result<Vec<CertificateRecord>, StoreError> {
        // One snapshot for the counts and the page.
        let mut tx = self.db.read().await?;
        let mut counts = Vec::new();
        for w in &s.words {
            let (sql, values) = search::probe(w);
            counts.push(query_one(&mut *tx, &sql, &values).await?.int(0)?);
        }
        let (sql, values) = search::query(s, COLUMNS, search::driver(&counts));
        let rows = tx
            .query_planned(&sql, &values)
            .await?
            .iter()
            .map(record)
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Fill in what records stored by older consoles lack: the key hash (so a revoked
    /// key stays revoked) and the search terms. Runs at every open; cheap once done.
    pub(super) async fn backfill(&self) -> Result<(), StoreError> {
        let mut tx = self.db.write(WriteLock::Records).await?;
        let rows = tx
            .query(
                "SELECT sha256, pem FROM certificates WHERE key_sha256 IS NULL",
                &[],
            )
            .await?;
        for r in rows {
            if let Some(key) = super::key_sha256_of_pem(&r.text(1)?) {
                tx.execute(
                    "UPDATE certificates SET key_sha256 = $2 WHERE sha256 = $1",
                    params![r.text(0)?, key],
                )
                .await?;
            }
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM certificates c WHERE NOT EXISTS
                 (SELECT 1 FROM certificate_terms t WHERE t.sha256 = c.sha256)"
        );
        let missing = tx.query(&sql, &[]).await?;
        for r in &missing {
            let rec = record(r)?;
            insert_terms(&mut *tx, &record_terms(&rec), &rec.sha256).await?;
        }
        tx.commit().await
    }
}
