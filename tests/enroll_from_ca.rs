//! Enrollment with the site's CA, in process: the station treats the console's answer
//! as untrusted bytes. A certificate for another key, one that does not chain to the
//! CA, or a refusal leaves the card without a certificate and the enrollment recorded
//! as failed. (The real console answers in tests/console_issuance.rs and, through
//! pcscd, in the gateway's a_card_the_site_ca_issued_... test.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cell::RefCell;
use std::ops::ControlFlow;

use cardstation::app::card_status::inspect;
use cardstation::app::enroll::{enroll, EnrollContext, EnrollError};
use cardstation::app::issuer::CertificateIssuer;
use cardstation::console::ConsoleError;
use cardstation::store::EnrollmentState;
use cardstation_piv::Slot;
use cardstation_protocol::messages::{
    CertificateRecord, CertificateStatus, IssueRequest, IssuedCertificate,
};

use common::{request, virtual_reader, TestStation};

/// What the stand-in CA does with a request.
#[derive(Clone, Copy, PartialEq)]
enum Answer {
    Honest,
    /// A certificate for a key of its own, not the card's.
    OtherKey,
    /// Signed by a CA other than the one it names.
    WrongCa,
    Refuse,
}

/// A CA that signs with rcgen: the console's part, reduced to what the station sees.
struct StandInCa {
    ca: rcgen::Issuer<'static, rcgen::KeyPair>,
    ca_pem: String,
    other: rcgen::Issuer<'static, rcgen::KeyPair>,
    answer: Answer,
    seen: RefCell<Vec<IssueRequest>>,
}

fn make_ca(name: &str) -> (rcgen::Issuer<'static, rcgen::KeyPair>, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let cert = params.self_signed(&key).unwrap();
    let pem = cert.pem();
    (rcgen::Issuer::new(params, key), pem)
}

impl StandInCa {
    fn new(answer: Answer) -> Self {
        let (ca, ca_pem) = make_ca("Site CA");
        let (other, _) = make_ca("Site CA");
        StandInCa {
            ca,
            ca_pem,
            other,
            answer,
            seen: RefCell::new(Vec::new()),
        }
    }
}

impl CertificateIssuer for StandInCa {
    fn issue(&self, req: &IssueRequest) -> Result<IssuedCertificate, ConsoleError> {
        self.seen.borrow_mut().push(req.clone());
        if self.answer == Answer::Refuse {
            return Err(ConsoleError::Rejected {
                status: 400,
                code: "subject-not-allowed".into(),
                message: "no".into(),
            });
        }
        let csr = rcgen::CertificateSigningRequestParams::from_pem(&req.request).unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = csr.params.distinguished_name.clone();
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::days(30);
        let cert = match self.answer {
            Answer::OtherKey => {
                let stranger =
                    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
                params.signed_by(&stranger, &self.ca).unwrap()
            }
            Answer::WrongCa => params.signed_by(&csr.public_key, &self.other).unwrap(),
            _ => params.signed_by(&csr.public_key, &self.ca).unwrap(),
        };
        let der = cert.der().to_vec();
        Ok(IssuedCertificate {
            certificate: cert.pem(),
            chain: vec![self.ca_pem.clone()],
            record: CertificateRecord {
                sha256: cardstation_pki::fingerprint(&der),
                subject: String::new(),
                not_after: 0,
                card_serial: req.card_serial,
                chuid_guid: req.chuid_guid.clone(),
                slot: req.slot.clone(),
                label: req.label.clone(),
                operator: req.operator.clone(),
                station_id: req.station_id.clone(),
                uploaded_at: 0,
                status: CertificateStatus::Active,
                revocation_reason: None,
                revoked_at: None,
                revoked_by: None,
                superseded_by: None,
                superseded_at: None,
                attestation: None,
            },
        })
    }

    fn pinned_ca(&self) -> Option<&[u8]> {
        None
    }
}

fn go(_: cardstation::app::enroll::EnrollStep) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

