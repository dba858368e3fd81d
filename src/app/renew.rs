//! Renewal without downtime: a new certificate for the key already on the card (or,
//! asked for, for a new key made on the card), so nothing the card does changes for
//! a gateway. Check card → authenticate → [new key] → certificate (the site's CA
//! from a request the card signs, or the card itself) → write → self-test → record;
//! only then is the old certificate retired at the console (queued: marked
//! superseded, never revoked). Gateways accept both until the old one's end; after a
//! new key, no card holds the old one's key any more.

use std::ops::ControlFlow;
use std::time::Instant;

use serde::Serialize;

use cardstation_card::Transport;
use cardstation_piv::{Guid, Pin, PivSession, Slot};

use super::attestation::{self, KeyProof};
use cardstation_pki::certificate::{self, CertificateInfo, CertificateProfile};
use cardstation_pki::subject::parse_subject;
use cardstation_pki::CardSigner;
use cardstation_protocol::messages::{IssueRequest, UploadRequest};
use cardstation_verifier::{prove_possession, ChallengeBook, PossessionError};

use super::enroll::{
    completed, request_subject, EnrollContext, EnrollError, EnrollStep, MAX_VALID_DAYS,
};
use super::issuer::check_issued;
use super::management_keys::authenticate_current;
use super::site_keys::CardIdentity;
use crate::console::outbox;
use crate::store::{AuditAction, NewEnrollment};

/// What the operator asked for.
#[derive(Debug, Clone)]
pub struct RenewRequest {
    pub slot: Slot,
    /// How long the new certificate is valid (card-signed; the CA's profile decides
    /// under CA issuance).
    pub valid_days: u32,
    pub pin: Option<Pin>,
    /// Queue the new certificate and the old one's retirement for the console.
    pub upload: bool,
    /// Make a new key on the card for the new certificate (the old key is replaced).
    pub new_key: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RenewOutcome {
    pub enrollment_id: i64,
    pub reader: String,
    pub slot: Slot,
    pub old_fingerprint: String,
    pub old_not_after: i64,
    pub fingerprint: String,
    pub subject: String,
    pub not_after: i64,
    pub label: Option<String>,
    /// The certificate is for a key made on the card during this renewal.
    pub new_key: bool,
    #[serde(skip)]
    pub certificate_der: Vec<u8>,
    pub millis: u128,
}

/// Renew the certificate in `req.slot` of the card behind `transport`.
pub fn renew<T: Transport>(
    transport: T,
    req: &RenewRequest,
    ctx: &EnrollContext<'_>,
    on_step: &mut dyn FnMut(EnrollStep) -> ControlFlow<()>,
) -> Result<RenewOutcome, EnrollError> {
    let started = Instant::now();
    let reader = transport.reader().to_string();
    let mut step = |s: EnrollStep| match on_step(s) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(EnrollError::Cancelled(s)),
    };
    if !(1..=MAX_VALID_DAYS).contains(&req.valid_days) {
        return Err(EnrollError::InvalidRequest(format!(
            "validity must be between 1 and {MAX_VALID_DAYS} days, not {}",
            req.valid_days
        )));
    }
    if req.slot.needs_pin() && req.pin.is_none() {
        return Err(EnrollError::PinRequired(req.slot));
    }

    // 1. The card and what it holds now: a certificate for a P-256 key in the slot.
    step(EnrollStep::CheckCard)?;
    let mut session = PivSession::open(transport)?;
    let serial = session.serial()?;
    let old = session.read_certificate(req.slot)?.ok_or_else(|| {
        EnrollError::InvalidRequest(format!(
            "slot {} holds no certificate: there is nothing to renew. Enroll the card instead",
            req.slot
        ))
    })?;
    let old_info = CertificateInfo::parse(&old.der)?;
    let key = old_info.public_key.ok_or_else(|| {
        EnrollError::InvalidRequest("the certificate's key is not a P-256 key".into())
    })?;
    if ctx.require_attestation && !attestation::can_attest(&mut session)? {
        return Err(EnrollError::AttestationRequired);
    }
    let guid: Option<Guid> = session.read_chuid()?.and_then(|c| c.guid);
    let guid_hex = guid.map(|g| g.to_hex());
    let record = ctx.store.enrollment_by_fingerprint(&old_info.sha256)?;
    let label = record.as_ref().and_then(|r| r.label.clone());

