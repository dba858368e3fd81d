//! Enrollment of a blank PIV card, as a workflow:
//! check card → authenticate → generate → certificate → write → self-test → record.
//!
//! The card is reported enrolled only after the self-test (a fresh challenge signed
//! by the new key, verified against the certificate read back from the card).

use super::attestation::{self, KeyProof};
use super::management_keys::{authenticate_current, rotate_management_key, KeyError};
use super::subject_template;
use crate::app::failure::{Coded, ErrorCode};
use crate::store::{AuditAction, AuditEntry, CompletedEnrollment};
use cardstation_verifier::{prove_possession, ChallengeBook, PossessionError};
use std::fmt;
use std::ops::ControlFlow;
use std::time::Instant;

use serde::Serialize;

use crate::store::{NewEnrollment, Store, StoreError};
use cardstation_card::Transport;
use cardstation_piv::objects::{CertificateObject, Chuid};
use cardstation_piv::{Algorithm, Guid, Pin, PivError, PivSession, Slot};
use cardstation_pki::certificate::{self, CertificateInfo, CertificateProfile};
use cardstation_pki::subject::{parse_subject, SubjectError};
use cardstation_pki::{CardSigner, CertError};
use cardstation_protocol::messages::{check_label, IssueRequest, UploadRequest};

use super::issuer::{check_issued, CertificateIssuer};
use crate::console::ConsoleError;

use super::site_keys::{CardIdentity, SiteSecret};

/// PIV's own minimum for a certificate container (SP 800-73-4).
pub const PIV_MIN_OBJECT_SIZE: usize = 1856;
/// Largest certificate container on a YubiKey 4/5.
pub const YUBIKEY_OBJECT_SIZE: usize = 3052;

/// The steps the operator sees, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnrollStep {
    CheckCard,
    Authenticate,
    GenerateKey,
    Certificate,
    Write,
    SelfTest,
    Record,
}

impl EnrollStep {
    pub const ALL: [EnrollStep; 7] = [
        EnrollStep::CheckCard,
        EnrollStep::Authenticate,
        EnrollStep::GenerateKey,
        EnrollStep::Certificate,
        EnrollStep::Write,
        EnrollStep::SelfTest,
        EnrollStep::Record,
    ];
}

impl fmt::Display for EnrollStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EnrollStep::CheckCard => "Check card",
            EnrollStep::Authenticate => "Authenticate",
            EnrollStep::GenerateKey => "Generate key",
            EnrollStep::Certificate => "Certificate",
            EnrollStep::Write => "Write",
            EnrollStep::SelfTest => "Self-test",
            EnrollStep::Record => "Record",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error(transparent)]
    Piv(#[from] PivError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Certificate(#[from] CertError),
    #[error("subject: {0}")]
    Subject(#[from] SubjectError),
    #[error("slot {slot} already holds {what}. Nothing was changed. To replace it (the old key and certificate are destroyed) confirm the replacement (--force on the command line)")]
    SlotInUse { slot: Slot, what: String },
    #[error("this site's console accepts only keys the card proves it generated (PIV attestation), and this card does not attest. Nothing was changed on the card. Use a card that attests (a YubiKey, firmware 4.3 or later) or ask the console administrator")]
    AttestationRequired,
    #[error("slot {0} needs the card's PIN to sign. Give it with --pin-stdin")]
    PinRequired(Slot),
    #[error("the certificate object would be {size} bytes but this card holds at most {limit}. Shorten the subject; nothing was written")]
    CertificateTooBig { size: usize, limit: usize },
    #[error("the card does not accept the factory management key nor this site's key. It was set up elsewhere: enrol it at the station of the site that issued it, or reset it")]
    ManagementKeyUnknown,
    #[error("self-test failed: {0}. The card is NOT enrolled; enrol it again")]
    SelfTestFailed(String),
    #[error("cancelled by the operator during \"{0}\"; the card is not enrolled")]
    Cancelled(EnrollStep),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the site's CA did not issue the certificate: {0}. Nothing was written to the card")]
    Issuer(ConsoleError),
    #[error("{0}. Nothing was written to the card; ask the console administrator")]
    IssuedUnfit(String),
    /// The enrollment failed and the station database could not record the failure.
    #[error("{error} (and this failure could not be written to the station database: {record})")]
    Unrecorded {
        error: Box<EnrollError>,
        record: StoreError,
    },
}

impl Coded for EnrollError {
    fn code(&self) -> ErrorCode {
        match self {
            EnrollError::Piv(e) => Coded::code(e),
            EnrollError::Store(_) => ErrorCode::StationDatabase,
            EnrollError::Certificate(_) => ErrorCode::Certificate,
            EnrollError::Subject(_) => ErrorCode::Subject,
            EnrollError::SlotInUse { .. } => ErrorCode::SlotInUse,
            EnrollError::AttestationRequired => ErrorCode::AttestationRequired,
            EnrollError::PinRequired(_) => ErrorCode::PinRequired,
            EnrollError::CertificateTooBig { .. } => ErrorCode::CertificateTooBig,
            EnrollError::ManagementKeyUnknown => ErrorCode::ManagementKeyUnknown,
            EnrollError::SelfTestFailed(_) => ErrorCode::SelfTestFailed,
            EnrollError::Cancelled(_) => ErrorCode::Cancelled,
            EnrollError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            EnrollError::Issuer(e) => e.code(),
            EnrollError::IssuedUnfit(_) => ErrorCode::Certificate,
            EnrollError::Unrecorded { error, .. } => error.code(),
        }
    }
}

impl From<KeyError> for EnrollError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Piv(e) => EnrollError::Piv(e),
            KeyError::Store(e) => EnrollError::Store(e),
            KeyError::Unknown => EnrollError::ManagementKeyUnknown,
        }
    }
}

