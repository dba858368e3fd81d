//! Spot checks against the in-process virtual card, with a fault at every APDU.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::ops::ControlFlow;

use cardstation::app::enroll::enroll;
use cardstation::app::spot_check::{spot_check, ChallengeBook, Policy, Verdict};
use cardstation_piv::Slot;

use common::{request, virtual_reader, Fault, FaultyTransport, TestStation};

#[test]
fn a_card_that_answers_garbage_fails_with_a_message_and_never_passes() {
    let station = TestStation::new();
    let reader = virtual_reader();
    enroll(
        reader.clone(),
        &request(Slot::CardAuthentication),
        &station.ctx(),
        &mut |_| ControlFlow::Continue(()),
    )
    .expect("enrollment");
    let policy = Policy {
        bundle: None,
        issuing_ca: None,
        now: time::OffsetDateTime::now_utc().unix_timestamp(),
    };
    let mut book = ChallengeBook::default();
    let (clean, _) = spot_check(
        reader.clone(),
        Slot::CardAuthentication,
        None,
        &policy,
        &mut book,
    );
    assert_eq!(clean.verdict, Verdict::TrustUnknown, "{clean:?}");
    for fault in [
        Fault::Garbage,
        Fault::Truncated,
        Fault::CardRemoved,
        Fault::TransmitError,
    ] {
        for k in 1..=clean.apdus {
            let faulty = FaultyTransport::new(reader.clone(), k, fault);
            let (check, _) = spot_check(faulty, Slot::CardAuthentication, None, &policy, &mut book);
            assert_eq!(
                check.verdict,
                Verdict::Fail,
                "{fault:?} at APDU {k}: {check:?}"
            );
            let reason = check.failures().next().expect("a reason");
            assert!(!reason.message.is_empty());
        }
    }
}

#[test]
fn a_revoked_key_fails_even_under_a_certificate_still_on_the_allow_list() {
    use cardstation_protocol::bundle::{Header, TrustView};
    use cardstation_protocol::trust_lists::{fingerprint_from_hex, TrustLists};

    let station = TestStation::new();
    let reader = virtual_reader();
    let outcome = enroll(
        reader.clone(),
        &request(Slot::CardAuthentication),
        &station.ctx(),
        &mut |_| ControlFlow::Continue(()),
    )
    .expect("enrollment");
    let key = cardstation_pki::rules::public_key_sha256(&outcome.certificate_der).expect("key");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let judge = |revoked_keys: Vec<String>| {
        let fp = |h: &str| fingerprint_from_hex(h).expect("hex fingerprint");
        let lists = TrustLists::from_unsorted(
            vec![fp(&outcome.fingerprint)],
            vec![],
            revoked_keys.iter().map(|k| fp(k)).collect(),
        );
        let header = Header::for_lists([1; 16], 7, now, now + 3600, [0; 32], &lists);
        let view = TrustView::of(header, lists);
        let status = view.status(now, now, "k");
        let policy = Policy {
            bundle: Some((&view.lists, &status)),
            issuing_ca: None,
            now,
        };
        spot_check(
            reader.clone(),
            Slot::CardAuthentication,
            None,
            &policy,
            &mut ChallengeBook::default(),
        )
        .0
    };
    assert_eq!(judge(vec![]).verdict, Verdict::Pass);
    // Another certificate of the same key was revoked: the key itself is refused.
    let check = judge(vec![key]);
    assert_eq!(check.verdict, Verdict::Fail, "{check:?}");
    assert!(
        check.failures().any(|f| f.code == "key-revoked"),
        "{check:?}"
    );
}