    // 2. The site's management key: only a card this site enrolled is renewed here.
    step(EnrollStep::Authenticate)?;
    let mgmt = session.management_key_state()?;
    let identity = CardIdentity { serial, guid };
    let factory = authenticate_current(
        &mut session,
        ctx.store,
        ctx.site_secret,
        mgmt,
        &identity,
        guid_hex.as_deref(),
    )?;
    if factory {
        return Err(EnrollError::InvalidRequest(
            "this card still has its factory management key: it was not enrolled by this site. Enroll it instead".into(),
        ));
    }
    if let Some(pin) = &req.pin {
        session.verify_pin(pin)?;
    }

    let enrollment_id = ctx.store.begin_enrollment(&NewEnrollment {
        reader: &reader,
        card_serial: serial,
        old_guid: guid_hex.as_deref(),
        new_guid: guid_hex.as_deref().unwrap_or_default(),
        slot: req.slot,
        subject: &old_info.subject,
        operator: ctx.operator,
        station_id: ctx.station_id,
        label: label.as_deref(),
    })?;
    let changed = change(
        &mut session,
        req,
        ctx,
        &old_info,
        &key,
        serial,
        guid_hex.as_deref(),
        label.as_deref(),
        &mut step,
    );
    let (der, info, key_proof) = match changed {
        Ok(done) => done,
        Err(e) => {
            let message = e.to_string();
            let details = serde_json::json!({
                "reader": reader, "slot": req.slot.short(), "old": old_info.sha256,
                "error": message, "enrollment": enrollment_id,
            });
            let recorded = ctx.store.fail_enrollment(
                enrollment_id,
                &message,
                &ctx.audit_entry(
                    AuditAction::Renew,
                    &old_info.sha256,
                    "interrupted",
                    &details,
                ),
            );
            return Err(match recorded {
                Ok(()) => e,
                Err(record) => EnrollError::Unrecorded {
                    error: Box::new(e),
                    record,
                },
            });
        }
    };

    // 7. Record; then the console: the new certificate (card-signed), and the old
    //    one's retirement after it.
    step(EnrollStep::Record)?;
    let upload = if req.upload && ctx.issuer.is_none() {
        Some(
            serde_json::to_string(&UploadRequest {
                certificate: certificate::to_pem(&der),
                card_serial: serial,
                chuid_guid: guid_hex.clone(),
                slot: Some(req.slot.short().to_string()),
                label: label.clone(),
                operator: ctx.operator.to_string(),
                station_id: ctx.station_id.to_string(),
                attestation: key_proof.evidence().cloned(),
            })
            .map_err(|e| EnrollError::InvalidRequest(e.to_string()))?,
        )
    } else {
        None
    };
    let key_evidence = key_proof.evidence_json();
    let details = serde_json::json!({
        "reader": reader, "slot": req.slot.short(), "old": old_info.sha256,
        "new": info.sha256, "not_after": info.not_after, "enrollment": enrollment_id,
    });
    ctx.store.complete_enrollment(
        enrollment_id,
        &completed(&info, &der, key_evidence.as_deref(), upload.as_deref()),
        &ctx.audit_entry(AuditAction::Renew, &old_info.sha256, "renewed", &details),
    )?;
    if req.upload {
        outbox::enqueue_supersede(
            ctx.store,
            &old_info.sha256,
            &info.sha256,
            ctx.operator,
            ctx.station_id,
        )
        .map_err(|e| EnrollError::InvalidRequest(e.to_string()))?;
    }
    Ok(RenewOutcome {
        enrollment_id,
        reader,
        slot: req.slot,
        old_fingerprint: old_info.sha256,
        old_not_after: old_info.not_after,
        fingerprint: info.sha256,
        subject: info.subject,
        not_after: info.not_after,
        label,
        new_key: req.new_key,
        certificate_der: der,
        millis: started.elapsed().as_millis(),
    })
}

