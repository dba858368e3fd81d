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
        require_attestation: false,
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
            require_attestation: false,
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

/// A gateway or station that followed the console by deltas judges every card
/// exactly as one that downloaded each full bundle.
#[test]
fn verdicts_from_lists_built_by_deltas_equal_those_from_full_bundles() {
    use cardstation_protocol::bundle::{
        advance, open, sign_delta, sign_full, Advance, Header, Link, TrustView,
    };
    use cardstation_protocol::trust_lists::{fingerprint_from_hex, Revocation, TrustLists};

    let station = TestStation::new();
    let reader = virtual_reader();
    let outcome = enroll(
        reader.clone(),
        &request(Slot::CardAuthentication),
        &station.ctx(),
        &mut |_| ControlFlow::Continue(()),
    )
    .expect("enrollment");
    let card = fingerprint_from_hex(&outcome.fingerprint).unwrap();
    let key = fingerprint_from_hex(
        &cardstation_pki::rules::public_key_sha256(&outcome.certificate_der).unwrap(),
    )
    .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let revoked = |fp| Revocation {
        fp,
        reason: "stolen".into(),
        at: now,
    };
    // The console's history: others come and go; the card is allowed, revoked (with
    // its key), reinstated, and its key revoked under another certificate.
    let history = [
        TrustLists::from_unsorted(vec![[1; 32]], vec![], vec![]),
        TrustLists::from_unsorted(vec![[1; 32], card], vec![], vec![]),
        TrustLists::from_unsorted(vec![[2; 32]], vec![revoked(card)], vec![key]),
        TrustLists::from_unsorted(vec![[2; 32], card], vec![], vec![]),
        TrustLists::from_unsorted(vec![card], vec![revoked([3; 32])], vec![key]),
    ];
    let signer = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let vk = *signer.verifying_key();
    let mut headers: Vec<Header> = Vec::new();
    for (i, lists) in history.iter().enumerate() {
        let prev = headers.last().map_or([0; 32], |h| h.hash());
        headers.push(Header::for_lists(
            [7; 16],
            i as u64 + 1,
            now,
            now + 3600,
            prev,
            lists,
        ));
    }
    let judge = |lists: &TrustLists| {
        let status = TrustView::of(headers[0], lists.clone()).status(now, now, "k");
        let policy = Policy {
            bundle: Some((lists, &status)),
            issuing_ca: None,
            now,
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
        (check.verdict, codes)
    };
    let link = |h: &Header| Link {
        version: h.version,
        hash: h.hash(),
    };
    let first = sign_full(&headers[0], &history[0], &[link(&headers[0])], &signer).unwrap();
    let Advance::Advanced { view, .. } =
        advance(None, None, open(&first, &vk).unwrap(), None).unwrap()
    else {
        panic!("the first version is taken");
    };
    let mut by_delta = view;
    let mut verdicts = Vec::new();
    for i in 1..history.len() {
        let d = sign_delta(
            &headers[i],
            link(&headers[i - 1]),
            &history[i - 1].diff(&history[i]),
            &signer,
        )
        .unwrap();
        let Advance::Advanced { view, .. } =
            advance(Some(&by_delta), None, open(&d, &vk).unwrap(), None).unwrap()
        else {
            panic!("version {} is taken", i + 1);
        };
        by_delta = view;
        let full = judge(&history[i]);
        assert_eq!(judge(&by_delta.lists), full, "version {}", i + 1);
        verdicts.push(full);
    }
    // The history exercised every verdict the lists can give.
    let codes: Vec<Vec<String>> = verdicts.iter().map(|(_, c)| c.clone()).collect();
    assert_eq!(
        codes,
        [
            vec![],
            vec!["revoked".to_string()],
            vec![],
            vec!["key-revoked".to_string()]
        ]
    );
}
