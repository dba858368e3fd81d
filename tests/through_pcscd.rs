//! End to end through the real pcscd, vsmartcard's vpcd driver and the virtual card,
//! cross-checked with independent PIV clients (yubico-piv-tool, OpenSC).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod pcscd;

use std::process::Command;

use cardstation_pki::certificate::{from_pem_or_der, verify_prehash};
use cardstation_pki::CertificateInfo;
use p256::ecdsa::Signature;
use sha2::{Digest, Sha256};

use pcscd::{
    exclusive, pcscd_or_skip, tool, CardProcess, StationDir, PORT_0, PORT_1, READER_0, READER_1,
};

fn enroll(station: &StationDir, reader: &str, out: &str) -> serde_json::Value {
    let out_path = station.path(out);
    let v = station.json(&[
        "enroll",
        "--reader",
        reader,
        "--subject",
        "CN=gateway {guid},O=Cardstation CI",
        "--days",
        "90",
        "--out",
        out_path.to_str().expect("utf-8 path"),
        "--json",
    ]);
    assert_eq!(v["ok"], true, "{v}");
    v
}

#[test]
fn enrolled_certificate_is_what_independent_clients_read() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let card = CardProcess::start(PORT_0, None);
    let station = StationDir::new();

    let result = enroll(&station, READER_0, "card.pem");
    let fingerprint = result["enrollment"]["fingerprint"]
        .as_str()
        .expect("fingerprint")
        .to_string();
    let exported =
        from_pem_or_der(&std::fs::read(station.path("card.pem")).expect("exported file"))
            .expect("exported PEM");
    let info = CertificateInfo::parse(&exported).expect("exported certificate");
    assert_eq!(info.sha256, fingerprint);
    assert!(
        info.subject.contains("O=Cardstation CI"),
        "{}",
        info.subject
    );

    // yubico-piv-tool reads back exactly the same certificate from slot 9e.
    let pem = tool(
        "yubico-piv-tool",
        &["-r", READER_0, "-a", "read-certificate", "-s", "9e"],
    );
    assert_eq!(
        from_pem_or_der(&pem).expect("yubico-piv-tool PEM"),
        exported
    );

    // OpenSC sees a PIV card with that certificate.
    let listing = String::from_utf8_lossy(&tool(
        "pkcs15-tool",
        &["--reader", READER_0, "--list-certificates"],
    ))
    .into_owned();
    assert!(listing.contains("Card Authentication"), "{listing}");

    // A fresh challenge signed by the card through OpenSC verifies against the exported certificate.
    let challenge: [u8; 32] = rand::random();
    let digest: [u8; 32] = Sha256::digest(challenge).into();
    std::fs::write(station.path("digest.bin"), digest).expect("write digest");
    tool(
        "pkcs15-crypt",
        &[
            "--reader",
            READER_0,
            "--sign",
            "--key",
            "04",
            "--sha-256",
            "--signature-format",
            "openssl",
            "--input",
            station.path("digest.bin").to_str().expect("path"),
            "--output",
            station.path("sig.der").to_str().expect("path"),
        ],
    );
    let sig = Signature::from_der(&std::fs::read(station.path("sig.der")).expect("signature"))
        .expect("DER signature from OpenSC");
    assert!(verify_prehash(
        &info.p256_key().expect("P-256 key"),
        &digest,
        &sig
    ));

    // The station's own view agrees.
    let status = station.json(&["card", "--reader", READER_0, "--json"]);
    let slot = status["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .find(|s| s["slot"] == "9e")
        .expect("slot 9e");
    assert_eq!(slot["certificate"]["sha256"], fingerprint.as_str());
    assert_eq!(status["management_key"]["is_default"], false);
    assert_eq!(status["chuid_guid"], result["enrollment"]["chuid_guid"]);

    // Slot taken: a second enrollment changes nothing and says how to proceed.
    let again = station.run(&["enroll", "--reader", READER_0]);
    assert_eq!(again.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&again.stderr);
    assert!(msg.contains("--force"), "{msg}");

    // The record is in the station database.
    let records = station.json(&["enrollments", "--json"]);
    assert_eq!(records[0]["state"], "enrolled");
    assert_eq!(records[0]["fingerprint"], fingerprint.as_str());
    assert_eq!(
        records[0]["attested"], true,
        "the card's proof is kept: {records}"
    );
    card.stop();
}

#[test]
fn two_readers_are_handled_independently() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let card0 = CardProcess::start(PORT_0, None);
    let card1 = CardProcess::start(PORT_1, None);
    let station = StationDir::new();

    let a = enroll(&station, READER_0, "a.pem");
    let b = enroll(&station, READER_1, "b.pem");
    assert_ne!(
        a["enrollment"]["fingerprint"],
        b["enrollment"]["fingerprint"]
    );
    assert_ne!(a["enrollment"]["chuid_guid"], b["enrollment"]["chuid_guid"]);

    let readers = station.json(&["readers", "--json"]);
    let guid_of = |name: &str| {
        readers
            .as_array()
            .expect("readers")
            .iter()
            .find(|r| r["name"] == name)
            .map(|r| r["card"]["chuid_guid"].clone())
            .expect("reader listed")
    };
    assert_eq!(guid_of(READER_0), a["enrollment"]["chuid_guid"]);
    assert_eq!(guid_of(READER_1), b["enrollment"]["chuid_guid"]);

    // An ambiguous reader name is refused, not guessed.
    let out = station.run(&["card", "--reader", "Virtual PCD"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("more than one reader"));
    card0.stop();
    card1.stop();
}

