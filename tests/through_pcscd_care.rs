//! Replacement, PIN care, doctor and the audit trail, through the real pcscd and
//! the virtual card, with the real console.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod console_support;
mod pcscd;

use std::process::Output;

use console_support::{free_port, Console, ConsoleFiles, Station};
use pcscd::{exclusive, pcscd_or_skip, CardProcess, PORT_0, PORT_1, READER_0, READER_1};

fn error_of(out: &Output) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        v["error"]["code"].as_str().unwrap_or("").to_string(),
        v["error"]["message"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn replacement_while_the_console_is_down_revokes_later_exactly_once() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let console_dir = tempfile::tempdir().expect("console dir");
    let port = free_port();
    let console = Console::start(console_dir.path(), port);
    let station = Station::new(port, console_dir.path());
    let card_a = CardProcess::start(PORT_0, None);
    let card_b = CardProcess::start(PORT_1, None);

    let a = station.json(&[
        "enroll",
        "--reader",
        READER_0,
        "--subject",
        "CN=gateway-17,O=Acme",
        "--upload",
        "--json",
    ]);
    let a_fp = a["enrollment"]["fingerprint"]
        .as_str()
        .expect("fp")
        .to_string();
    assert_eq!(console.records(), 1);
    console.stop();

    // Card A was lost; card B replaces it while the console is away.
    let r = station.json(&[
        "replace", "--reader", READER_1, "--old", &a_fp, "--reason", "lost", "--json",
    ]);
    assert_eq!(r["ok"], true, "{r}");
    let b_fp = r["replacement"]["new_fingerprint"]
        .as_str()
        .expect("new fp")
        .to_string();
    assert_eq!(r["replacement"]["old_fingerprint"], a_fp.as_str());
    assert_eq!(r["replacement"]["renewal"], false);
    assert_eq!(
        r["replacement"]["enrollment"]["subject"], "CN=gateway-17, O=Acme",
        "same holder/device"
    );
    assert_eq!(r["sync"]["delivered"], 0);
    assert_eq!(station.outbox_len(), 2, "revocation and new upload queued");

    let console = Console::start(console_dir.path(), port);
    let v = station.json(&["outbox", "sync", "--json"]);
    assert_eq!(v["sync"]["delivered"], 2, "{v}");
    assert_eq!(station.outbox_len(), 0);
    let v = station.json(&["outbox", "sync", "--json"]);
    assert_eq!(v["sync"]["delivered"], 0, "nothing is sent twice");
    assert_eq!(console.records(), 2);
    station.run(&["trust", "sync"]);
    let shown = station.json(&["trust", "show", "--json"]);
    assert_eq!(shown["lists"]["revoked"][0]["sha256"], a_fp.as_str());
    assert_eq!(shown["lists"]["revoked"][0]["reason"], "lost");
    assert_eq!(shown["lists"]["allowed"][0], b_fp.as_str());

    // Old and new are linked in the database and the audit trail.
    let db =
        rusqlite::Connection::open(station.dir.path().join("data").join("station.db")).expect("db");
    let linked: String = db
        .query_row(
            "SELECT new_fingerprint FROM replacements WHERE old_fingerprint = ?1",
            [&a_fp],
            |r| r.get(0),
        )
        .expect("replacement row");
    assert_eq!(linked, b_fp);
    let audit = station.json(&["audit", "list", "--search", "replace", "--json"]);
    assert!(
        audit[0]["details"].as_str().unwrap_or("").contains(&b_fp),
        "{audit}"
    );

    // Renewal onto the same physical card: no --force needed, the card is re-issued.
    let r = station.json(&[
        "replace", "--reader", READER_1, "--old", &b_fp, "--reason", "expired", "--json",
    ]);
    assert_eq!(r["replacement"]["renewal"], true, "{r}");
    let status = station.json(&["card", "--reader", READER_1, "--json"]);
    let slot = status["slots"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["slot"] == "9e").cloned());
    assert_eq!(
        slot.expect("9e")["certificate"]["sha256"],
        r["replacement"]["new_fingerprint"]
    );
    card_a.stop();
    card_b.stop();
}

