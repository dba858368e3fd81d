//! Keys proven to be born on a card, end to end: the virtual card attests through the real
//! pcscd (cross-checked with yubico-piv-tool and openssl), the station sends the proof
//! with its upload, and a console that requires attestation takes the card and refuses
//! what an attacker holding the station's credential sends instead, with the reason and
//! nothing stored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod console_support;
mod pcscd;

use std::path::Path;
use std::process::Command;

use cardstation::console::ConsoleError;
use cardstation_pki::attestation::AttestedKey;
use cardstation_pki::certificate::{from_pem_or_der, to_pem};
use cardstation_pki::CertificateInfo;
use cardstation_protocol::messages::{AttestationEvidence, UploadRequest};
use cardstation_virtual_card::attestation::{AttestedFacts, TestRoot, SERIAL};
use p256::elliptic_curve::sec1::ToEncodedPoint;

use console_support::{device_params, Backend, Site, Station};
use pcscd::{exclusive, pcscd_or_skip, tool, CardProcess, StationDir, PORT_0, READER_0};

/// The virtual cards' attestation root, as `cardstation virtual-card attestation-root`
/// prints it (what an operator puts into a test console's roots).
fn virtual_root_pem() -> String {
    let out = Command::new(pcscd::cardstation_bin())
        .args(["virtual-card", "attestation-root"])
        .output()
        .expect("cardstation virtual-card attestation-root");
    assert!(out.status.success());
    String::from_utf8(out.stdout).expect("PEM")
}

fn roots_dir_with(pem: &str) -> impl FnOnce(&Path) + '_ {
    move |data: &Path| {
        let dir = data.join("attestation-roots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("virtual-cards.pem"), pem).unwrap();
    }
}

/// A site whose console trusts the virtual cards' attestation root, with `settings` in
/// console.toml (after `ca init` when `ca`), and a station added to it ("desk-a").
fn site_trusting_virtual_cards(settings: &str, ca: bool) -> (Site, Station) {
    let root = virtual_root_pem();
    let roots = roots_dir_with(&root);
    let site = Site::start_after(Backend::Sqlite, settings, &[], |data| {
        if ca {
            cardstation_test_site::site::ca_init(data, "Plant B device CA");
        }
        roots(data);
    });
    let (_kit, desk) = Station::added_to(&site, "desk-a");
    (site, desk)
}

/// `enroll --upload --json` on the card in READER_0: the exit code and the answer.
fn enroll_and_upload(desk: &Station) -> (Option<i32>, serde_json::Value) {
    let out = desk.run(&["enroll", "--reader", READER_0, "--upload", "--json"]);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "enroll: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), v)
}

/// The card's own evidence for 9e, read with yubico-piv-tool.
fn evidence_from_the_card() -> AttestationEvidence {
    let pem = |args: &[&str]| String::from_utf8(tool("yubico-piv-tool", args)).expect("PEM");
    AttestationEvidence {
        attestation: pem(&["-r", READER_0, "-a", "attest", "-s", "9e"]),
        intermediate: pem(&["-r", READER_0, "-a", "read-certificate", "-s", "f9"]),
    }
}

