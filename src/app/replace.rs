//! Card replacement (lost, stolen, damaged, expiring) and renewal onto the same
//! card: the old certificate is revoked on the console (queued, so an offline
//! station loses nothing), a new card is enrolled for the same holder or device,
//! and old and new are linked in the station database and the audit trail.

use crate::app::failure::{Coded, ErrorCode};
use crate::store::AuditAction;
use std::ops::ControlFlow;

use serde::Serialize;

use crate::console::{outbox, ConsoleClient, ConsoleError};
use cardstation_card::Transport;
use cardstation_piv::PivSession;
use cardstation_pki::CertificateInfo;
use cardstation_protocol::messages::{
    is_fingerprint, CertificateRecord, CertificateStatus, RevocationReason, SearchQuery,
};

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
    /// `subject_override` is given, and so is the label unless `enroll.label` is.
    pub enroll: EnrollRequest,
    pub subject_override: Option<String>,
    /// The console's record of the old certificate (found by a search): subject,
    /// label and slot for a card this station did not enrol.
    pub old_record: Option<CertificateRecord>,
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

/// What the operator named as the card to replace.
#[derive(Debug)]
pub enum OldCardMatch {
    /// A fingerprint, with the console's record when it could be read.
    Fingerprint(String, Option<Box<CertificateRecord>>),
    /// A search that matched exactly one active card.
    One(Box<CertificateRecord>),
    /// A search that matched several active cards (at most a page of them).
    Several(Vec<CertificateRecord>),
    /// A search that matched no active card.
    None,
}

/// Most matches looked at when a search must name exactly one card.
const MATCHES_SHOWN: u32 = 20;

/// Resolve `text`: a fingerprint (colons and case as people paste them) or words
/// that must match exactly one active card on the console. A fingerprint works
/// without the console (the station's own record, or an explicit subject, then
/// gives the subject); a search needs it.
pub fn find_old(
    client: Result<&ConsoleClient, ConsoleError>,
    text: &str,
) -> Result<OldCardMatch, ConsoleError> {
    let fp = text.trim().to_ascii_lowercase().replace(':', "");
    if is_fingerprint(&fp) {
        let record = client.ok().and_then(|c| c.get(&fp).ok()).map(Box::new);
        return Ok(OldCardMatch::Fingerprint(fp, record));
    }
    let page = client?.search(&SearchQuery {
        search: Some(text.trim().to_string()),
        status: Some(CertificateStatus::Active),
        limit: Some(MATCHES_SHOWN),
        ..Default::default()
    })?;
    let mut records = page.records;
    Ok(match records.len() {
        0 => OldCardMatch::None,
        1 => OldCardMatch::One(Box::new(records.remove(0))),
        _ => OldCardMatch::Several(records),
    })
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
    // The console's record counts only for the certificate it is about.
    let console = req.old_record.as_ref().filter(|r| r.sha256 == old);
    let subject = match (&req.subject_override, &record, console) {
        (Some(s), _, _) => s.clone(),
        (None, Some(r), _) => r.subject.clone(),
        (None, None, Some(c)) => c.subject.clone(),
        (None, None, None) => return Err(ReplaceError::UnknownOld(old)),
    };
    let slot = match (&record, console.and_then(|c| c.slot.as_deref())) {
        (Some(r), _) => r.slot,
        (None, Some(s)) => s.parse().unwrap_or(req.enroll.slot),
        (None, None) => req.enroll.slot,
    };
    let label = req
        .enroll
        .label
        .clone()
        .or_else(|| record.as_ref().and_then(|r| r.label.clone()))
        .or_else(|| console.and_then(|c| c.label.clone()));

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
        label,
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