fn ctx_with<'a>(station: &'a TestStation, ca: &'a StandInCa) -> EnrollContext<'a> {
    EnrollContext {
        issuer: Some(ca),
        ..station.ctx()
    }
}

#[test]
fn the_card_gets_the_certificate_its_request_was_answered_with() {
    let station = TestStation::new();
    let reader = virtual_reader();
    let ca = StandInCa::new(Answer::Honest);
    let mut req = request(Slot::CardAuthentication);
    req.label = Some("gw-17 Plant B".into());
    req.upload = Some(Default::default());
    let outcome = enroll(reader.clone(), &req, &ctx_with(&station, &ca), &mut go).unwrap();
    // The request named the holder, the card and the new CHUID.
    let seen = ca.seen.borrow();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].label.as_deref(), Some("gw-17 Plant B"));
    assert_eq!(
        seen[0].chuid_guid.as_deref(),
        Some(outcome.chuid_guid.as_str())
    );
    assert_eq!(seen[0].slot.as_deref(), Some("9e"));
    assert_eq!(outcome.subject, "CN=gw-17 Plant B");
    let report = inspect(reader).unwrap();
    let slot = report
        .slots
        .iter()
        .find(|s| s.slot == Slot::CardAuthentication)
        .unwrap();
    assert_eq!(
        slot.certificate.as_ref().unwrap().sha256,
        outcome.fingerprint
    );
    assert!(!slot.certificate.as_ref().unwrap().self_signed);
    // Recorded at the console by the issuance: nothing is queued to upload.
    assert!(station.store.outbox_items().unwrap().is_empty());
}

#[test]
fn an_answer_for_another_key_or_from_another_ca_is_never_written() {
    for (answer, expect) in [
        (Answer::OtherKey, "another key"),
        (Answer::WrongCa, "would not pass a gateway"),
    ] {
        let station = TestStation::new();
        let reader = virtual_reader();
        let ca = StandInCa::new(answer);
        let mut req = request(Slot::CardAuthentication);
        req.label = Some("gw-1".into());
        let err = enroll(reader.clone(), &req, &ctx_with(&station, &ca), &mut go).unwrap_err();
        assert!(
            matches!(&err, EnrollError::IssuedUnfit(m) if m.contains(expect)),
            "{err}"
        );
        assert!(err.to_string().contains("Nothing was written"), "{err}");
        let report = inspect(reader).unwrap();
        let slot = report
            .slots
            .iter()
            .find(|s| s.slot == Slot::CardAuthentication)
            .unwrap();
        assert!(slot.certificate.is_none(), "a certificate was written");
        let rows = station.store.enrollments(10).unwrap();
        assert_eq!(rows[0].state, EnrollmentState::Failed);
    }
}

#[test]
fn a_refusal_says_what_the_console_said_and_writes_nothing() {
    let station = TestStation::new();
    let reader = virtual_reader();
    let ca = StandInCa::new(Answer::Refuse);
    let mut req = request(Slot::CardAuthentication);
    req.label = Some("gw-1".into());
    let err = enroll(reader.clone(), &req, &ctx_with(&station, &ca), &mut go).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("subject-not-allowed"), "{text}");
    assert!(text.contains("Nothing was written"), "{text}");
    let report = inspect(reader).unwrap();
    assert!(report
        .slots
        .iter()
        .all(|s| s.slot != Slot::CardAuthentication || s.certificate.is_none()));
}