#[test]
fn independent_clients_attest_what_the_station_generated_and_openssl_verifies_the_chain() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let card = CardProcess::start(PORT_0, None);
    let station = StationDir::new();
    let out = station.path("card.pem");
    let v = station.json(&[
        "enroll",
        "--reader",
        READER_0,
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(v["ok"], true, "{v}");
    let proof = &v["enrollment"]["key_proof"];
    assert_eq!(proof["state"], "attested", "{v}");
    assert_eq!(proof["facts"]["card_serial"], SERIAL, "{v}");
    assert_eq!(
        proof["facts"]["pin_policy"], "never",
        "9e asks for no PIN: {v}"
    );

    // yubico-piv-tool gets the same proof from the card, and openssl checks the chain
    // root → the card's F9 certificate → the attestation.
    let ev = evidence_from_the_card();
    let cert =
        CertificateInfo::parse(&from_pem_or_der(&std::fs::read(&out).unwrap()).unwrap()).unwrap();
    let attested =
        AttestedKey::parse(&from_pem_or_der(ev.attestation.as_bytes()).unwrap()).unwrap();
    assert_eq!(
        attested.key_sha256, cert.key_sha256,
        "the attested key is the certificate's"
    );
    let dir = tempfile::tempdir().unwrap();
    for (name, pem) in [
        ("root.pem", virtual_root_pem()),
        ("f9.pem", ev.intermediate.clone()),
        ("attestation.pem", ev.attestation.clone()),
    ] {
        std::fs::write(dir.path().join(name), pem).unwrap();
    }
    let verified = Command::new("openssl")
        .current_dir(dir.path())
        .args([
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "f9.pem",
            "attestation.pem",
        ])
        .output()
        .expect("openssl");
    assert!(
        verified.status.success(),
        "openssl verify: {}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );

    // The card report says so per slot; an empty slot is not attested by anyone.
    let report = station.json(&["card", "--reader", READER_0, "--json"]);
    let slots = report["slots"].as_array().expect("slots");
    let slot_9e = slots.iter().find(|s| s["slot"] == "9e").expect("9e");
    assert_eq!(slot_9e["key_proof"]["state"], "attested", "{report}");
    let text = String::from_utf8(station.run(&["card", "--reader", READER_0]).stdout).unwrap();
    assert!(
        text.contains("key       the card attests it generated this key (card serial 5437251"),
        "{text}"
    );
    let empty = Command::new("yubico-piv-tool")
        .args(["-r", READER_0, "-a", "attest", "-s", "9a"])
        .output()
        .unwrap();
    assert!(!empty.status.success(), "an empty slot is not attested");
    card.stop();
}

fn refusal<T: std::fmt::Debug>(r: Result<T, ConsoleError>) -> (u16, String, String) {
    match r {
        Err(ConsoleError::Rejected {
            status,
            code,
            message,
        }) => (status, code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A certificate for a key made in software, and that key's public point.
fn software_certificate(name: &str) -> (String, Vec<u8>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = device_params(name).self_signed(&key).unwrap();
    let info = CertificateInfo::parse(cert.der()).unwrap();
    let point = info
        .public_key
        .unwrap()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec();
    (cert.pem(), point)
}

fn upload(pem: String, evidence: Option<AttestationEvidence>, serial: u32) -> UploadRequest {
    UploadRequest {
        certificate: pem,
        card_serial: Some(serial),
        chuid_guid: None,
        slot: Some("9e".into()),
        label: None,
        operator: "op".into(),
        station_id: "desk-a".into(),
        attestation: evidence,
    }
}

fn facts() -> AttestedFacts {
    AttestedFacts {
        serial: SERIAL,
        firmware: (5, 7, 1),
        pin_policy: 2,
        touch_policy: 1,
        form_factor: 1,
    }
}

#[test]
fn a_console_that_requires_attestation_takes_the_card_and_refuses_an_attackers_keys() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let (site, desk) =
        site_trusting_virtual_cards("[attestation]\nrequire_attestation = true\n", false);
    let card = CardProcess::start(PORT_0, None);

    // The operator's way: enroll and upload. The console verifies and keeps the proof.
    let (code, v) = enroll_and_upload(&desk);
    assert_eq!((code, &v["ok"]), (Some(0), &serde_json::json!(true)), "{v}");
    let fp = v["enrollment"]["fingerprint"].as_str().unwrap().to_string();
    let rec = desk.client().get(&fp).expect("record at the console");
    let att = rec.attestation.expect("the record carries its attestation");
    assert_eq!(att.card_serial, Some(SERIAL));
    assert_eq!(att.pin_policy.as_deref(), Some("never"));
    assert!(att.root.contains("TEST ONLY"), "{}", att.root);
    let shown = site.admin_ok(&["cards", "show", &fp]);
    assert!(
        shown.contains("Key          generated on the card: attested (card serial 5437251"),
        "{shown}"
    );
    assert_eq!(site.console.records(), 1);
    // Found by it, from the station and at the console.
    let found = desk.json(&["cards", "--attested", "--json"]);
    assert_eq!(found["records"][0]["sha256"], fp.as_str(), "{found}");
    let none = desk.json(&["cards", "--unattested", "--json"]);
    assert_eq!(none["records"], serde_json::json!([]), "{none}");
    let listed = site.admin_ok(&["cards", "list", "--attested"]);
    assert!(listed.contains(&fp[..16]), "{listed}");

    // What an attacker holding desk-a's credential sends, each refused with its reason.
    let client = desk.client();
    let card_evidence = evidence_from_the_card();
    let card_cert = to_pem(
        &from_pem_or_der(&tool(
            "yubico-piv-tool",
            &["-r", READER_0, "-a", "read-certificate", "-s", "9e"],
        ))
        .unwrap(),
    );

    // 1. A software key, no proof.
    let (sw_pem, sw_point) = software_certificate("sw-1");
    let (status, code, message) = refusal(client.upload(&upload(sw_pem.clone(), None, SERIAL)));
    assert_eq!(
        (status, code.as_str()),
        (422, "attestation-required"),
        "{message}"
    );

    // 2. A software key "attested" under a root of the same name the site does not hold.
    let forger =
        TestRoot::generate("Cardstation Virtual Card Attestation Root (TEST ONLY)").unwrap();
    let forged_f9 = forger
        .new_card_key(time::OffsetDateTime::now_utc())
        .unwrap();
    let forged = AttestationEvidence {
        attestation: to_pem(&forged_f9.attest(0x9e, &sw_point, &facts()).unwrap()),
        intermediate: to_pem(forged_f9.certificate()),
    };
    let (status, code, message) =
        refusal(client.upload(&upload(sw_pem.clone(), Some(forged.clone()), SERIAL)));
    assert_eq!((status, code.as_str()), (422, "attestation-invalid"));
    assert!(message.contains("forged"), "{message}");

    // 3. The card's genuine attestation, sent with the software key's certificate.
    let (status, code, message) =
        refusal(client.upload(&upload(sw_pem.clone(), Some(card_evidence.clone()), SERIAL)));
    assert_eq!((status, code.as_str()), (422, "attestation-invalid"));
    assert!(message.contains("another key"), "{message}");

    // 4. An attestation signed by the forger's F9 key, presented with the real card's
    //    F9 certificate (which chains to the trusted root).
    let spliced = AttestationEvidence {
        attestation: forged.attestation.clone(),
        intermediate: card_evidence.intermediate.clone(),
    };
    let (status, code, message) = refusal(client.upload(&upload(sw_pem, Some(spliced), SERIAL)));
    assert_eq!((status, code.as_str()), (422, "attestation-invalid"));
    assert!(
        message.contains("not signed by the card's F9 attestation key"),
        "{message}"
    );

    // The card's own certificate again, without its proof: the record held (uploads
    // are idempotent; its proof was judged when it came).
    let again = client
        .upload(&upload(card_cert, None, SERIAL))
        .expect("the held record");
    assert!(again.attestation.is_some());

    // The card enrolled again, its certificate kept in a file for later.
    let later = desk.dir.path().join("later.pem");
    let out = desk.run(&[
        "enroll",
        "--reader",
        READER_0,
        "--force",
        "--out",
        later.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let later_pem = std::fs::read_to_string(&later).unwrap();

    // 5. That certificate with the card's genuine proof, claimed for another card.
    let (status, code, message) = refusal(client.upload(&upload(
        later_pem.clone(),
        Some(evidence_from_the_card()),
        1234,
    )));
    assert_eq!((status, code.as_str()), (422, "attestation-invalid"));
    assert!(message.contains("card serial 5437251"), "{message}");
    assert_eq!(
        site.console.records(),
        1,
        "nothing an attacker sent was stored"
    );

    // The operator uploads the file: the proof kept with the enrollment goes with it.
    let v = desk.json(&["upload", later.to_str().unwrap(), "--json"]);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["sync"]["delivered"], 1, "{v}");
    let fp_later = v["queued"].as_str().unwrap().to_string();
    assert!(desk.client().get(&fp_later).unwrap().attestation.is_some());
    assert_eq!(site.console.records(), 2);
    card.stop();
}

#[test]
fn a_site_that_requires_attestation_refuses_a_card_that_cannot_attest_before_changing_it() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let (site, desk) =
        site_trusting_virtual_cards("[attestation]\nrequire_attestation = true\n", false);
    // A PIV card without attestation, as most cards that are not YubiKeys are.
    let card = CardProcess::start_with(PORT_0, None, &["--without-attestation"]);
    let (code, v) = enroll_and_upload(&desk);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["error"]["code"], "attestation-required", "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("this card does not attest"), "{message}");
    assert!(
        message.contains("Nothing was changed on the card"),
        "{message}"
    );

    // Nothing was changed: the slot is empty, the card keeps its factory management
    // key, the station started no enrollment and the console holds nothing.
    let report = desk.json(&["card", "--reader", READER_0, "--json"]);
    let slot_9e = report["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .find(|s| s["slot"] == "9e")
        .expect("9e")
        .clone();
    assert!(slot_9e["certificate"].is_null(), "{report}");
    assert_eq!(report["management_key"]["is_default"], true, "{report}");
    assert_eq!(desk.json(&["enrollments", "--json"]), serde_json::json!([]));
    assert_eq!(site.console.records(), 0);
    // The field check says the same before anyone tries.
    let doctor = desk.run(&["doctor", "--reader", READER_0]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert_eq!(doctor.status.code(), Some(1), "{text}");
    assert!(
        text.contains("the card cannot attest its keys (PIV attestation), and this site's console accepts only attested keys"),
        "{text}"
    );

    // Where no console asks for it, the card enrolls, and the station says the key is
    // not proven (rather than "no key").
    let offline = StationDir::new();
    let v = offline.json(&["enroll", "--reader", READER_0, "--json"]);
    assert_eq!(
        v["enrollment"]["key_proof"]["state"], "not-supported",
        "{v}"
    );
    card.stop();

    // The same station enrolls a card that attests (the rule was learned, not assumed).
    let card = CardProcess::start(PORT_0, None);
    let (code, v) = enroll_and_upload(&desk);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["enrollment"]["key_proof"]["state"], "attested", "{v}");
    assert_eq!(site.console.records(), 1);
    card.stop();
}

#[test]
fn a_site_policy_on_the_attested_pin_policy_refuses_the_slot_and_says_why() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let (site, desk) = site_trusting_virtual_cards(
        "[attestation]\n[attestation.refuse.\"9e\"]\npin = [\"never\"]\n",
        false,
    );
    let card = CardProcess::start(PORT_0, None);
    let (code, v) = enroll_and_upload(&desk);
    // The card is enrolled, but the console refuses its certificate: the command fails
    // and says why.
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["error"]["code"], "console-rejected", "{v}");
    assert!(v["enrollment"]["fingerprint"].is_string(), "{v}");
    let text = v.to_string();
    assert!(text.contains("attestation-policy"), "{v}");
    assert!(text.contains("PIN policy \\\"never\\\""), "{v}");
    assert_eq!(site.console.records(), 0);
    card.stop();
}

#[test]
fn a_ca_site_requiring_attestation_issues_for_the_attested_card_and_signs_nothing_else() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let (site, desk) = site_trusting_virtual_cards(
        "issuance = \"ca\"\n[attestation]\nrequire_attestation = true\n",
        true,
    );
    let card = CardProcess::start(PORT_0, None);

    // The station's request carries the card's proof; the CA issues.
    let (code, v) = enroll_and_upload(&desk);
    assert_eq!((code, &v["ok"]), (Some(0), &serde_json::json!(true)), "{v}");
    let fp = v["enrollment"]["fingerprint"].as_str().unwrap().to_string();
    let rec = desk.client().get(&fp).expect("record");
    assert_eq!(rec.attestation.expect("attested").card_serial, Some(SERIAL));

    // A software key's request without proof: refused before anything is signed.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sw");
    let request = params.serialize_request(&key).unwrap().pem().unwrap();
    let (status, code, message) = refusal(desk.client().request_certificate(
        &cardstation_protocol::messages::IssueRequest {
            request,
            profile: None,
            card_serial: Some(SERIAL),
            chuid_guid: None,
            slot: Some("9e".into()),
            label: Some("sw".into()),
            operator: "op".into(),
            station_id: "desk-a".into(),
            attestation: None,
        },
    ));
    assert_eq!(
        (status, code.as_str()),
        (422, "attestation-required"),
        "{message}"
    );
    assert_eq!(site.console.records(), 1);
    card.stop();
}
