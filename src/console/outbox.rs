//! Delivery of queued uploads and revocations. An item is a committed database
//! row before anything is sent and leaves the outbox only when the console
//! acknowledged it; the console is idempotent by fingerprint, so a retry after a
//! lost acknowledgement creates no duplicate.

use crate::error_code::{Coded, ErrorCode};
use serde::Serialize;

use crate::store::{AuditAction, AuditEntry, OutboxItem, OutboxKind, Store, StoreError};

use super::client::{ConsoleClient, ConsoleError};
use cardstation_protocol::messages::{AuditHead, RevokeRequest, SupersedeRequest, UploadRequest};

/// First retry after this long; doubled each time, up to `MAX_BACKOFF_SECS`.
pub const FIRST_BACKOFF_SECS: i64 = 5;
pub const MAX_BACKOFF_SECS: i64 = 3600;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot encode the request: {0}")]
    Encode(String),
}

/// What one sync did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct SyncReport {
    pub delivered: usize,
    pub rejected: usize,
    /// Items refused for a settings reason, queued again because the settings changed.
    #[serde(skip_serializing_if = "is_zero")]
    pub requeued: usize,
    /// Still waiting (not due yet, or the console was unreachable).
    pub pending: i64,
    /// Why delivery stopped, if it did.
    pub error: Option<String>,
    pub error_code: Option<ErrorCode>,
    /// The trust bundle could not be brought up to date after delivering.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle_error: Option<String>,
    /// The audit chain head could not be anchored at the console after delivering
    /// (e.g. the console holds a longer trail: rows were removed here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anchor_error: Option<String>,
}