#[test]
fn pin_care_counts_down_guards_the_last_try_and_resets_a_blocked_card() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let console_dir = tempfile::tempdir().expect("console dir");
    Console::start(console_dir.path(), free_port()).stop();
    let station = Station::new(free_port(), console_dir.path());
    let card = CardProcess::start(PORT_0, None);
    let r = READER_0;

    // Change the PIN, then change it back.
    let out = station.run_with_stdin(
        &["pin", "change", "--reader", r, "--json"],
        "123456\n654321\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = station.run_with_stdin(
        &["pin", "change", "--reader", r, "--json"],
        "654321\n123456\n",
    );
    assert!(out.status.success());

    // Wrong PIN: tries count down; the last try is not spent without confirmation.
    let out = station.run_with_stdin(
        &["pin", "change", "--reader", r, "--json"],
        "000000\n111111\n",
    );
    assert_eq!(
        error_of(&out),
        (
            "wrong-pin".into(),
            "wrong PIN: 2 tries left before it is blocked".into()
        )
    );
    let out = station.run_with_stdin(
        &["pin", "change", "--reader", r, "--json"],
        "000000\n111111\n",
    );
    assert_eq!(
        error_of(&out).1,
        "wrong PIN: 1 try left before it is blocked"
    );
    let out = station.run_with_stdin(
        &["pin", "change", "--reader", r, "--json"],
        "000000\n111111\n",
    );
    assert_eq!(error_of(&out).0, "last-try");
    let out = station.run_with_stdin(
        &["pin", "change", "--reader", r, "--last-try", "--json"],
        "000000\n111111\n",
    );
    assert_eq!(error_of(&out).0, "blocked");
    let status = station.json(&["pin", "status", "--reader", r, "--json"]);
    assert_eq!(status["pin"]["state"], "blocked");

    // A wrong PUK counts down too.
    let out = station.run_with_stdin(
        &["pin", "unblock", "--reader", r, "--json"],
        "99887766\n123456\n",
    );
    assert_eq!(
        error_of(&out),
        (
            "wrong-pin".into(),
            "wrong PUK: 2 tries left before it is blocked".into()
        )
    );
    let out = station.run_with_stdin(
        &["pin", "unblock", "--reader", r, "--json"],
        "99887766\n123456\n",
    );
    assert_eq!(
        error_of(&out).1,
        "wrong PUK: 1 try left before it is blocked"
    );
    let out = station.run_with_stdin(
        &["pin", "unblock", "--reader", r, "--last-try", "--json"],
        "99887766\n123456\n",
    );
    assert_eq!(error_of(&out).0, "blocked");

    // PIN and PUK blocked: reset only with the typed confirmation, which says what it destroys.
    let out = station.run(&["pin", "reset", "--reader", r, "--json"]);
    let (code, msg) = error_of(&out);
    assert_eq!(code, "confirmation");
    assert!(msg.contains("deletes every key and certificate"), "{msg}");
    assert!(msg.contains(&format!("RESET {r}")), "{msg}");
    let out = station.run(&["pin", "reset", "--reader", r, "--confirm", "yes", "--json"]);
    assert_eq!(error_of(&out).0, "confirmation");
    let out = station.run(&[
        "pin",
        "reset",
        "--reader",
        r,
        "--confirm",
        &format!("RESET {r}"),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let status = station.json(&["pin", "status", "--reader", r, "--json"]);
    assert_eq!(status["pin"]["retries"], 3, "{status}");
    let card_status = station.json(&["card", "--reader", r, "--json"]);
    assert_eq!(card_status["management_key"]["is_default"], true);

    // Every operation is in the audit trail, no PIN in it.
    let audit = station.json(&["audit", "list", "--json"]);
    let text = audit.to_string();
    for action in ["pin-change", "pin-unblock", "card-reset"] {
        assert!(text.contains(action), "{action} missing: {text}");
    }
    for secret in ["654321", "99887766", "313233343536"] {
        assert!(
            !text.contains(secret),
            "{secret} leaked into the audit trail"
        );
    }
    card.stop();
}

#[test]
fn doctor_names_what_is_wrong() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let console_dir = tempfile::tempdir().expect("console dir");
    let port = free_port();
    let console = Console::start(console_dir.path(), port);
    let station = Station::new(port, console_dir.path());
    let card = CardProcess::start(PORT_0, None);

    let findings = |out: &Output| -> Vec<(String, String, String)> {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        v["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .map(|f| {
                (
                    f["area"].as_str().unwrap_or("").to_string(),
                    f["level"].as_str().unwrap_or("").to_string(),
                    f["what"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let has = |f: &[(String, String, String)], area: &str, level: &str| {
        f.iter().any(|(a, l, _)| a.starts_with(area) && l == level)
    };

    // All well: the console answers at every layer, the card is read.
    let bundle = station.dir.path().join("diag.json");
    let out = station.run(&[
        "doctor",
        "--json",
        "--bundle",
        bundle.to_str().expect("path"),
    ]);
    let f = findings(&out);
    for area in [
        "pcsc",
        "console DNS",
        "console TCP",
        "console TLS",
        "console HTTP",
    ] {
        assert!(has(&f, area, "ok"), "{area}: {f:?}");
    }
    assert!(
        f.iter()
            .any(|(a, _, w)| a.starts_with("card in") && w.contains("factory default")),
        "{f:?}"
    );
    let diag = std::fs::read_to_string(&bundle).expect("bundle");
    assert!(diag.contains("\"traces\""));
    for secret in [
        "010203040506070801020304050607080102030405060708",
        "313233343536",
    ] {
        assert!(!diag.contains(secret), "{secret} in the diagnostic bundle");
    }

    // The console is down: TCP fails, DNS still fine.
    console.stop();
    let f = findings(&station.run(&["doctor", "--json"]));
    assert!(
        has(&f, "console DNS", "ok") && has(&f, "console TCP", "fail"),
        "{f:?}"
    );

    // A wrong CA: TLS fails.
    let console = Console::start(console_dir.path(), port);
    let other = tempfile::tempdir().expect("other");
    Console::start(other.path(), free_port()).stop();
    let wrong = Station::with_files(
        port,
        ConsoleFiles {
            ca: &other.path().join("ca.pem"),
            cert: &console_dir.path().join("station.pem"),
            key: &console_dir.path().join("station.key"),
            bundle_key: &console_dir.path().join("bundle-signing.pub.pem"),
        },
    );
    let out = wrong.run(&["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let f = findings(&out);
    assert!(
        has(&f, "console TCP", "ok") && has(&f, "console TLS", "fail"),
        "{f:?}"
    );

    // pcscd is not reachable: said first, with what to do.
    let out = station
        .command(&["doctor", "--json"])
        .env("PCSCLITE_CSOCK_NAME", "/nonexistent/pcscd.comm")
        .output()
        .expect("doctor");
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let first = &v["findings"][0];
    assert_eq!(first["area"], "pcsc");
    assert_eq!(first["level"], "fail");
    assert!(
        first["todo"].as_str().unwrap_or("").contains("pcscd"),
        "{v}"
    );
    drop(console);
    card.stop();
}

#[test]
fn an_audit_trail_edited_by_hand_is_detected() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let console_dir = tempfile::tempdir().expect("console dir");
    Console::start(console_dir.path(), free_port()).stop();
    let station = Station::new(free_port(), console_dir.path());
    let card = CardProcess::start(PORT_0, None);
    station.json(&["enroll", "--reader", READER_0, "--json"]);
    station.run(&["verify", "--reader", READER_0]);
    station.run(&["pin", "status", "--reader", READER_0]);
    let ok = station.run(&["audit", "verify"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let csv = station.run(&["audit", "export", "--csv"]);
    let text = String::from_utf8_lossy(&csv.stdout);
    assert!(text.starts_with("id,time,operator"), "{text}");
    assert!(text.contains("spot-check"));

    let db =
        rusqlite::Connection::open(station.dir.path().join("data").join("station.db")).expect("db");
    db.execute(
        "UPDATE audit SET outcome = 'pass' WHERE action = 'spot-check'",
        [],
    )
    .expect("edit");
    let out = station.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("tampered with at row"), "{msg}");
    card.stop();
}
