//! Enrollment against the in-process virtual card: fast, and covers the edge cases.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::ops::ControlFlow;

use cardstation::app::card_status::inspect;
use cardstation::app::enroll::{enroll, EnrollError, EnrollStep};
use cardstation::store::EnrollmentState;
use cardstation_piv::{ManagementKey, Pin, PinStatus, PivError, PivSession, Slot};
use cardstation_pki::CertificateInfo;

use common::{request, virtual_reader, Fault, FaultyTransport, TestStation};

fn go(_: EnrollStep) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

#[test]
fn enrolls_a_blank_card_in_slot_9e() {
    let station = TestStation::new();
    let reader = virtual_reader();
    let mut steps = Vec::new();
    let outcome = enroll(
        reader.clone(),
        &request(Slot::CardAuthentication),
        &station.ctx(),
        &mut |s| {
            steps.push(s);
            ControlFlow::Continue(())
        },
    )
    .expect("enrollment");
    assert_eq!(steps, EnrollStep::ALL);
    assert_eq!(outcome.fingerprint.len(), 64);
    assert!(outcome.subject.starts_with("CN=test device "));
    assert!(outcome.apdus < 23, "{} APDUs", outcome.apdus);

    // The card holds exactly that certificate, with a new CHUID and a non-default management key.
    let report = inspect(reader.clone()).expect("inspect");
    let slot = report
        .slots
        .iter()
        .find(|s| s.slot == Slot::CardAuthentication)
        .expect("slot 9e");
    let cert = slot.certificate.as_ref().expect("certificate in 9e");
    assert_eq!(cert.sha256, outcome.fingerprint);
    assert_eq!(
        report.chuid_guid.map(|g| g.to_hex()),
        Some(outcome.chuid_guid.clone())
    );
    assert_eq!(report.management_key.is_default, Some(false));
    assert!(!report.is_blank());

    // The factory key no longer works.
    let mut s = PivSession::open(reader).expect("session");
    let default =
        ManagementKey::factory_default(cardstation_piv::Algorithm::TripleDes).expect("3des");
    assert!(matches!(
        s.authenticate(&default),
        Err(PivError::ManagementKeyRejected)
    ));

    // Recorded as enrolled, with an audit row.
    let rec = station
        .store
        .enrollment(outcome.enrollment_id)
        .unwrap()
        .unwrap();
    assert_eq!(rec.state, EnrollmentState::Enrolled);
    assert_eq!(
        rec.fingerprint.as_deref(),
        Some(outcome.fingerprint.as_str())
    );
    let audit = station.store.audit_rows().unwrap();
    assert_eq!(audit.last().unwrap().outcome, "enrolled");
}

#[test]
fn occupied_slot_is_not_touched_without_force_and_replaced_with_it() {
    let station = TestStation::new();
    let reader = virtual_reader();
    let first = enroll(
        reader.clone(),
        &request(Slot::CardAuthentication),
        &station.ctx(),
        &mut go,
    )
    .unwrap();

    let err = enroll(
        reader.clone(),
        &request(Slot::CardAuthentication),
        &station.ctx(),
        &mut go,
    )
    .unwrap_err();
    assert!(matches!(err, EnrollError::SlotInUse { .. }), "{err}");
    assert!(err.to_string().contains("--force"));
    let still = inspect(reader.clone()).unwrap();
    let cert = still
        .slots
        .iter()
        .find(|s| s.slot == Slot::CardAuthentication)
        .unwrap();
    assert_eq!(cert.certificate.as_ref().unwrap().sha256, first.fingerprint);

    // With --force: the station authenticates with the card's derived key and replaces it.
    let mut req = request(Slot::CardAuthentication);
    req.force = true;
    let second = enroll(reader.clone(), &req, &station.ctx(), &mut go).expect("re-enrollment");
    assert_ne!(second.fingerprint, first.fingerprint);
    assert_ne!(second.chuid_guid, first.chuid_guid);
}

#[test]
fn pin_slots_need_the_pin_and_report_tries_left() {
    let station = TestStation::new();
    let reader = virtual_reader();
    let err = enroll(
        reader.clone(),
        &request(Slot::Authentication),
        &station.ctx(),
        &mut go,
    )
    .unwrap_err();
    assert!(matches!(
        err,
        EnrollError::PinRequired(Slot::Authentication)
    ));

    let mut req = request(Slot::Authentication);
    req.pin = Some(Pin::card_pin("999999").unwrap());
    let err = enroll(reader.clone(), &req, &station.ctx(), &mut go).unwrap_err();
    assert!(
        matches!(err, EnrollError::Piv(PivError::WrongPin { retries: 2, .. })),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "wrong PIN: 2 tries left before it is blocked"
    );
    // Nothing half-done is recorded as enrolled.
    let recs = station.store.enrollments(10).unwrap();
    assert!(recs.iter().all(|r| r.state != EnrollmentState::Enrolled));

    // The wrong PIN was caught before anything changed on the card.
    req.pin = Some(Pin::card_pin("123456").unwrap());
    req.force = true;
    let ok = enroll(reader.clone(), &req, &station.ctx(), &mut go).expect("enroll 9a with PIN");
    let mut s = PivSession::open(reader).unwrap();
    // Verified in this card session, or 3 tries: the wrong attempt was reset by the right PIN.
    let status = s.pin_status(cardstation_piv::PinReference::Pin).unwrap();
    assert!(
        matches!(status, PinStatus::Verified | PinStatus::Retries(3)),
        "{status:?}"
    );
    let obj = s.read_certificate(Slot::Authentication).unwrap().unwrap();
    assert_eq!(
        CertificateInfo::parse(&obj.der).unwrap().sha256,
        ok.fingerprint
    );
}

