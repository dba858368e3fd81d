//! The card attests keys it generated, as a YubiKey does, and nothing else. Checked with
//! the station's own PIV session and the console's attestation verifier.

use std::sync::Arc;

use cardstation_card::apdu::StatusWord;
use cardstation_piv::{Algorithm, Attestation, ManagementKey, PivSession, Slot};
use cardstation_pki::attestation::{verify, AttestedKey, Evidence, Expected};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePublicKey;

use super::*;
use crate::{CardStorage, VirtualCard, VirtualReader};

fn session(card: &Arc<VirtualCard>) -> PivSession<VirtualReader> {
    let mut s = PivSession::open(VirtualReader::new(card.clone(), "test")).unwrap();
    s.select().unwrap();
    s
}

fn admin(s: &mut PivSession<VirtualReader>) {
    let key = ManagementKey::factory_default(Algorithm::TripleDes).unwrap();
    s.authenticate(&key).unwrap();
}

fn spki_sha256(key: &p256::PublicKey) -> String {
    let der = key.to_public_key_der().unwrap();
    hex::encode(Sha256::digest(der.as_bytes()))
}

fn evidence(s: &mut PivSession<VirtualReader>, slot: Slot) -> Evidence {
    let Attestation::Certificate(attestation) = s.attest(slot).unwrap() else {
        panic!("slot {slot:?} not attested");
    };
    Evidence {
        attestation,
        intermediate: s.read_attestation_certificate().unwrap().unwrap(),
    }
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

#[test]
fn a_generated_key_is_attested_under_the_test_root_with_the_cards_facts() {
    let card = Arc::new(VirtualCard::start(CardStorage::Memory).unwrap());
    let mut s = session(&card);
    admin(&mut s);
    let key = s.generate_p256(Slot::Authentication).unwrap();
    let ev = evidence(&mut s, Slot::Authentication);
    let root = TestRoot::fixed().unwrap();
    let verified = verify(
        &ev,
        &[root.certificate().to_vec()],
        &Expected {
            key_sha256: &spki_sha256(&key),
            card_serial: s.serial().unwrap(),
            slot: Some("9a"),
            now: now(),
        },
    )
    .unwrap();
    let facts = &verified.key;
    assert_eq!(facts.card_serial, Some(SERIAL));
    assert_eq!(facts.firmware, Some(FIRMWARE));
    assert_eq!(facts.slot.as_deref(), Some("9a"));
    assert_eq!(facts.pin_policy, Some(cardstation_piv::PinPolicy::Once));
    assert_eq!(
        facts.touch_policy,
        Some(cardstation_piv::TouchPolicy::Never)
    );
    assert_eq!(facts.public_key, Some(key));
    assert!(verified.root.contains("TEST ONLY"), "{}", verified.root);

    // 9E needs no PIN, and says so.
    let key_9e = s.generate_p256(Slot::CardAuthentication).unwrap();
    let facts =
        AttestedKey::parse(&evidence(&mut s, Slot::CardAuthentication).attestation).unwrap();
    assert_eq!(facts.pin_policy, Some(cardstation_piv::PinPolicy::Never));
    assert_eq!(facts.public_key, Some(key_9e));
}

#[test]
fn a_card_started_without_attestation_answers_like_a_card_that_has_none() {
    let options = crate::CardOptions { attestation: false };
    let card = Arc::new(VirtualCard::start_with(CardStorage::Memory, options).unwrap());
    let mut s = session(&card);
    admin(&mut s);
    s.generate_p256(Slot::CardAuthentication).unwrap();
    // piv-authenticator's own answer to ATTEST, for a slot with a key as for any other.
    assert_eq!(
        s.attest(Slot::CardAuthentication).unwrap(),
        Attestation::Refused(StatusWord::REFERENCE_NOT_FOUND)
    );
    assert_eq!(s.read_attestation_certificate().unwrap(), None);
}

#[test]
fn empty_slots_and_the_attestation_slot_itself_are_refused() {
    let card = Arc::new(VirtualCard::start(CardStorage::Memory).unwrap());
    let mut s = session(&card);
    assert_eq!(
        s.attest(Slot::Signature).unwrap(),
        Attestation::Refused(StatusWord::REFERENCE_NOT_FOUND)
    );
    let mut raw = [0x00, 0xF9, 0xF9, 0x00, 0x00];
    let rsp = card.transmit(&raw).unwrap();
    assert_eq!(rsp, vec![0x6A, 0x86], "F9 on the attestation key");
    // A GENERATE the card refuses (no management key) records nothing.
    raw = [0x00, 0x47, 0x00, 0x9A, 0x00];
    let _ = card.transmit(&raw).unwrap();
    assert!(matches!(
        s.attest(Slot::Authentication).unwrap(),
        Attestation::Refused(_)
    ));
}

#[test]
fn every_card_has_its_own_attestation_key_under_the_same_root() {
    let a = Arc::new(VirtualCard::start(CardStorage::Memory).unwrap());
    let b = Arc::new(VirtualCard::start(CardStorage::Memory).unwrap());
    let fa = session(&a).read_attestation_certificate().unwrap().unwrap();
    let fb = session(&b).read_attestation_certificate().unwrap().unwrap();
    assert_ne!(fa, fb);
    // The root is the same bytes wherever it is made.
    assert_eq!(
        TestRoot::fixed().unwrap().certificate(),
        TestRoot::fixed().unwrap().certificate()
    );
}

#[test]
fn a_directory_card_keeps_its_attestation_key_and_what_it_generated() {
    let dir = tempfile::tempdir().unwrap();
    let storage = CardStorage::Directory(dir.path().to_path_buf());
    let (f9, key) = {
        let card = Arc::new(VirtualCard::start(storage.clone()).unwrap());
        let mut s = session(&card);
        admin(&mut s);
        let key = s.generate_p256(Slot::CardAuthentication).unwrap();
        (s.read_attestation_certificate().unwrap().unwrap(), key)
    };
    let card = Arc::new(VirtualCard::start(storage).unwrap());
    let mut s = session(&card);
    let ev = evidence(&mut s, Slot::CardAuthentication);
    assert_eq!(ev.intermediate, f9);
    assert_eq!(
        AttestedKey::parse(&ev.attestation).unwrap().public_key,
        Some(key)
    );
}

/// The layer on its own, with a stand-in application: what puts a key in a slot from
/// outside, or wipes the card, takes away what the card may attest.
mod layer {
    use super::*;

    const POINT_REPLY_PREFIX: [u8; 5] = [0x7F, 0x49, 0x43, 0x86, 0x41];

    fn generate_reply() -> Vec<u8> {
        let key = p256::SecretKey::random(&mut OsRng).public_key();
        let mut reply = POINT_REPLY_PREFIX.to_vec();
        reply.extend_from_slice(key.to_encoded_point(false).as_bytes());
        reply
    }

    fn run(
        attestor: &mut Attestor,
        apdu: &[u8],
        answer: Result<Vec<u8>, Status>,
    ) -> Result<Vec<u8>, Status> {
        let command = CommandView::try_from(apdu).unwrap();
        attestor.respond(command, |_| answer)
    }

    fn attest_9a(attestor: &mut Attestor) -> Result<Vec<u8>, Status> {
        run(
            attestor,
            &[0x00, 0xF9, 0x9A, 0x00, 0x00],
            Err(Status::FunctionNotSupported),
        )
    }

    #[test]
    fn an_imported_key_is_never_attested() {
        let mut attestor = Attestor::open(None).unwrap();
        run(
            &mut attestor,
            &[0x00, 0x47, 0x00, 0x9A, 0x00],
            Ok(generate_reply()),
        )
        .unwrap();
        assert!(attest_9a(&mut attestor).is_ok());
        // IMPORT ASYMMETRIC KEY (P-256 into 9A), which the application accepted.
        run(
            &mut attestor,
            &[0x00, 0xFE, 0x11, 0x9A, 0x01, 0x00],
            Ok(Vec::new()),
        )
        .unwrap();
        assert_eq!(
            attest_9a(&mut attestor),
            Err(Status::IncorrectDataParameter)
        );
    }

    #[test]
    fn a_refused_import_changes_nothing_and_a_reset_forgets_every_slot() {
        let mut attestor = Attestor::open(None).unwrap();
        run(
            &mut attestor,
            &[0x00, 0x47, 0x00, 0x9A, 0x00],
            Ok(generate_reply()),
        )
        .unwrap();
        let refused = run(
            &mut attestor,
            &[0x00, 0xFE, 0x11, 0x9A, 0x01, 0x00],
            Err(Status::SecurityStatusNotSatisfied),
        );
        assert_eq!(refused, Err(Status::SecurityStatusNotSatisfied));
        assert!(attest_9a(&mut attestor).is_ok());
        run(&mut attestor, &[0x00, 0xFB, 0x00, 0x00], Ok(Vec::new())).unwrap();
        assert_eq!(attest_9a(&mut attestor), Err(Status::KeyReferenceNotFound));
    }

    #[test]
    fn a_damaged_state_file_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STATE_FILE), b"{not json").unwrap();
        let err = Attestor::open(Some(dir.path())).err().unwrap().to_string();
        assert!(err.contains(STATE_FILE), "{err}");
    }
}
