//! Card replacement (lost, stolen, damaged, expiring) and renewal onto the same
//! card: the old certificate is revoked on the console (queued, so an offline
//! station loses nothing), a new card is enrolled for the same holder or device,
//! and old and new are linked in the station database and the audit trail.

use crate::app::failure::{Coded, ErrorCode};
use crate::store::AuditAction;
use std::ops::ControlFlow;

use serde::Serialize;

use crate::console::outbox;
use cardstation_card::Transport;
use cardstation_piv::PivSession;
use cardstation_pki::CertificateInfo;
use cardstation_protocol::messages::RevocationReason;

use super::enroll::{enroll, EnrollContext, EnrollError, EnrollOutcome, EnrollRequest, EnrollStep};

#[derive(Debug, thiserror::Error)]
pub enum ReplaceError {
    #[error("this station has no record of certificate {0}. Give the subject for the new card explicitly")]
    UnknownOld(String),
    #[error(transparent)]
    Enroll(#[from] EnrollError),
    #[error("{0}")]
    Queue(String),
}

impl Coded for ReplaceError {
    fn code(&self) -> ErrorCode {
        match self {
            ReplaceError::UnknownOld(_) => ErrorCode::UnknownCertificate,
            ReplaceError::Enroll(e) => e.code(),
            ReplaceError::Queue(_) => ErrorCode::Outbox,
        }
    }
}

pub struct ReplaceRequest {
    pub old_fingerprint: String,
    pub reason: RevocationReason,
    /// Slot, validity, PIN for the new card; the subject is the old one unless
    /// `subject_override` is given.
    pub enroll: EnrollRequest,
    pub subject_override: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplaceOutcome {
    pub old_fingerprint: String,
    pub new_fingerprint: String,
    pub reason: RevocationReason,
    /// The new card is the old card, re-issued.
    pub renewal: bool,
    pub enrollment: EnrollOutcome,
}

pub fn replace<T: Transport>(
    mut transport: T,
    req: &ReplaceRequest,
    ctx: &EnrollContext<'_>,
    on_step: &mut dyn FnMut(EnrollStep) -> ControlFlow<()>,
) -> Result<ReplaceOutcome, ReplaceError> {
    let old = req
        .old_fingerprint
        .trim()
        .to_ascii_lowercase()
        .replace(':', "");
    let record = ctx
        .store
        .enrollment_by_fingerprint(&old)
        .map_err(EnrollError::from)?;
    let subject = match (&req.subject_override, &record) {
        (Some(s), _) => s.clone(),
        (None, Some(r)) => r.subject.clone(),
        (None, None) => return Err(ReplaceError::UnknownOld(old)),
    };
    let slot = record.as_ref().map(|r| r.slot).unwrap_or(req.enroll.slot);

    // Renewal: the card in the reader still carries the old certificate.
    let renewal = {
        let mut s = PivSession::open(&mut transport).map_err(EnrollError::from)?;
        s.read_certificate(slot)
            .map_err(EnrollError::from)?
            .and_then(|o| CertificateInfo::parse(&o.der).ok())
            .is_some_and(|i| i.sha256 == old)
    };

    // The old certificate is out of service from now on: queue its revocation first.
    outbox::enqueue_revoke(
        ctx.store,
        &old,
        req.reason.as_str(),
        ctx.operator,
        ctx.station_id,
    )
    .map_err(|e| ReplaceError::Queue(e.to_string()))?;

    let enroll_req = EnrollRequest {
        slot,
        subject_template: subject,
        force: req.enroll.force || renewal,
        upload: Some(req.enroll.upload.clone().unwrap_or_default()),
        ..req.enroll.clone()
    };
    let new = enroll(transport, &enroll_req, ctx, on_step)?;

    // The successor's upload was queued with its enrollment record; link the two.
    ctx.store
        .record_replacement(
            &old,
            &new.fingerprint,
            req.reason.as_str(),
            new.enrollment_id,
            ctx.operator,
        )
        .map_err(EnrollError::from)?;
    ctx.store
        .audit(
            ctx.operator,
            ctx.station_id,
            AuditAction::Replace,
            &old,
            "replaced",
            &serde_json::json!({
                "old": old, "new": new.fingerprint, "reason": req.reason,
                "renewal": renewal, "reader": new.reader, "enrollment": new.enrollment_id,
            }),
        )
        .map_err(EnrollError::from)?;
    Ok(ReplaceOutcome {
        old_fingerprint: old,
        new_fingerprint: new.fingerprint.clone(),
        reason: req.reason,
        renewal,
        enrollment: new,
    })
}