#[test]
fn certificate_too_big_is_refused_before_anything_is_written() {
    let station = TestStation::new();
    let reader = virtual_reader();
    let mut req = request(Slot::CardAuthentication);
    req.max_object_size = Some(400);
    req.subject_template = format!("CN={},O={}", "x".repeat(60), "y".repeat(60));
    let err = enroll(reader.clone(), &req, &station.ctx(), &mut go).unwrap_err();
    assert!(
        matches!(err, EnrollError::CertificateTooBig { limit: 400, .. }),
        "{err}"
    );
    assert!(inspect(reader).unwrap().is_blank());
    assert!(station.store.enrollments(10).unwrap().is_empty());
}

#[test]
fn cancelling_leaves_nothing_marked_done() {
    let station = TestStation::new();
    let reader = virtual_reader();
    let err = enroll(
        reader.clone(),
        &request(Slot::CardAuthentication),
        &station.ctx(),
        &mut |s| {
            if s == EnrollStep::Write {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    )
    .unwrap_err();
    assert!(matches!(err, EnrollError::Cancelled(EnrollStep::Write)));
    let recs = station.store.enrollments(10).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].state, EnrollmentState::Failed);
    assert!(station
        .store
        .audit_rows()
        .unwrap()
        .iter()
        .any(|r| r.outcome == "interrupted"));
}

/// Fail every APDU of an enrollment in turn: each run ends in a clear error, nothing
/// unverified is recorded as enrolled, and the same card then enrols with --force.
#[test]
fn enrollment_survives_a_fault_at_every_apdu() {
    let station = TestStation::new();
    let total = {
        let reader = virtual_reader();
        enroll(
            reader,
            &request(Slot::CardAuthentication),
            &station.ctx(),
            &mut go,
        )
        .unwrap()
        .apdus
    };
    for fault in [
        Fault::CardRemoved,
        Fault::TransmitError,
        Fault::Garbage,
        Fault::Truncated,
    ] {
        for k in 1..=total {
            let station = TestStation::new();
            let reader = virtual_reader();
            let faulty = FaultyTransport::new(reader.clone(), k, fault);
            let result = enroll(
                faulty,
                &request(Slot::CardAuthentication),
                &station.ctx(),
                &mut go,
            );
            let enrolled_rows = station
                .store
                .enrollments(10)
                .unwrap()
                .into_iter()
                .filter(|r| r.state == EnrollmentState::Enrolled)
                .count();
            match &result {
                Ok(_) => assert_eq!(enrolled_rows, 1),
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    assert_eq!(enrolled_rows, 0, "fault {fault:?} at {k}: {e}");
                }
            }
            let mut req = request(Slot::CardAuthentication);
            req.force = true;
            enroll(reader, &req, &station.ctx(), &mut go)
                .unwrap_or_else(|e| panic!("re-enrollment after {fault:?} at APDU {k}: {e}"));
        }
    }
}

/// The same sweep for a replacement: whatever APDU fails, nothing unverified is
/// recorded as enrolled, the replacement is never linked half-done, and the
/// replacement then succeeds on the same card.
#[test]
fn replacement_survives_a_fault_at_every_apdu() {
    use cardstation::app::replace::{replace, ReplaceRequest};
    let total = {
        let station = TestStation::new();
        let old = enroll(
            virtual_reader(),
            &request(Slot::CardAuthentication),
            &station.ctx(),
            &mut go,
        )
        .unwrap();
        let req = ReplaceRequest {
            old_fingerprint: old.fingerprint,
            reason: cardstation_protocol::messages::RevocationReason::Lost,
            enroll: request(Slot::CardAuthentication),
            subject_override: None,
            old_record: None,
        };
        replace(virtual_reader(), &req, &station.ctx(), &mut go)
            .unwrap()
            .enrollment
            .apdus
    };
    for fault in [Fault::CardRemoved, Fault::Garbage] {
        for k in 1..=total + 2 {
            let station = TestStation::new();
            let old = enroll(
                virtual_reader(),
                &request(Slot::CardAuthentication),
                &station.ctx(),
                &mut go,
            )
            .unwrap();
            let new_card = virtual_reader();
            let req = ReplaceRequest {
                old_fingerprint: old.fingerprint.clone(),
                reason: cardstation_protocol::messages::RevocationReason::Lost,
                enroll: request(Slot::CardAuthentication),
                subject_override: None,
                old_record: None,
            };
            let result = replace(
                FaultyTransport::new(new_card.clone(), k, fault),
                &req,
                &station.ctx(),
                &mut go,
            );
            let enrolled = station
                .store
                .enrollments(50)
                .unwrap()
                .into_iter()
                .filter(|r| r.state == EnrollmentState::Enrolled)
                .count();
            match &result {
                Ok(_) => assert_eq!(enrolled, 2),
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    assert_eq!(enrolled, 1, "fault {fault:?} at {k}: {e}");
                    assert_eq!(
                        station.store.replacement_of(&old.fingerprint).unwrap(),
                        None
                    );
                }
            }
            let mut again = req;
            again.enroll.force = true;
            let done = replace(new_card, &again, &station.ctx(), &mut go)
                .unwrap_or_else(|e| panic!("replacement after {fault:?} at APDU {k}: {e}"));
            assert_eq!(
                station
                    .store
                    .replacement_of(&old.fingerprint)
                    .unwrap()
                    .as_deref(),
                Some(done.new_fingerprint.as_str())
            );
        }
    }
}
