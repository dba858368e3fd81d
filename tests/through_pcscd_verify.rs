//! Spot checks through the real pcscd and the virtual card, judged against the
//! trust bundle of a real console.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod console_support;
mod pcscd;

use cardstation::app::site_keys::{CardIdentity, SiteSecret};
use cardstation_pcsc::Pcsc;
use cardstation_piv::{Algorithm, PivSession, Slot};
use cardstation_pki::certificate::{self, CertificateProfile};
use cardstation_pki::subject::parse_subject;
use cardstation_pki::CardSigner;
use console_support::{failure_codes, free_port, Console, Station};
use pcscd::{exclusive, pcscd_or_skip, CardProcess, PORT_0, PORT_1, READER_0, READER_1};

fn enroll(station: &Station, reader: &str, upload: bool) -> serde_json::Value {
    let mut args = vec!["enroll", "--reader", reader, "--json"];
    if upload {
        args.push("--upload");
    }
    let out = station.run(&args);
    assert!(
        out.status.success(),
        "enroll: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// The 9e certificate of the card in `reader`, read with an independent client.
fn card_certificate(reader: &str) -> Vec<u8> {
    cardstation_pki::certificate::from_pem_or_der(&pcscd::tool(
        "yubico-piv-tool",
        &["-r", reader, "-a", "read-certificate", "-s", "9e"],
    ))
    .expect("a certificate in 9e")
}

/// Open the card in `reader` with the station's management key and let `f` put a
/// certificate of its choosing into 9e, as a tool holding the key could.
fn replace_certificate(
    station: &Station,
    reader: &str,
    f: impl FnOnce(&mut PivSession<cardstation_pcsc::PcscTransaction<'_>>) -> Vec<u8>,
) {
    let secret = SiteSecret::load(&station.dir.path().join("data").join("site-secret"))
        .expect("site secret");
    let pcsc = Pcsc::establish().expect("pcsc");
    let mut conn = pcsc.connect(reader).expect("connect");
    let mut s = PivSession::open(conn.transaction().expect("transaction")).expect("PIV");
    let identity = CardIdentity {
        serial: s.serial().expect("serial"),
        guid: s.read_chuid().expect("chuid").expect("a CHUID").guid,
    };
    s.authenticate(
        &secret
            .management_key(&identity, Algorithm::Aes256)
            .expect("key"),
    )
    .expect("authenticate with the station's key");
    let der = f(&mut s);
    s.write_certificate(Slot::CardAuthentication, &der)
        .expect("write");
}

#[test]
fn verdicts_follow_the_console_and_the_card() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let console_dir = tempfile::tempdir().expect("console dir");
    let console = Console::start(console_dir.path(), free_port());
    let station = Station::new(console.port, console_dir.path());
    let card = CardProcess::start(PORT_0, None);

    // Not enrolled yet.
    let (code, v) = station.verify(&["--reader", READER_0]);
    assert_eq!(code, 1);
    assert_eq!(failure_codes(&v), ["no-certificate"]);

    // Enrolled and uploaded: PASS, in at most 4 APDUs.
    let e = enroll(&station, READER_0, true);
    let fp = e["enrollment"]["fingerprint"]
        .as_str()
        .expect("fp")
        .to_string();
    let a_der = card_certificate(READER_0);
    let (code, v) = station.verify(&["--reader", READER_0, "--replay-test"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["check"]["verdict"], "pass");
    assert_eq!(v["check"]["fingerprint"], fp.as_str());
    assert!(v["check"]["apdus"].as_u64().expect("apdus") <= 4, "{v}");
    // The replay of a captured exchange is rejected both ways.
    let replay = v["replay"].as_array().expect("replay findings");
    assert_eq!(replay.len(), 2);
    assert!(replay.iter().all(|f| f["code"] == "replay-rejected"), "{v}");

    // Revoked: FAIL (revoked).
    station.run(&["revoke", "--fingerprint", &fp, "--reason", "stolen"]);
    station.run(&["trust", "sync"]);
    let (code, v) = station.verify(&["--reader", READER_0]);
    assert_eq!(code, 1);
    assert_eq!(failure_codes(&v), ["revoked"], "{v}");

    // A second card, enrolled but never uploaded: FAIL (not on the allow-list).
    let card_b = CardProcess::start(PORT_1, None);
    enroll(&station, READER_1, false);
    let (code, v) = station.verify(&["--reader", READER_1]);
    assert_eq!(code, 1);
    assert_eq!(failure_codes(&v), ["not-allowed"], "{v}");

    // Card A now carries card B's certificate: the signature does not match.
    let b_der = card_certificate(READER_1);
    replace_certificate(&station, READER_0, |_| b_der.clone());
    let (code, v) = station.verify(&["--reader", READER_0]);
    assert_eq!(code, 1);
    assert!(
        failure_codes(&v).contains(&"signature-mismatch".to_string()),
        "{v}"
    );

    // Card A with a certificate for its own key that expired a year ago: FAIL (expired).
    let a_key = cardstation_pki::CertificateInfo::parse(&a_der)
        .expect("A's certificate")
        .p256_key()
        .expect("P-256");
    replace_certificate(&station, READER_0, |s| {
        let profile = CertificateProfile {
            subject: parse_subject("CN=expired card").expect("subject"),
            valid_days: 30,
        };
        let signer = CardSigner::new(s, Slot::CardAuthentication, a_key);
        let a_year_ago = time::OffsetDateTime::now_utc() - time::Duration::days(365);
        certificate::self_signed(&profile, &signer, a_year_ago)
            .expect("certificate signed by the card")
    });
    let (code, v) = station.verify(&["--reader", READER_0]);
    assert_eq!(code, 1);
    let codes = failure_codes(&v);
    assert!(codes.contains(&"expired".to_string()), "{v}");
    assert!(!codes.contains(&"signature-mismatch".to_string()), "{v}");

    // Every check left an audit row with its verdict.
    let db =
        rusqlite::Connection::open(station.dir.path().join("data").join("station.db")).expect("db");
    let checks: Vec<String> = db
        .prepare("SELECT outcome FROM audit WHERE action = 'spot-check' ORDER BY id")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .expect("audit rows");
    assert_eq!(checks, ["fail", "pass", "fail", "fail", "fail", "fail"]);
    card_b.stop();
    card.stop();
}

#[test]
fn a_slot_that_needs_the_pin_asks_for_it() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let console_dir = tempfile::tempdir().expect("console dir");
    let console = Console::start(console_dir.path(), free_port());
    let station = Station::new(console.port, console_dir.path());
    let state = tempfile::tempdir().expect("card state");
    let card = CardProcess::start(PORT_0, Some(state.path()));
    let mut enroll = station
        .command(&[
            "enroll",
            "--reader",
            READER_0,
            "--slot",
            "9a",
            "--pin-stdin",
            "--upload",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("enroll");
    use std::io::Write;
    enroll
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"123456\n")
        .expect("PIN");
    assert!(enroll.wait().expect("enroll").success());

    // The same card, powered up afresh (the PIN is not verified): the verifier asks for it.
    card.stop();
    let card = CardProcess::start(PORT_0, Some(state.path()));
    let (code, v) = station.verify(&["--reader", READER_0, "--slot", "9a"]);
    assert_eq!(code, 1);
    assert_eq!(failure_codes(&v), ["pin-required"], "{v}");
    assert!(
        v["check"]["findings"]
            .to_string()
            .contains("give the card's PIN"),
        "{v}"
    );

    let mut with_pin = station
        .command(&[
            "verify",
            "--reader",
            READER_0,
            "--slot",
            "9a",
            "--pin-stdin",
            "--json",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("verify");
    with_pin
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"123456\n")
        .expect("PIN");
    let out = with_pin.wait_with_output().expect("verify");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["check"]["verdict"], "pass", "{v}");
    assert_eq!(out.status.code(), Some(0));
    card.stop();
}