impl Coded for OutboxError {
    fn code(&self) -> ErrorCode {
        match self {
            OutboxError::Store(e) => e.code(),
            OutboxError::Encode(_) => ErrorCode::Outbox,
        }
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

pub fn backoff_secs(attempts: i64) -> i64 {
    let shift = attempts.clamp(0, 20) as u32;
    FIRST_BACKOFF_SECS
        .saturating_mul(1i64 << shift)
        .min(MAX_BACKOFF_SECS)
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Queue an upload and its audit row ("upload queued", by the request's operator
/// and station) in one transaction.
pub fn enqueue_upload(
    store: &Store,
    fingerprint: &str,
    req: &UploadRequest,
) -> Result<i64, OutboxError> {
    let body = serde_json::to_string(req).map_err(|e| OutboxError::Encode(e.to_string()))?;
    let details = serde_json::json!({"label": req.label});
    Ok(store.outbox_enqueue(
        OutboxKind::Upload,
        fingerprint,
        &body,
        now(),
        &AuditEntry {
            operator: &req.operator,
            station_id: &req.station_id,
            action: AuditAction::Upload,
            subject: fingerprint,
            outcome: "queued",
            details: &details,
        },
    )?)
}

/// Queue a revocation and its audit row ("revoke queued") in one transaction.
pub fn enqueue_revoke(
    store: &Store,
    fingerprint: &str,
    reason: &str,
    operator: &str,
    station_id: &str,
) -> Result<i64, OutboxError> {
    let body = serde_json::to_string(&RevokeRequest {
        reason: reason.to_string(),
    })
    .map_err(|e| OutboxError::Encode(e.to_string()))?;
    let details = serde_json::json!({"reason": reason});
    Ok(store.outbox_enqueue(
        OutboxKind::Revoke,
        fingerprint,
        &body,
        now(),
        &AuditEntry {
            operator,
            station_id,
            action: AuditAction::Revoke,
            subject: fingerprint,
            outcome: "queued",
            details: &details,
        },
    )?)
}

/// Queue the last step of a renewal: `old` is superseded by `new` (queued after the
/// new certificate's upload, so the console has it when this is delivered).
pub fn enqueue_supersede(
    store: &Store,
    old: &str,
    new: &str,
    operator: &str,
    station_id: &str,
) -> Result<i64, OutboxError> {
    let body = serde_json::to_string(&SupersedeRequest {
        by: new.to_string(),
    })
    .map_err(|e| OutboxError::Encode(e.to_string()))?;
    let details = serde_json::json!({"by": new});
    Ok(store.outbox_enqueue(
        OutboxKind::Supersede,
        old,
        &body,
        now(),
        &AuditEntry {
            operator,
            station_id,
            action: AuditAction::Renew,
            subject: old,
            outcome: "retire queued",
            details: &details,
        },
    )?)
}

/// Who delivers: the station's name at the console and a fingerprint of its console
/// settings ([`cardstation_console_client::ConsoleConfig::fingerprint`]).
#[derive(Debug, Clone, Copy)]
pub struct Sender<'a> {
    pub station_id: &'a str,
    pub settings: &'a str,
}

/// The console refused the request because of who sent it (this station's
/// credential, or a name that is not the credential's), not because of the request:
/// worth sending again once the settings change.
fn refused_for_settings(e: &ConsoleError) -> bool {
    matches!(
        e,
        ConsoleError::Rejected {
            status: 401 | 403,
            ..
        }
    )
}

/// Send every due item, oldest first. Stops at the first transient failure (the
/// console is down: the rest would fail too) and schedules a retry with backoff.
/// Items once refused for a settings reason under other settings are queued again
/// first, so fixing `[station] id` or the credential is all it takes.
pub fn sync(
    store: &Store,
    client: &ConsoleClient,
    sender: Sender<'_>,
) -> Result<SyncReport, OutboxError> {
    let mut report = SyncReport {
        requeued: store.outbox_requeue_refused(Some(sender.settings), false, now())?,
        ..SyncReport::default()
    };
    for item in store.outbox_due(now())? {
        match deliver(client, &item, sender) {
            Ok(()) => {
                // Another process may have delivered and removed it meanwhile: the
                // console holds it once either way, and only this row is touched.
                if store.outbox_ack(&item)? {
                    report.delivered += 1;
                }
            }
            // The console is away, or our own TLS settings are wrong: keep the item,
            // retry later with backoff, say why, and stop (the rest would fail too).
            Err(e)
                if e.is_transient()
                    || matches!(e, ConsoleError::Tls { .. } | ConsoleError::Settings(_)) =>
            {
                let why = format!("{e}; queued items are kept and sent later");
                store.outbox_retry_later(&item, &why, now() + backoff_secs(item.attempts))?;
                report.error = Some(why);
                report.error_code = Some(e.code());
                break;
            }
            Err(e) if refused_for_settings(&e) => {
                let why = format!(
                    "{e}. Kept: it is sent again when the console settings change, or with `cardstation outbox retry`"
                );
                store.outbox_refuse_for_settings(&item, &why, sender.settings)?;
                report.rejected += 1;
                report.error = Some(why);
                report.error_code = Some(e.code());
            }
            Err(e) => {
                store.outbox_reject(&item, &e.to_string())?;
                report.rejected += 1;
                report.error = Some(e.to_string());
                report.error_code = Some(e.code());
            }
        }
    }
    // With each delivery the console learns where this station's audit trail stands,
    // so removing or rewriting rows afterwards is found (`audit verify`).
    if report.delivered > 0 {
        if let Err(e) = anchor_audit(store, client) {
            report.anchor_error = Some(e);
        }
    }
    report.pending = store.outbox_pending()?;
    Ok(report)
}

/// Send the audit chain head to the console.
pub fn anchor_audit(store: &Store, client: &ConsoleClient) -> Result<(), String> {
    let (rows, hash) = store.audit_head().map_err(|e| e.to_string())?;
    client
        .post_audit_head(&AuditHead { rows, hash })
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn deliver(
    client: &ConsoleClient,
    item: &OutboxItem,
    sender: Sender<'_>,
) -> Result<(), ConsoleError> {
    match item.kind {
        OutboxKind::Upload => {
            let mut req: UploadRequest = serde_json::from_str(&item.body)
                .map_err(|e| ConsoleError::Malformed(format!("queued upload {}: {e}", item.id)))?;
            // The station that delivers names itself: an item queued under a name
            // the credential does not carry goes out under the corrected one.
            req.station_id = sender.station_id.to_string();
            let rec = client.upload(&req)?;
            if rec.sha256 != item.fingerprint {
                return Err(ConsoleError::Malformed(format!(
                    "the console acknowledged {} for {}",
                    rec.sha256, item.fingerprint
                )));
            }
            Ok(())
        }
        OutboxKind::Revoke => {
            let req: RevokeRequest = serde_json::from_str(&item.body).map_err(|e| {
                ConsoleError::Malformed(format!("queued revocation {}: {e}", item.id))
            })?;
            client.revoke(&item.fingerprint, &req.reason).map(|_| ())
        }
        OutboxKind::Supersede => {
            let req: SupersedeRequest = serde_json::from_str(&item.body)
                .map_err(|e| ConsoleError::Malformed(format!("queued renewal {}: {e}", item.id)))?;
            client.supersede(&item.fingerprint, &req.by).map(|_| ())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_secs(0), 5);
        assert_eq!(backoff_secs(1), 10);
        assert_eq!(backoff_secs(3), 40);
        assert_eq!(backoff_secs(100), MAX_BACKOFF_SECS);
        assert_eq!(backoff_secs(-1), 5);
    }
}