/// What the operator asked for.
#[derive(Debug, Clone)]
pub struct EnrollRequest {
    pub slot: Slot,
    /// Subject template: `{serial}` and `{guid}` are filled in from the card.
    pub subject_template: String,
    pub valid_days: u32,
    pub pin: Option<Pin>,
    pub force: bool,
    /// Override of the card's object size limit (from the config).
    pub max_object_size: Option<usize>,
    /// Queue the certificate for the console together with the enrollment record.
    pub upload: Option<UploadOptions>,
    /// Who or what holds the card ("gw-17 Plant B", "J. Smith"): recorded with the
    /// enrollment and sent with the upload.
    pub label: Option<String>,
}

/// How the certificate goes to the console (it carries the request's label).
#[derive(Debug, Clone, Default)]
pub struct UploadOptions {}

/// Longest validity accepted, in days (100 years).
pub const MAX_VALID_DAYS: u32 = 36_500;

impl EnrollRequest {
    /// Check what can be checked without the card: validity, subject, PIN presence.
    pub fn validate(&self) -> Result<(), EnrollError> {
        if !(1..=MAX_VALID_DAYS).contains(&self.valid_days) {
            return Err(EnrollError::InvalidRequest(format!(
                "validity must be between 1 and {MAX_VALID_DAYS} days, not {}",
                self.valid_days
            )));
        }
        subject_template::check(&self.subject_template).map_err(EnrollError::InvalidRequest)?;
        check_label(self.label.as_deref().unwrap_or_default())
            .map_err(EnrollError::InvalidRequest)?;
        parse_subject(&subject_template::fill(
            &self.subject_template,
            Some(0),
            &"0".repeat(32),
        ))?;
        if self.slot.needs_pin() && self.pin.is_none() {
            return Err(EnrollError::PinRequired(self.slot));
        }
        Ok(())
    }
}

impl EnrollRequest {
    /// The station's enrollment profile from the settings (slot, subject, days,
    /// object size limit); PIN, force and upload are the caller's to add.
    pub fn from_settings(config: &crate::config::Config) -> Self {
        EnrollRequest {
            slot: config
                .enroll
                .slot
                .parse()
                .unwrap_or(Slot::CardAuthentication),
            subject_template: config.enroll.subject.clone(),
            valid_days: config.enroll.days,
            pin: None,
            force: false,
            max_object_size: config.card.max_object_size,
            upload: None,
            label: None,
        }
    }
}

/// What enrolling `slot` would destroy, judged from a card report before the card
/// is touched — the same rule `enroll` applies on the card itself.
pub fn slot_occupant(report: &super::card_status::CardReport, slot: Slot) -> Option<String> {
    let s = report.slots.iter().find(|s| s.slot == slot)?;
    if let Some(c) = &s.certificate {
        return Some(format!("a certificate for \"{}\"", c.subject));
    }
    let factory = report.management_key.is_default == Some(true);
    key_is_someones(s.key_present == Some(true), factory)
        .then(|| "a key (without certificate)".to_string())
}

