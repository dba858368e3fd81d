//! What identities report: gateways' decisions (each kept once by gateway and id)
//! and stations' audit chain heads (anchors).

use cardstation_protocol::messages::{
    AuditAnchor, AuditHead, EventsAccepted, GatewayEvent, RecordedEvent,
};

use super::db::{int_of, params, query_opt, SqlRow, Tx, Value, WriteLock};
use super::records::audit;
use super::{Actor, AnchorSet, EventQuery, Store, StoreError};

pub(super) const EVENT_COLUMNS: &str =
    "gateway, id, at, received_at, reader, decision, fingerprint, \
     subject, reasons, bundle_version";

pub(super) const INSERT_EVENT: &str = "INSERT INTO gateway_events (gateway, id, at, received_at, \
     reader, decision, fingerprint, subject, reasons, bundle_version)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (gateway, id) DO NOTHING";

/// The values of [`INSERT_EVENT`].
pub(super) fn event_values(
    gateway: &str,
    e: &GatewayEvent,
    received_at: i64,
) -> Result<Vec<Value>, StoreError> {
    Ok(vec![
        gateway.into(),
        e.id.as_str().into(),
        e.at.into(),
        received_at.into(),
        e.reader.as_str().into(),
        e.decision.as_str().into(),
        e.fingerprint.clone().into(),
        e.subject.clone().into(),
        super::join_reasons(&e.reasons).into(),
        e.bundle_version.map(int_of).transpose()?.into(),
    ])
}

pub(super) fn event_row(r: &SqlRow) -> Result<RecordedEvent, StoreError> {
    Ok(RecordedEvent {
        gateway: r.text(0)?,
        received_at: r.int(3)?,
        event: GatewayEvent {
            id: r.text(1)?,
            at: r.int(2)?,
            reader: r.text(4)?,
            decision: super::decision_of(&r.text(5)?),
            fingerprint: r.opt_text(6)?,
            subject: r.opt_text(7)?,
            reasons: super::split_reasons(&r.text(8)?),
            bundle_version: r.opt_int(9)?.and_then(|v| u64::try_from(v).ok()),
        },
    })
}

pub(super) fn anchor_of(r: &SqlRow, first: usize) -> Result<AuditAnchor, StoreError> {
    Ok(AuditAnchor {
        rows: r.unsigned(first)?,
        hash: r.text(first + 1)?,
        received_at: r.int(first + 2)?,
    })
}

async fn anchor(tx: &mut dyn Tx, station: &str) -> Result<Option<AuditAnchor>, StoreError> {
    query_opt(
        tx,
        "SELECT row_count, hash, received_at FROM audit_anchors WHERE station = $1",
        params![station],
    )
    .await?
    .map(|r| anchor_of(&r, 0))
    .transpose()
}

impl Store {
    /// Keep each event of `gateway` once by its id, in one transaction (events
    /// already held are counted, never stored again or changed).
    pub async fn add_events(
        &self,
        gateway: &str,
        events: &[GatewayEvent],
        received_at: i64,
    ) -> Result<EventsAccepted, StoreError> {
        let mut tx = self.db.write(WriteLock::RowsOnly).await?;
        let mut accepted = 0;
        for e in events {
            let values = event_values(gateway, e, received_at)?;
            accepted += tx.execute(INSERT_EVENT, &values).await?;
        }
        tx.commit().await?;
        let accepted = usize::try_from(accepted).unwrap_or(events.len());
        Ok(EventsAccepted {
            accepted,
            duplicates: events.len().saturating_sub(accepted),
        })
    }

    /// Events matching `query`, newest first (by the gateway's time), at most `query.limit`.
    pub async fn events(&self, query: &EventQuery) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM gateway_events WHERE TRUE");
        let mut args: Vec<Value> = Vec::new();
        let mut and = |column: &str, op: &str, v: Value, sql: &mut String| {
            args.push(v);
            sql.push_str(&format!(" AND {column} {op} ${}", args.len()));
        };
        if let Some(fp) = &query.fingerprint {
            and("fingerprint", "=", fp.into(), &mut sql);
        }
        if let Some(gw) = &query.gateway {
            and("gateway", "=", gw.into(), &mut sql);
        }
        if let Some(since) = query.since {
            and("at", ">=", since.into(), &mut sql);
        }
        args.push(i64::from(query.limit).into());
        sql.push_str(&format!(
            " ORDER BY at DESC, received_at DESC, gateway, id LIMIT ${}",
            args.len()
        ));
        let mut tx = self.db.read().await?;
        let rows = tx.query(&sql, &args).await?;
        tx.commit().await?;
        rows.iter().map(event_row).collect()
    }

    /// Keep `head` as `station`'s audit anchor unless it would lose what is anchored.
    pub async fn set_audit_anchor(
        &self,
        station: &str,
        head: &AuditHead,
        now: i64,
    ) -> Result<AnchorSet, StoreError> {
        let mut tx = self.db.write(WriteLock::Records).await?;
        if let Some(held) = anchor(&mut *tx, station).await? {
            if head.rows < held.rows {
                return Ok(AnchorSet::Shorter(held));
            }
            if head.rows == held.rows {
                return Ok(if head.hash == held.hash {
                    AnchorSet::Stored(held)
                } else {
                    AnchorSet::Different(held)
                });
            }
        }
        tx.execute(
            "INSERT INTO audit_anchors (station, row_count, hash, received_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (station) DO UPDATE SET row_count = excluded.row_count,
                 hash = excluded.hash, received_at = excluded.received_at",
            &[
                station.into(),
                int_of(head.rows)?,
                head.hash.as_str().into(),
                now.into(),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(AnchorSet::Stored(AuditAnchor {
            rows: head.rows,
            hash: head.hash.clone(),
            received_at: now,
        }))
    }

    pub async fn audit_anchor(&self, station: &str) -> Result<Option<AuditAnchor>, StoreError> {
        let mut tx = self.db.read().await?;
        let a = anchor(&mut *tx, station).await?;
        tx.commit().await?;
        Ok(a)
    }

    /// Forget `station`'s anchor (the administrator, after restoring its database from a
    /// backup): its next delivery anchors afresh. Whether there was one; audited.
    pub async fn reset_audit_anchor(&self, station: &str, now: i64) -> Result<bool, StoreError> {
        let mut tx = self.db.write(WriteLock::Records).await?;
        let Some(held) = anchor(&mut *tx, station).await? else {
            return Ok(false);
        };
        tx.execute(
            "DELETE FROM audit_anchors WHERE station = $1",
            params![station],
        )
        .await?;
        let detail = format!("{} rows, {}", held.rows, held.hash);
        audit(
            &mut *tx,
            now,
            &Actor::Administrator,
            "anchor-reset",
            station,
            &detail,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
