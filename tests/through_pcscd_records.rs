//! The trust bundle is judged only from its signed bytes: through the real pcscd,
//! the virtual card and the real console, editing the station database's bundle
//! columns or deleting its newest bundle never turns a revoked or expired card
//! into PASS — the check says TRUST UNKNOWN and how to repair it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod console_support;
mod pcscd;

use console_support::{failure_codes, free_port, Console, Station};
use pcscd::{exclusive, pcscd_or_skip, CardProcess, PORT_0, PORT_1, READER_0, READER_1};

/// TRUST UNKNOWN (exit 3) because the stored bundle is damaged, with the remedy.
fn damaged_trust_unknown(station: &Station, reader: &str) {
    let (code, v) = station.verify(&["--reader", reader]);
    assert_eq!(code, 3, "{v}");
    assert_eq!(v["check"]["verdict"], "trust-unknown", "{v}");
    let findings = v["check"]["findings"].to_string();
    assert!(findings.contains("trust-bundle-damaged"), "{v}");
    assert!(
        findings.contains("the stored trust bundle is damaged — run trust sync"),
        "{v}"
    );
}

fn enroll_and_upload(station: &Station, reader: &str) -> String {
    let out = station.run(&["enroll", "--reader", reader, "--upload", "--json"]);
    assert!(
        out.status.success(),
        "enroll: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    v["enrollment"]["fingerprint"]
        .as_str()
        .expect("fingerprint")
        .to_string()
}

fn station_db(station: &Station) -> rusqlite::Connection {
    rusqlite::Connection::open(station.dir.path().join("data").join("station.db")).expect("db")
}

#[test]
fn edited_or_deleted_bundles_never_make_a_revoked_or_expired_card_pass() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let console_dir = tempfile::tempdir().expect("console dir");
    let port = free_port();
    let console = Console::start(console_dir.path(), port);
    let station = Station::new(port, console_dir.path());

    // Card A: enrolled, uploaded, PASS; then revoked: FAIL.
    let card_a = CardProcess::start(PORT_0, None);
    let fp = enroll_and_upload(&station, READER_0);
    let (code, v) = station.verify(&["--reader", READER_0]);
    assert_eq!(
        (code, v["check"]["verdict"].as_str()),
        (0, Some("pass")),
        "{v}"
    );
    let out = station.run(&["revoke", "--fingerprint", &fp, "--reason", "stolen"]);
    assert!(out.status.success());
    assert!(station.run(&["trust", "sync"]).status.success());
    let (code, v) = station.verify(&["--reader", READER_0]);
    assert_eq!(code, 1);
    assert_eq!(failure_codes(&v), ["revoked"], "{v}");

    // Delete the newest piece held (the delta with the revocation): the older
    // version that still allows the card is not used.
    let db = station_db(&station);
    let before: i64 = db
        .query_row("SELECT COUNT(*) FROM trust_held", [], |r| r.get(0))
        .expect("count");
    assert!(before >= 2, "an older version to fall back to");
    db.execute(
        "DELETE FROM trust_held WHERE seq = (SELECT MAX(seq) FROM trust_held)",
        [],
    )
    .expect("delete newest");
    damaged_trust_unknown(&station, READER_0);
    let out = station.run(&["trust", "show"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("run trust sync"));
    // Relabelling the old row as the newest version is no better.
    db.execute("UPDATE trust_held SET version = version + 100", [])
        .expect("relabel");
    damaged_trust_unknown(&station, READER_0);
    // `trust sync` repairs it from the console's signed bundle.
    db.execute("DELETE FROM trust_held", []).expect("clear");
    assert!(station.run(&["trust", "sync"]).status.success());
    let (code, v) = station.verify(&["--reader", READER_0]);
    assert_eq!(code, 1);
    assert_eq!(failure_codes(&v), ["revoked"], "{v}");
    card_a.stop();

    // Card B, with a console whose bundles expire as soon as they are signed.
    drop(console);
    let console = Console::start_with(console_dir.path(), port, &["--bundle-hours", "0"]);
    let card_b = CardProcess::start(PORT_1, None);
    enroll_and_upload(&station, READER_1);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (code, v) = station.verify(&["--reader", READER_1]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(failure_codes(&v), ["bundle-expired"], "{v}");
    // The expiry lives in the signed bytes only: editing them (to un-expire it, or
    // anything else) breaks the signature, and the bundle is not judged by.
    let (seq, mut bytes): (i64, Vec<u8>) = db
        .query_row(
            "SELECT seq, bytes FROM trust_held ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("held bytes");
    if let Some(last) = bytes.last_mut() {
        *last ^= 1;
    }
    db.execute(
        "UPDATE trust_held SET bytes = ?1 WHERE seq = ?2",
        rusqlite::params![bytes, seq],
    )
    .expect("edit the signed bytes");
    damaged_trust_unknown(&station, READER_1);

    // Every check is on the audit trail, and the trail is whole.
    let checks: Vec<String> = db
        .prepare("SELECT outcome FROM audit WHERE action = 'spot-check' ORDER BY id")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .expect("audit rows");
    assert_eq!(
        checks,
        [
            "pass",
            "fail",
            "trust-unknown",
            "trust-unknown",
            "fail",
            "fail",
            "trust-unknown"
        ]
    );
    assert!(station.run(&["audit", "verify"]).status.success());
    card_b.stop();
    drop(console);
}
