//! The evidence an attacker could send, refused with the reason; the real thing accepted.
//! Evidence is made by the virtual card's attestation code (the card's firmware).

use cardstation_virtual_card::attestation::{AttestedFacts, CardAttestationKey, TestRoot};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePublicKey;
use sha2::{Digest, Sha256};

use super::*;

const NOW: i64 = 1_800_000_000; // 2027-01-15

fn now_dt() -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(NOW - 86_400 * 30).unwrap()
}

fn facts() -> AttestedFacts {
    AttestedFacts {
        serial: 5_437_251,
        firmware: (5, 7, 1),
        pin_policy: 2,
        touch_policy: 1,
        form_factor: 0x83,
    }
}

struct Card {
    f9: CardAttestationKey,
}

impl Card {
    fn under(root: &TestRoot) -> Self {
        Card {
            f9: root.new_card_key(now_dt()).unwrap(),
        }
    }

    /// What a station would send: `attestation` with this card's F9 certificate.
    fn evidence(&self, attestation: Vec<u8>) -> Evidence {
        Evidence {
            attestation,
            intermediate: self.f9.certificate().to_vec(),
        }
    }

    /// A key "generated" in `slot` and the attestation for it.
    fn attest(&self, slot: u8, facts: &AttestedFacts) -> (p256::PublicKey, Vec<u8>) {
        let key = p256::SecretKey::random(&mut rand::rngs::OsRng).public_key();
        let point = key.to_encoded_point(false);
        (key, self.f9.attest(slot, point.as_bytes(), facts).unwrap())
    }
}

fn key_sha256(key: &p256::PublicKey) -> String {
    hex::encode(Sha256::digest(key.to_public_key_der().unwrap().as_bytes()))
}

fn expected(key: &str) -> Expected<'_> {
    Expected {
        key_sha256: key,
        card_serial: Some(5_437_251),
        slot: Some("9a"),
        now: NOW,
    }
}

fn reason(r: Result<VerifiedAttestation, AttestationError>) -> String {
    r.expect_err("must be refused").0
}

#[test]
fn a_cards_attestation_under_a_trusted_root_is_accepted_with_its_facts() {
    let root = TestRoot::generate("Site Attestation Root").unwrap();
    let card = Card::under(&root);
    let (key, attestation) = card.attest(0x9a, &facts());
    let ev = card.evidence(attestation);
    let sha = key_sha256(&key);
    let v = verify(&ev, &[root.certificate().to_vec()], &expected(&sha)).unwrap();
    assert_eq!(v.root, "CN=Site Attestation Root");
    assert_eq!(v.key.card_serial, Some(5_437_251));
    assert_eq!(v.key.firmware, Some((5, 7, 1)));
    assert_eq!(v.key.pin_policy, Some(PinPolicy::Once));
    assert_eq!(v.key.touch_policy, Some(TouchPolicy::Never));
    assert_eq!(v.key.form_factor, Some(FormFactor(0x83)));
    assert_eq!(
        v.key.describe(),
        "card serial 5437251, firmware 5.7.1, PIN policy once, touch policy never, USB-C keychain, FIPS"
    );
    // Among other roots, the right one is found.
    let other = TestRoot::generate("Other Root").unwrap();
    let roots = [other.certificate().to_vec(), root.certificate().to_vec()];
    assert!(verify(&ev, &roots, &expected(&sha)).is_ok());
}

#[test]
fn a_software_key_with_an_attestation_from_an_untrusted_root_is_refused() {
    let site = TestRoot::generate("Site Attestation Root").unwrap();
    let attacker = TestRoot::generate("Attacker Root").unwrap();
    let card = Card::under(&attacker);
    let (key, attestation) = card.attest(0x9a, &facts());
    let ev = card.evidence(attestation);
    let why = reason(verify(
        &ev,
        &[site.certificate().to_vec()],
        &expected(&key_sha256(&key)),
    ));
    assert!(
        why.contains("not among this site's attestation roots"),
        "{why}"
    );
}

#[test]
fn a_root_of_the_same_name_with_another_key_is_a_forgery() {
    let site = TestRoot::generate("Yubico PIV Root CA Serial 263751").unwrap();
    let forger = TestRoot::generate("Yubico PIV Root CA Serial 263751").unwrap();
    let card = Card::under(&forger);
    let (key, attestation) = card.attest(0x9a, &facts());
    let ev = card.evidence(attestation);
    let why = reason(verify(
        &ev,
        &[site.certificate().to_vec()],
        &expected(&key_sha256(&key)),
    ));
    assert!(why.contains("did not sign it (forged)"), "{why}");
}