/// A revocation-only bundle (what a CA site's console signs): the CA-issued card
/// passes with no allow-list, until its certificate's end; revoking its key, a CA of
/// the same name with another key, or a card-signed certificate each fail it.
#[test]
fn a_revocation_only_bundle_passes_what_the_site_ca_issued_until_its_end_and_nothing_revoked() {
    use cardstation::app::spot_check::{spot_check, ChallengeBook, Policy, Verdict};
    use cardstation_protocol::bundle::{Header, TrustView};
    use cardstation_protocol::trust_lists::{fingerprint_from_hex, short_id, TrustLists};

    let station = TestStation::new();
    let reader = virtual_reader();
    let ca = StandInCa::new(Answer::Honest);
    let mut req = request(Slot::CardAuthentication);
    req.label = Some("gw-9".into());
    let outcome = enroll(reader.clone(), &req, &ctx_with(&station, &ca), &mut go).unwrap();
    let ca_der = cardstation_pki::certificate::from_pem_or_der(ca.ca_pem.as_bytes()).unwrap();
    let other_der = {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Site CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params.self_signed(&key).unwrap().der().to_vec()
    };
    let key = fingerprint_from_hex(
        &cardstation_pki::rules::public_key_sha256(&outcome.certificate_der).unwrap(),
    )
    .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let judge = |cas: Vec<Vec<u8>>, revoked: Vec<[u8; 16]>, mark: i64, at: i64| {
        let lists = TrustLists::revocations_only(cas, revoked, mark);
        let header = Header::for_lists([3; 16], 4, now, at + 3600, [0; 32], &lists);
        let view = TrustView::of(header, lists);
        let status = view.status(now, at, "k");
        let policy = Policy {
            bundle: Some((&view.lists, &status)),
            issuing_ca: None,
            now: at,
            require_attestation: false,
        };
        let check = spot_check(
            reader.clone(),
            Slot::CardAuthentication,
            None,
            &policy,
            &mut ChallengeBook::default(),
        )
        .0;
        let codes: Vec<String> = check.failures().map(|f| f.code.to_string()).collect();
        let notes: Vec<String> = check.findings.iter().map(|f| f.code.to_string()).collect();
        (check.verdict, codes, notes)
    };
    let (verdict, codes, notes) = judge(vec![ca_der.clone()], vec![[9; 16]], now, now);
    assert_eq!(verdict, Verdict::Pass, "{codes:?}");
    assert!(notes.contains(&"not-revoked".to_string()), "{notes:?}");
    assert!(
        !notes.contains(&"newer-than-bundle".to_string()),
        "{notes:?}"
    );
    // Issued after the newest certificate the bundle accounts for: passes, with a note.
    let (verdict, _, notes) = judge(vec![ca_der.clone()], vec![], now - 86_400, now);
    assert_eq!(verdict, Verdict::Pass);
    assert!(
        notes.contains(&"newer-than-bundle".to_string()),
        "{notes:?}"
    );
    // After the certificate's end (30 days): refused.
    let (verdict, codes, _) = judge(vec![ca_der.clone()], vec![], now, now + 31 * 86_400);
    assert_eq!(
        (verdict, codes),
        (Verdict::Fail, vec!["expired".to_string()])
    );
    // The card's key revoked: refused.
    let (verdict, codes, _) = judge(vec![ca_der.clone()], vec![short_id(&key)], now, now);
    assert_eq!(
        (verdict, codes),
        (Verdict::Fail, vec!["revoked".to_string()])
    );
    // The bundle names a CA of the same name with another key: the chain fails.
    let (verdict, codes, _) = judge(vec![other_der], vec![], now, now);
    assert_eq!(
        (verdict, codes),
        (Verdict::Fail, vec!["bad-chain".to_string()])
    );

    // A card-signed certificate is not vouched for by the site's CA.
    let plain = TestStation::new();
    let reader2 = virtual_reader();
    enroll(
        reader2.clone(),
        &request(Slot::CardAuthentication),
        &plain.ctx(),
        &mut go,
    )
    .unwrap();
    let lists = TrustLists::revocations_only(vec![ca_der], vec![], now);
    let header = Header::for_lists([3; 16], 4, now, now + 3600, [0; 32], &lists);
    let view = TrustView::of(header, lists);
    let status = view.status(now, now, "k");
    let policy = Policy {
        bundle: Some((&view.lists, &status)),
        issuing_ca: None,
        now,
        require_attestation: false,
    };
    let check = spot_check(
        reader2,
        Slot::CardAuthentication,
        None,
        &policy,
        &mut ChallengeBook::default(),
    )
    .0;
    assert_eq!(check.verdict, Verdict::Fail);
    assert!(
        check.failures().any(|f| f.code == "wrong-issuer"),
        "{:?}",
        check.findings
    );
}
