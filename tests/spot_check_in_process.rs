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