#[test]
fn an_attestation_for_another_key_is_refused() {
    let root = TestRoot::generate("Site Attestation Root").unwrap();
    let card = Card::under(&root);
    let (_attested, attestation) = card.attest(0x9a, &facts());
    let software = p256::SecretKey::random(&mut rand::rngs::OsRng).public_key();
    let ev = card.evidence(attestation);
    let why = reason(verify(
        &ev,
        &[root.certificate().to_vec()],
        &expected(&key_sha256(&software)),
    ));
    assert!(why.contains("another key"), "{why}");
}

#[test]
fn an_f9_certificate_from_another_card_is_refused() {
    let root = TestRoot::generate("Site Attestation Root").unwrap();
    let (a, b) = (Card::under(&root), Card::under(&root));
    let (key, attestation) = a.attest(0x9a, &facts());
    let ev = b.evidence(attestation);
    let why = reason(verify(
        &ev,
        &[root.certificate().to_vec()],
        &expected(&key_sha256(&key)),
    ));
    assert!(
        why.contains("not signed by the card's F9 attestation key"),
        "{why}"
    );
}

#[test]
fn the_serial_and_slot_must_be_the_ones_the_upload_names() {
    let root = TestRoot::generate("Site Attestation Root").unwrap();
    let card = Card::under(&root);
    let (key, attestation) = card.attest(0x9e, &facts());
    let ev = card.evidence(attestation);
    let roots = [root.certificate().to_vec()];
    let sha = key_sha256(&key);
    let mut exp = expected(&sha);
    exp.slot = Some("9e");
    exp.card_serial = Some(1);
    assert!(reason(verify(&ev, &roots, &exp)).contains("card serial 5437251"));
    exp.card_serial = Some(5_437_251);
    exp.slot = Some("9a");
    assert!(reason(verify(&ev, &roots, &exp)).contains("slot 9e"));
    exp.slot = Some("9E");
    assert!(verify(&ev, &roots, &exp).is_ok());
}

#[test]
fn a_clock_outside_the_certificates_validity_refuses_and_says_when() {
    let root = TestRoot::generate("Site Attestation Root").unwrap();
    let card = Card::under(&root);
    let (key, attestation) = card.attest(0x9a, &facts());
    let ev = card.evidence(attestation);
    let sha = key_sha256(&key);
    let mut exp = expected(&sha);
    exp.now = 4_200_000_000; // 2103
    let why = reason(verify(&ev, &[root.certificate().to_vec()], &exp));
    assert!(why.contains("expired on 2100-01-01"), "{why}");
    exp.now = 0;
    assert!(reason(verify(&ev, &[root.certificate().to_vec()], &exp)).contains("valid only from"));
}

#[test]
fn no_roots_garbage_and_hostile_names_are_refused_without_panicking() {
    let root = TestRoot::generate("Site Attestation Root").unwrap();
    let card = Card::under(&root);
    let (key, attestation) = card.attest(0x9a, &facts());
    let sha = key_sha256(&key);
    let ev = Evidence {
        attestation: attestation.clone(),
        intermediate: card.f9.certificate().to_vec(),
    };
    assert!(reason(verify(&ev, &[], &expected(&sha))).contains("trusts no attestation root"));
    for junk in [
        vec![],
        vec![0x30],
        vec![0x30; 5000],
        attestation[..attestation.len() / 2].to_vec(),
    ] {
        let ev = Evidence {
            attestation: junk.clone(),
            intermediate: card.f9.certificate().to_vec(),
        };
        assert!(verify(&ev, &[root.certificate().to_vec()], &expected(&sha)).is_err());
        assert!(AttestedKey::parse(&junk).is_err());
    }
    // A root name full of control characters and 2,000 characters long: the message
    // stays one printable line of bounded length.
    let hostile = format!("Evil\u{1b}[2J\n{}", "x".repeat(2000));
    let attacker = TestRoot::generate(&hostile).unwrap();
    let evil = Card::under(&attacker);
    let (key, attestation) = evil.attest(0x9a, &facts());
    let ev = evil.evidence(attestation);
    let why = reason(verify(
        &ev,
        &[root.certificate().to_vec()],
        &expected(&key_sha256(&key)),
    ));
    assert!(!why.chars().any(char::is_control), "{why:?}");
    assert!(why.len() < 400, "{}", why.len());
}

#[test]
fn the_extensions_are_read_as_untrusted_bytes() {
    assert_eq!(der_u32(&[0x02, 0x01, 0x05]), Some(5));
    assert_eq!(
        der_u32(&[0x02, 0x05, 0x00, 0xFF, 0xFF, 0xFF, 0xFF]),
        Some(u32::MAX)
    );
    assert_eq!(der_u32(&[0x02, 0x09, 1, 2, 3, 4, 5, 6, 7, 8, 9]), None);
    assert_eq!(der_u32(&[0x02, 0x01, 0xFF]), None, "negative");
    assert_eq!(der_u32(&[0x04, 0x01, 0x05]), None, "not an INTEGER");
    assert_eq!(der_u32(&[0x02, 0x01, 0x05, 0x00]), None, "trailing byte");
}
