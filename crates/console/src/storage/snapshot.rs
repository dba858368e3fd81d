//! Everything a console database holds, read in one snapshot and written into an
//! empty database in one transaction: what `migrate` moves between backends.

use super::bundle_rows;
use super::db::{int_of, params, query_one, query_opt, WriteLock};
use super::identities::{identity_row, IDENTITY_COLUMNS};
use super::records::{
    attestation_json, audit_rows, bundle_version, insert_terms, record, record_terms,
    ATTESTED_SINCE_SQL, COLUMNS,
};
use super::reports::{anchor_of, event_row, event_values, EVENT_COLUMNS, INSERT_EVENT};
use super::{status_text, FullRecord, RevokedKey, Snapshot, StationAnchor, Store, StoreError};

impl Store {
    /// Everything, read in one snapshot.
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let mut tx = self.db.read().await?;
        let bundle_version = bundle_version(&mut *tx).await?;
        let sql = format!(
            "SELECT {COLUMNS}, pem, key_sha256, attestation_evidence FROM certificates ORDER BY sha256"
        );
        let records = tx
            .query(&sql, &[])
            .await?
            .iter()
            .map(|r| {
                Ok(FullRecord {
                    record: record(r)?,
                    pem: r.text(17)?,
                    key_sha256: r.opt_text(18)?,
                    revoked_by: r.opt_text(13)?,
                    attestation_evidence: r.opt_text(19)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let sql = format!("SELECT {IDENTITY_COLUMNS} FROM identities ORDER BY cert_sha256");
        let identities = tx
            .query(&sql, &[])
            .await?
            .iter()
            .map(identity_row)
            .collect::<Result<Vec<_>, _>>()?;
        let revoked_keys = tx
            .query(
                "SELECT key_sha256, cert_sha256, revoked_at, revoked_by FROM revoked_keys
                 ORDER BY key_sha256",
                &[],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(RevokedKey {
                    key_sha256: r.text(0)?,
                    cert_sha256: r.text(1)?,
                    revoked_at: r.int(2)?,
                    revoked_by: r.text(3)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let audit = audit_rows(&mut *tx).await?;
        let (bundle_chain, bundle_published) = bundle_rows::all(&mut *tx).await?;
        let sql = format!("SELECT {EVENT_COLUMNS} FROM gateway_events ORDER BY gateway, id");
        let events = tx
            .query(&sql, &[])
            .await?
            .iter()
            .map(event_row)
            .collect::<Result<Vec<_>, _>>()?;
        let anchors = tx
            .query(
                "SELECT station, row_count, hash, received_at FROM audit_anchors ORDER BY station",
                &[],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(StationAnchor {
                    station: r.text(0)?,
                    anchor: anchor_of(r, 1)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let attested_since = query_opt(&mut *tx, ATTESTED_SINCE_SQL, &[])
            .await?
            .map(|r| r.int(0))
            .transpose()?;
        tx.commit().await?;
        Ok(Snapshot {
            attested_since,
            bundle_version,
            records,
            identities,
            revoked_keys,
            audit,
            bundle_chain,
            bundle_published,
            events,
            anchors,
        })
    }

    /// Fill an empty database with `snapshot` (everything and the bundle version) in one transaction.
    pub async fn import(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let mut tx = self.db.write(WriteLock::Records).await?;
        let n = query_one(&mut *tx, "SELECT COUNT(*) FROM certificates", &[])
            .await?
            .int(0)?;
        if n > 0 {
            return Err(StoreError::NotEmpty(n));
        }
        let held = query_one(
            &mut *tx,
            "SELECT (SELECT COUNT(*) FROM identities) + (SELECT COUNT(*) FROM audit)
                 + (SELECT COUNT(*) FROM gateway_events) + (SELECT COUNT(*) FROM audit_anchors)
                 + (SELECT COUNT(*) FROM bundle_versions)",
            &[],
        )
        .await?
        .int(0)?;
        if held > 0 {
            return Err(StoreError::NotEmpty(n));
        }
        for FullRecord {
            pem,
            record: r,
            key_sha256,
            revoked_by,
            attestation_evidence,
        } in &snapshot.records
        {
            tx.execute(
                "INSERT INTO certificates (sha256, pem, subject, not_after, card_serial,
                     chuid_guid, slot, label, operator, station_id, uploaded_at, status,
                     reason, revoked_at, key_sha256, revoked_by, superseded_by, superseded_at,
                     attestation, attestation_evidence)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                     $17, $18, $19, $20)",
                params![
                    &r.sha256,
                    pem,
                    &r.subject,
                    r.not_after,
                    r.card_serial.map(i64::from),
                    r.chuid_guid.clone(),
                    r.slot.clone(),
                    r.label.clone(),
                    &r.operator,
                    &r.station_id,
                    r.uploaded_at,
                    status_text(r.status),
                    r.revocation_reason.clone(),
                    r.revoked_at,
                    key_sha256.clone(),
                    revoked_by.clone(),
                    r.superseded_by.clone(),
                    r.superseded_at,
                    attestation_json(r.attestation.as_ref())?,
                    attestation_evidence.clone(),
                ],
            )
            .await?;
            insert_terms(&mut *tx, &record_terms(r), &r.sha256).await?;
        }
        let sql =
            format!("INSERT INTO identities ({IDENTITY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)");
        for id in &snapshot.identities {
            tx.execute(
                &sql,
                params![
                    &id.cert_sha256,
                    id.role.as_str(),
                    &id.name,
                    id.issued_at,
                    id.not_after,
                    id.revoked_at,
                ],
            )
            .await?;
        }
        for k in &snapshot.revoked_keys {
            tx.execute(
                "INSERT INTO revoked_keys (key_sha256, cert_sha256, revoked_at, revoked_by)
                 VALUES ($1, $2, $3, $4)",
                params![&k.key_sha256, &k.cert_sha256, k.revoked_at, &k.revoked_by],
            )
            .await?;
        }
        for a in &snapshot.audit {
            tx.execute(
                "INSERT INTO audit (seq, at, actor, action, subject, detail, prev, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                params![a.seq, a.at, &a.actor, &a.action, &a.subject, &a.detail, &a.prev, &a.hash],
            )
            .await?;
        }
        bundle_rows::import(
            &mut *tx,
            &snapshot.bundle_chain,
            snapshot.bundle_published.as_deref(),
        )
        .await?;
        for r in &snapshot.events {
            let values = event_values(&r.gateway, &r.event, r.received_at)?;
            tx.execute(INSERT_EVENT, &values).await?;
        }
        for a in &snapshot.anchors {
            tx.execute(
                "INSERT INTO audit_anchors (station, row_count, hash, received_at)
                 VALUES ($1, $2, $3, $4)",
                &[
                    a.station.as_str().into(),
                    int_of(a.anchor.rows)?,
                    a.anchor.hash.as_str().into(),
                    a.anchor.received_at.into(),
                ],
            )
            .await?;
        }
        tx.execute(
            "UPDATE meta SET value = $1 WHERE key = 'bundle_version'",
            &[int_of(snapshot.bundle_version)?],
        )
        .await?;
        if let Some(since) = snapshot.attested_since {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('attested_since', $1)",
                &[since.into()],
            )
            .await?;
        }
        tx.commit().await?;
        // Statistics for what was just moved in, so searches are planned for it at
        // once rather than after autovacuum's next visit.
        self.db.analyze().await
    }
}