/// A key without a certificate on a card still on its factory management key was put
/// there by the manufacturer (Nitrokey cards ship with a 9E key); any other is someone's.
fn key_is_someones(key_without_certificate: bool, factory_management_key: bool) -> bool {
    key_without_certificate && !factory_management_key
}

/// Who is enrolling, and where records go.
pub struct EnrollContext<'a> {
    pub store: &'a Store,
    pub site_secret: &'a SiteSecret,
    pub operator: &'a str,
    pub station_id: &'a str,
    /// The site's issuing CA, when it signs the cards' certificates; `None`: each
    /// card signs its own.
    pub issuer: Option<&'a dyn CertificateIssuer>,
    /// The site's console accepts only attested keys: a card that cannot attest is
    /// refused before it is changed.
    pub require_attestation: bool,
}

impl EnrollContext<'_> {
    /// An audit row by this operator at this station.
    pub fn audit_entry<'b>(
        &'b self,
        action: AuditAction,
        subject: &'b str,
        outcome: &'b str,
        details: &'b serde_json::Value,
    ) -> AuditEntry<'b> {
        AuditEntry {
            operator: self.operator,
            station_id: self.station_id,
            action,
            subject,
            outcome,
            details,
        }
    }
}

/// What a finished enrollment or renewal leaves in its record: the certificate as the
/// card holds it, the card's proof for the key, and the upload to queue.
pub(super) fn completed<'b>(
    info: &'b CertificateInfo,
    der: &'b [u8],
    attestation: Option<&'b str>,
    upload: Option<&'b str>,
) -> CompletedEnrollment<'b> {
    CompletedEnrollment {
        fingerprint: &info.sha256,
        certificate: der,
        not_after: info.not_after,
        attestation,
        upload,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EnrollOutcome {
    pub enrollment_id: i64,
    pub reader: String,
    pub slot: Slot,
    pub card_serial: Option<u32>,
    pub chuid_guid: String,
    pub fingerprint: String,
    pub subject: String,
    pub label: Option<String>,
    pub not_after: i64,
    #[serde(skip)]
    pub certificate_der: Vec<u8>,
    pub management_key: Algorithm,
    /// Whether the card proved the key was generated on it (PIV attestation).
    pub key_proof: KeyProof,
    pub apdus: usize,
    pub millis: u128,
}

/// Run the enrollment on the card behind `transport`. `on_step` is told each step
/// as it starts and may return `Break` to cancel before the step runs.
pub fn enroll<T: Transport>(
    transport: T,
    req: &EnrollRequest,
    ctx: &EnrollContext<'_>,
    on_step: &mut dyn FnMut(EnrollStep) -> ControlFlow<()>,
) -> Result<EnrollOutcome, EnrollError> {
    let started = Instant::now();
    let reader = transport.reader().to_string();
    let mut step = |s: EnrollStep| match on_step(s) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(EnrollError::Cancelled(s)),
    };

    // 0. The request itself, before the card is touched.
    req.validate()?;

    // 1. Check the card: PIV present, slot empty (or --force), certificate will fit,
    //    PIN right — all before anything on the card changes.
    step(EnrollStep::CheckCard)?;
    let mut session = PivSession::open(transport)?;
    let serial = session.serial()?;
    // Cards with the YubiKey serial extension take YubiKey-sized objects.
    let is_yubikey_like = serial.is_some();
    let old_chuid = session.read_chuid()?;
    let old_guid_value = old_chuid.as_ref().and_then(|c| c.guid);
    let old_guid = old_guid_value.map(|g| g.to_hex());
    let key_without_certificate = check_slot_free(&mut session, req.slot, req.force)?;
    if ctx.require_attestation && !attestation::can_attest(&mut session)? {
        return Err(EnrollError::AttestationRequired);
    }
    if req.slot.needs_pin() {
        verify_pin(&mut session, req)?;
    }
    let new_guid = Guid::random();
    let new_guid_hex = new_guid.to_hex();
    let subject_text = subject_template::fill(&req.subject_template, serial, &new_guid_hex);
    let profile = CertificateProfile {
        subject: parse_subject(&subject_text)?,
        valid_days: req.valid_days,
    };
    let limit = req.max_object_size.unwrap_or(if is_yubikey_like {
        YUBIKEY_OBJECT_SIZE
    } else {
        PIV_MIN_OBJECT_SIZE
    });
    check_size(&estimated_object_size(&profile)?, limit)?;

    // 2. Authenticate with the card's current management key.
    step(EnrollStep::Authenticate)?;
    let mgmt = session.management_key_state()?;
    let identity_now = CardIdentity {
        serial,
        guid: old_guid_value,
    };
    let factory_key = authenticate_current(
        &mut session,
        ctx.store,
        ctx.site_secret,
        mgmt,
        &identity_now,
        old_guid.as_deref(),
    )?;
    if key_is_someones(key_without_certificate, factory_key) {
        return Err(EnrollError::SlotInUse {
            slot: req.slot,
            what: "a key (without certificate)".into(),
        });
    }

    let label = check_label(req.label.as_deref().unwrap_or_default())
        .map_err(EnrollError::InvalidRequest)?;
    // From here on the card changes: the attempt is committed to the database first.
    let enrollment_id = ctx.store.begin_enrollment(&NewEnrollment {
        reader: &reader,
        card_serial: serial,
        old_guid: old_guid.as_deref(),
        new_guid: &new_guid_hex,
        slot: req.slot,
        subject: &subject_text,
        operator: ctx.operator,
        station_id: ctx.station_id,
        label: label.as_deref(),
    })?;
    let card_label = card_label(serial, &new_guid_hex);
    let result = change_card(
        &mut session,
        req,
        &profile,
        limit,
        new_guid,
        serial,
        label.as_deref(),
        ctx,
        &mut step,
    );
    let Changed {
        der,
        info,
        management_key: new_mgmt_alg,
        key_proof,
    } = match result {
        Ok(done) => done,
        Err(e) => {
            let message = e.to_string();
            // Recording the failure must not hide the failure itself, nor be skipped silently.
            let details = serde_json::json!({"reader": reader, "slot": req.slot.short(), "error": message, "enrollment": enrollment_id});
            let recorded = ctx.store.fail_enrollment(
                enrollment_id,
                &message,
                &ctx.audit_entry(AuditAction::Enroll, &card_label, "interrupted", &details),
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

    // 7. Record: only now is the card enrolled.
    step(EnrollStep::Record)?;
    // A CA-issued certificate is recorded at the console already.
    let upload = match &req.upload {
        Some(_) if ctx.issuer.is_none() => Some(
            serde_json::to_string(&UploadRequest {
                certificate: certificate::to_pem(&der),
                card_serial: serial,
                chuid_guid: Some(new_guid_hex.clone()),
                slot: Some(req.slot.short().to_string()),
                label: label.clone(),
                operator: ctx.operator.to_string(),
                station_id: ctx.station_id.to_string(),
                attestation: key_proof.evidence().cloned(),
            })
            .map_err(|e| EnrollError::InvalidRequest(e.to_string()))?,
        ),
        _ => None,
    };
    let key_evidence = key_proof.evidence_json();
    let details = serde_json::json!({
        "reader": reader, "slot": req.slot.short(), "fingerprint": info.sha256,
        "subject": info.subject, "enrollment": enrollment_id, "label": label,
        "key": key_proof.describe(),
    });
    ctx.store.complete_enrollment(
        enrollment_id,
        &completed(&info, &der, key_evidence.as_deref(), upload.as_deref()),
        &ctx.audit_entry(AuditAction::Enroll, &card_label, "enrolled", &details),
    )?;
    Ok(EnrollOutcome {
        enrollment_id,
        reader,
        slot: req.slot,
        card_serial: serial,
        chuid_guid: new_guid_hex,
        fingerprint: info.sha256.clone(),
        subject: info.subject.clone(),
        label,
        not_after: info.not_after,
        certificate_der: der,
        management_key: new_mgmt_alg,
        key_proof,
        apdus: session.channel().apdu_count(),
        millis: started.elapsed().as_millis(),
    })
}

/// Steps 3–6: everything that changes the card.
#[allow(clippy::too_many_arguments)]
fn change_card<T: Transport>(
    session: &mut PivSession<T>,
    req: &EnrollRequest,
    profile: &CertificateProfile,
    limit: usize,
    new_guid: Guid,
    serial: Option<u32>,
    label: Option<&str>,
    ctx: &EnrollContext<'_>,
    step: &mut dyn FnMut(EnrollStep) -> Result<(), EnrollError>,
) -> Result<Changed, EnrollError> {
    // 3. Generate the key pair on the card, and ask the card to attest it: proof for the
    //    console that the key was born on this card.
    step(EnrollStep::GenerateKey)?;
    let public_key = session.generate_p256(req.slot)?;
    let key_proof = attestation::read(session, req.slot, Some(&public_key))?;

    // 4. Certificate, signed by the card's new key.
    step(EnrollStep::Certificate)?;
    if req.slot == Slot::Signature {
        // 9C asks for the PIN before every use.
        verify_pin(session, req)?;
    }
    let der = match ctx.issuer {
        None => {
            let signer = CardSigner::new(session, req.slot, public_key);
            match certificate::self_signed(profile, &signer, time::OffsetDateTime::now_utc()) {
                Ok(der) => der,
                Err(e) => {
                    return Err(signer
                        .take_failure()
                        .map(EnrollError::from)
                        .unwrap_or(e.into()))
                }
            }
        }
        Some(issuer) => {
            let request = {
                let signer = CardSigner::new(session, req.slot, public_key);
                match certificate::request(&request_subject(&profile.subject, label), &signer) {
                    Ok(pem) => pem,
                    Err(e) => {
                        return Err(signer
                            .take_failure()
                            .map(EnrollError::from)
                            .unwrap_or(e.into()))
                    }
                }
            };
            let issued = issuer
                .issue(&IssueRequest {
                    request,
                    profile: None,
                    card_serial: serial,
                    chuid_guid: Some(new_guid.to_hex()),
                    slot: Some(req.slot.short().to_string()),
                    label: label.map(str::to_string),
                    operator: ctx.operator.to_string(),
                    station_id: ctx.station_id.to_string(),
                    attestation: key_proof.evidence().cloned(),
                })
                .map_err(EnrollError::Issuer)?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            check_issued(&issued, &public_key, issuer.pinned_ca(), now)
                .map_err(EnrollError::IssuedUnfit)?
                .0
        }
    };
    let object = CertificateObject::new(der.clone()).encode();
    check_size(&object, limit)?;

    // 5. Write the certificate, a fresh CHUID (so middleware caches notice) and
    //    the card's own management key.
    step(EnrollStep::Write)?;
    session.write_certificate(req.slot, &der)?;
    session.write_chuid(&Chuid::new(new_guid))?;
    let identity = CardIdentity {
        serial,
        guid: Some(new_guid),
    };
    let new_mgmt_alg = rotate_management_key(session, ctx.site_secret, &identity)?;

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
    let info = CertificateInfo::parse(&stored.der)?;
    // The management key is derived from the GUID: the card must hold the one we wrote.
    let chuid = session.read_chuid()?;
    if chuid.and_then(|c| c.guid) != Some(new_guid) {
        return Err(EnrollError::SelfTestFailed(
            "the CHUID read back does not carry the GUID written".into(),
        ));
    }
    if req.slot == Slot::Signature {
        verify_pin(session, req)?;
    }
    // The same challenge-response a gateway runs (one implementation, in the verifier).
    let key = info.public_key.ok_or_else(|| {
        EnrollError::SelfTestFailed("the certificate's key is not a P-256 key".into())
    })?;
    prove_possession(session, req.slot, &key, &mut ChallengeBook::default()).map_err(
        |e| match e {
            PossessionError::Card(p) => EnrollError::Piv(p),
            other => EnrollError::SelfTestFailed(other.to_string()),
        },
    )?;
    Ok(Changed {
        der,
        info,
        management_key: new_mgmt_alg,
        key_proof,
    })
}

/// What steps 3–6 leave on the card.
struct Changed {
    der: Vec<u8>,
    info: CertificateInfo,
    management_key: Algorithm,
    key_proof: KeyProof,
}

/// The subject a request names: the holder label as CN (the CA's profile builds the
/// rest), or without a label the CN of `subject` (the station's template, or the
/// certificate being renewed). The console takes that CN as the holder.
pub(super) fn request_subject(
    subject: &rcgen::DistinguishedName,
    label: Option<&str>,
) -> rcgen::DistinguishedName {
    let mut dn = rcgen::DistinguishedName::new();
    match label {
        Some(l) => dn.push(rcgen::DnType::CommonName, l),
        None => {
            if let Some(cn) = subject.get(&rcgen::DnType::CommonName) {
                dn.push(rcgen::DnType::CommonName, cn.clone());
            }
        }
    }
    dn
}

fn verify_pin<T: Transport>(
    session: &mut PivSession<T>,
    req: &EnrollRequest,
) -> Result<(), EnrollError> {
    let pin = req.pin.as_ref().ok_or(EnrollError::PinRequired(req.slot))?;
    session.verify_pin(pin)?;
    Ok(())
}

/// Refuse a slot holding a certificate (unless forced). Returns whether the slot
/// holds a key without a certificate: that is decided after authentication.
fn check_slot_free<T: Transport>(
    session: &mut PivSession<T>,
    slot: Slot,
    force: bool,
) -> Result<bool, EnrollError> {
    let cert = session.read_certificate(slot)?;
    let key_present = session.metadata(slot.key_reference())?.is_some();
    if force {
        return Ok(false);
    }
    if let Some(c) = cert {
        let what = match CertificateInfo::parse(&c.der) {
            Ok(info) => format!(
                "a certificate for \"{}\" (SHA-256 {})",
                info.subject,
                &info.sha256[..16]
            ),
            Err(_) => "an unreadable certificate".into(),
        };
        return Err(EnrollError::SlotInUse { slot, what });
    }
    Ok(key_present)
}

fn check_size(object: &[u8], limit: usize) -> Result<(), EnrollError> {
    if object.len() > limit {
        return Err(EnrollError::CertificateTooBig {
            size: object.len(),
            limit,
        });
    }
    Ok(())
}

/// The size of the certificate object this profile produces, measured with a
/// throwaway software key (ECDSA signatures vary by a couple of bytes: add margin).
fn estimated_object_size(profile: &CertificateProfile) -> Result<Vec<u8>, EnrollError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| CertError::Build(e.to_string()))?;
    let der = certificate::self_signed(profile, &key, time::OffsetDateTime::now_utc())?;
    let mut object = CertificateObject::new(der).encode();
    object.extend_from_slice(&[0; 4]);
    Ok(object)
}

fn card_label(serial: Option<u32>, guid_hex: &str) -> String {
    match serial {
        Some(s) => format!("serial {s} / GUID {guid_hex}"),
        None => format!("GUID {guid_hex}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_before_the_card_is_touched() {
        let ok = EnrollRequest {
            slot: Slot::CardAuthentication,
            subject_template: "CN=gw {serial} {guid}".into(),
            valid_days: 365,
            pin: None,
            force: false,
            max_object_size: None,
            upload: None,
            label: Some("gw-17 Plant B".into()),
        };
        assert!(ok.validate().is_ok());
        let r = EnrollRequest {
            label: Some("a\nb".into()),
            ..ok.clone()
        };
        assert!(matches!(r.validate(), Err(EnrollError::InvalidRequest(_))));
        for days in [0, MAX_VALID_DAYS + 1, 99_999_999] {
            let r = EnrollRequest {
                valid_days: days,
                ..ok.clone()
            };
            assert!(
                matches!(r.validate(), Err(EnrollError::InvalidRequest(_))),
                "{days}"
            );
        }
        let r = EnrollRequest {
            subject_template: "CN={nope}".into(),
            ..ok.clone()
        };
        assert!(r.validate().unwrap_err().to_string().contains("{nope}"));
        let r = EnrollRequest {
            subject_template: "CN={guid".into(),
            ..ok.clone()
        };
        assert!(r.validate().is_err());
        let r = EnrollRequest {
            subject_template: "FOO=bar".into(),
            ..ok.clone()
        };
        assert!(matches!(r.validate(), Err(EnrollError::Subject(_))));
        let r = EnrollRequest {
            slot: Slot::Authentication,
            ..ok
        };
        assert!(matches!(r.validate(), Err(EnrollError::PinRequired(_))));
    }

    #[test]
    fn oversized_subjects_are_refused_before_writing() {
        let long = format!("CN={}", "x".repeat(60));
        let profile = CertificateProfile {
            subject: parse_subject(&format!(
                "{long},O={},OU={}",
                "y".repeat(60),
                "z".repeat(60)
            ))
            .unwrap(),
            valid_days: 1,
        };
        let object = estimated_object_size(&profile).unwrap();
        assert!(matches!(
            check_size(&object, 300),
            Err(EnrollError::CertificateTooBig { limit: 300, .. })
        ));
        assert!(check_size(&object, YUBIKEY_OBJECT_SIZE).is_ok());
    }
}