#[test]
fn card_state_persists_in_a_state_directory() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let state = tempfile::tempdir().expect("state dir");
    let station = StationDir::new();
    let card = CardProcess::start(PORT_0, Some(state.path()));
    let first = enroll(&station, READER_0, "first.pem");
    card.stop();

    // Same card again after a restart: still enrolled, and this station still manages it.
    let card = CardProcess::start(PORT_0, Some(state.path()));
    let status = station.json(&["card", "--reader", READER_0, "--json"]);
    assert_eq!(status["chuid_guid"], first["enrollment"]["chuid_guid"]);
    let renewed = station.json(&["enroll", "--reader", READER_0, "--force", "--json"]);
    assert_ne!(
        renewed["enrollment"]["fingerprint"],
        first["enrollment"]["fingerprint"]
    );
    card.stop();
}

#[test]
fn operator_errors_are_distinct_and_actionable() {
    let _slots = exclusive();
    let Some(pcsc) = pcscd_or_skip() else {
        return;
    };
    let station = StationDir::new();

    // Unknown reader.
    let out = station.run(&["card", "--reader", "No Such Reader", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON error");
    assert_eq!(v["error"]["code"], "reader-not-found");

    // Reader present, no card.
    let out = station.run(&["card", "--reader", READER_0, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON error");
    assert_eq!(v["error"]["code"], "no-card", "{v}");

    // Reader held exclusively by another program.
    let card = CardProcess::start(PORT_0, None);
    let name = std::ffi::CString::new(READER_0).expect("name");
    let held = pcsc
        .context()
        .connect(&name, pcsc::ShareMode::Exclusive, pcsc::Protocols::ANY)
        .expect("hold the card");
    let out = station.run(&["enroll", "--reader", READER_0, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON error");
    assert_eq!(v["error"]["code"], "reader-busy", "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("another program"));
    drop(held);
    card.stop();

    // PC/SC service unreachable (pcsc-lite reads its socket path from this variable).
    let out = Command::new(pcscd::cardstation_bin())
        .args(["readers"])
        .env("PCSCLITE_CSOCK_NAME", "/nonexistent/pcscd.comm")
        .output()
        .expect("run cardstation");
    assert_eq!(out.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("PC/SC service is not running"), "{msg}");
}

#[test]
fn pin_slot_enrollment_takes_the_pin_from_stdin() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let card = CardProcess::start(PORT_0, None);
    let station = StationDir::new();
    let wrong = station.run_with_stdin(
        &[
            "enroll",
            "--reader",
            READER_0,
            "--slot",
            "9a",
            "--pin-stdin",
            "--json",
        ],
        "000000\n",
    );
    let v: serde_json::Value = serde_json::from_slice(&wrong.stdout).expect("JSON error");
    assert_eq!(v["error"]["code"], "wrong-pin", "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("2 tries left"));

    let out = station.run_with_stdin(
        &[
            "enroll",
            "--reader",
            READER_0,
            "--slot",
            "9a",
            "--pin-stdin",
            "--force",
            "--json",
        ],
        "123456\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let pem = tool(
        "yubico-piv-tool",
        &["-r", READER_0, "-a", "read-certificate", "-s", "9a"],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let der = from_pem_or_der(&pem).expect("PEM");
    assert_eq!(
        CertificateInfo::parse(&der).expect("cert").sha256,
        v["enrollment"]["fingerprint"].as_str().unwrap_or("")
    );
    card.stop();
}

#[test]
fn a_card_reset_by_another_program_is_reconnected() {
    use cardstation::app::card_source::CardSource;
    use cardstation_piv::PivSession;

    let _slots = exclusive();
    let Some(pcsc) = pcscd_or_skip() else {
        return;
    };
    let card = CardProcess::start(PORT_0, None);
    let mut ours = pcsc.connect(READER_0).expect("connect");
    // Another program resets the card while we hold a connection to it.
    let mut other = pcsc.connect(READER_0).expect("second connection");
    other.reset().expect("reset by the other program");
    drop(other);
    // Our connection notices the reset, reconnects and selects PIV again.
    let tx = ours.transaction().expect("transaction after the reset");
    let mut session = PivSession::open(tx).expect("PIV selected after reconnecting");
    assert!(session.read_chuid().is_ok());
    drop(session);
    drop(ours);

    // The station's one way to open a card: by part of the reader name, fresh each job.
    let source = CardSource::pcsc("PCD 00 00").expect("reader by part of its name");
    assert_eq!(source.name(), READER_0);
    pcsc.connect(READER_0)
        .and_then(|mut c| c.reset())
        .expect("another reset between jobs");
    let read = source
        .with_card(|t| PivSession::open(t).map(|mut s| s.read_chuid().is_ok()))
        .expect("the card opens");
    assert!(read.expect("PIV answered"));
    card.stop();
}