/// Steps 3–6: the key, the new certificate, written and self-tested.
#[allow(clippy::too_many_arguments)]
fn change<T: Transport>(
    session: &mut PivSession<T>,
    req: &RenewRequest,
    ctx: &EnrollContext<'_>,
    old: &CertificateInfo,
    key: &p256::PublicKey,
    serial: Option<u32>,
    guid_hex: Option<&str>,
    label: Option<&str>,
    step: &mut dyn FnMut(EnrollStep) -> Result<(), EnrollError>,
) -> Result<(Vec<u8>, CertificateInfo, KeyProof), EnrollError> {
    // 3. The key: the one the card holds, or a new one made on it. From here on a
    //    failure leaves the old certificate beside a key it does not name; renewing
    //    again (with a new key) mends it.
    let key = if req.new_key {
        step(EnrollStep::GenerateKey)?;
        let made = session.generate_p256(req.slot)?;
        if req.slot == Slot::Signature {
            // 9C asks for the PIN before every use.
            if let Some(pin) = &req.pin {
                session.verify_pin(pin)?;
            }
        }
        made
    } else {
        *key
    };
    let key = &key;
    // The card's proof that the key was born on it, for a site that requires one.
    let key_proof = attestation::read(session, req.slot, Some(key))?;

    // 4. The certificate, for that key.
    step(EnrollStep::Certificate)?;
    let subject = parse_subject(&old.subject)?;
    let der = {
        let signer = CardSigner::new(session, req.slot, *key);
        let made = match ctx.issuer {
            None => certificate::self_signed(
                &CertificateProfile {
                    subject,
                    valid_days: req.valid_days,
                },
                &signer,
                time::OffsetDateTime::now_utc(),
            )
            .map_err(EnrollError::from),
            Some(issuer) => {
                let cn = request_subject(&subject, label);
                certificate::request(&cn, &signer)
                    .map_err(EnrollError::from)
                    .and_then(|request| {
                        issuer
                            .issue(&IssueRequest {
                                request,
                                profile: None,
                                card_serial: serial,
                                chuid_guid: guid_hex.map(str::to_string),
                                slot: Some(req.slot.short().to_string()),
                                // None: the console names the holder by the request's CN.
                                label: label.map(str::to_string),
                                operator: ctx.operator.to_string(),
                                station_id: ctx.station_id.to_string(),
                                attestation: key_proof.evidence().cloned(),
                            })
                            .map_err(EnrollError::Issuer)
                    })
                    .and_then(|issued| {
                        let now = time::OffsetDateTime::now_utc().unix_timestamp();
                        check_issued(&issued, key, issuer.pinned_ca(), now)
                            .map(|(der, _)| der)
                            .map_err(EnrollError::IssuedUnfit)
                    })
            }
        };
        match made {
            Ok(der) => der,
            Err(e) => return Err(signer.take_failure().map(EnrollError::from).unwrap_or(e)),
        }
    };
    let new_info = CertificateInfo::parse(&der)?;
    // (The same second is possible: a renewal right after enrollment.)
    if new_info.not_after < old.not_after {
        return Err(EnrollError::IssuedUnfit(
            "the new certificate would end before the one on the card".into(),
        ));
    }

    // 5. Write it over the old one (the CHUID stays).
    step(EnrollStep::Write)?;
    session.write_certificate(req.slot, &der)?;

    // 6. Self-test against the certificate as the card now holds it.
    step(EnrollStep::SelfTest)?;
    let stored = session
        .read_certificate(req.slot)?
        .ok_or_else(|| EnrollError::SelfTestFailed("the certificate is not on the card".into()))?;
    if stored.der != der {
        return Err(EnrollError::SelfTestFailed(
            "the certificate read back differs from the one written".into(),
        ));
    }
    if let Some(pin) = &req.pin {
        session.verify_pin(pin)?;
    }
    prove_possession(session, req.slot, key, &mut ChallengeBook::default()).map_err(
        |e| match e {
            PossessionError::Card(p) => EnrollError::Piv(p),
            other => EnrollError::SelfTestFailed(other.to_string()),
        },
    )?;
    Ok((der, new_info, key_proof))
}
