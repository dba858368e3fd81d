//! The station against the real reference console on loopback, over real mutual TLS,
//! with every test run on both storage backends: SQLite (the default) and a real
//! PostgreSQL server of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod console_support;

use std::time::{Duration, Instant};

use console_support::{
    certificate_file, copy_dir, free_port, outbox_rows, Backend, BlackHole, Console, ConsoleFiles,
    Station, TestDb,
};

// Each test below, once per backend: `sqlite::NAME` and `postgres::NAME`.
on_both_backends!(
    upload_is_stored_once_and_readable,
    offline_station_queues_and_delivers_exactly_once_when_the_console_is_back,
    station_killed_between_commit_and_send_delivers_after_restart,
    a_lost_acknowledgement_creates_no_duplicate,
    wrong_server_certificate_and_missing_client_certificate_are_refused,
    revocation_reaches_the_trust_bundle_and_tampering_or_rollback_is_refused,
    bad_input_gets_json_errors_and_stores_nothing,
);

fn console(backend: Backend) -> (tempfile::TempDir, Console) {
    let dir = tempfile::tempdir().expect("console dir");
    let console = Console::start_on(dir.path(), free_port(), &TestDb::new(backend));
    (dir, console)
}

fn upload_is_stored_once_and_readable(backend: Backend) {
    let (_d, console) = console(backend);
    let station = Station::new(console.port, &console.dir);
    let (file, fp) = certificate_file(station.dir.path(), "gw-1");
    let file = file.to_str().expect("path");

    let v = station.json(&["upload", file, "--label", "gw-1", "--json"]);
    assert_eq!(v["sync"]["delivered"], 1, "{v}");
    assert_eq!(v["queued"], fp.as_str());
    assert_eq!(station.outbox_len(), 0);

    // The same certificate again: acknowledged, still one record.
    let v = station.json(&["upload", file, "--json"]);
    assert_eq!(v["sync"]["delivered"], 1, "{v}");
    assert_eq!(console.records(), 1);

    // The record is there, active, with what the station sent.
    let client = cardstation::console::ConsoleClient::new(
        &cardstation::config::Config::load(&station.dir.path().join("cardstation.toml"), true)
            .expect("config")
            .console,
    )
    .expect("client");
    let rec = client.get(&fp).expect("record");
    assert_eq!(
        rec.status,
        cardstation_protocol::messages::CertificateStatus::Active
    );
    assert_eq!(rec.label.as_deref(), Some("gw-1"));
    assert_eq!(rec.station_id, "station-1");
    let missing = client.get(&"0".repeat(64)).unwrap_err();
    assert!(
        matches!(
            missing,
            cardstation::console::ConsoleError::Rejected { status: 404, .. }
        ),
        "{missing}"
    );
}

fn offline_station_queues_and_delivers_exactly_once_when_the_console_is_back(backend: Backend) {
    let dir = tempfile::tempdir().expect("console dir");
    let port = free_port();
    // Create the console's files, then take it down.
    let db = TestDb::new(backend);
    Console::start_on(dir.path(), port, &db).stop();
    let station = Station::new(port, dir.path());

    let mut fps = Vec::new();
    for i in 0..3 {
        let (file, fp) = certificate_file(station.dir.path(), &format!("gw-{i}"));
        let v = station.json(&["upload", file.to_str().expect("path"), "--json"]);
        assert_eq!(v["sync"]["delivered"], 0);
        assert_eq!(v["sync"]["error_code"], "console-unreachable", "{v}");
        fps.push(fp);
    }
    assert_eq!(station.outbox_len(), 3);
    let out = station.run(&["outbox", "sync"]);
    assert_eq!(out.status.code(), Some(1), "sync must say delivery failed");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be reached"));

    let console = Console::start_on(dir.path(), port, &db);
    let v = station.json(&["outbox", "sync", "--json"]);
    assert_eq!(v["sync"]["delivered"], 3, "{v}");
    assert_eq!(station.outbox_len(), 0);
    assert_eq!(console.records(), 3);
    // Nothing left to send twice.
    let v = station.json(&["outbox", "sync", "--json"]);
    assert_eq!(v["sync"]["delivered"], 0);
    assert_eq!(console.records(), 3);
}

fn station_killed_between_commit_and_send_delivers_after_restart(backend: Backend) {
    let dir = tempfile::tempdir().expect("console dir");
    let port = free_port();
    let db = TestDb::new(backend);
    Console::start_on(dir.path(), port, &db).stop();
    let station = Station::new(port, dir.path());
    let (file, fp) = certificate_file(station.dir.path(), "gw-k");

    // The console hangs: the station commits the row, then waits on the network.
    let hole = BlackHole::listen(port);
    let mut child = station
        .command(&["upload", file.to_str().expect("path")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start upload");
    let deadline = Instant::now() + Duration::from_secs(10);
    while outbox_rows(station.dir.path()) == 0 {
        assert!(Instant::now() < deadline, "the upload was never committed");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().expect("SIGKILL the station");
    let _ = child.wait();
    drop(hole);

    let console = Console::start_on(dir.path(), port, &db);
    let items = station.json(&["outbox", "list", "--json"]);
    assert_eq!(items[0]["fingerprint"], fp.as_str());
    let v = station.json(&["outbox", "sync", "--json"]);
    assert_eq!(v["sync"]["delivered"], 1, "{v}");
    assert_eq!(console.records(), 1);
}

fn a_lost_acknowledgement_creates_no_duplicate(backend: Backend) {
    let dir = tempfile::tempdir().expect("console dir");
    let port = free_port();
    let db = TestDb::new(backend);
    Console::start_on(dir.path(), port, &db).stop();
    let station = Station::new(port, dir.path());
    let (file, _fp) = certificate_file(station.dir.path(), "gw-ack");
    station.run(&["upload", file.to_str().expect("path")]);
    assert_eq!(station.outbox_len(), 1);

    // Remember the station as it was with the request still queued...
    let before = tempfile::tempdir().expect("snapshot");
    copy_dir(&station.dir.path().join("data"), before.path());
    let console = Console::start_on(dir.path(), port, &db);
    station.run(&["outbox", "sync"]);
    assert_eq!(console.records(), 1);
    // ...and put it back: the console acted, the station never heard the answer.
    std::fs::remove_dir_all(station.dir.path().join("data")).expect("remove");
    copy_dir(before.path(), &station.dir.path().join("data"));
    assert_eq!(station.outbox_len(), 1);

    let v = station.json(&["outbox", "sync", "--json"]);
    assert_eq!(v["sync"]["delivered"], 1, "{v}");
    assert_eq!(station.outbox_len(), 0);
    assert_eq!(console.records(), 1);
}

fn wrong_server_certificate_and_missing_client_certificate_are_refused(backend: Backend) {
    let (_d, console) = console(backend);
    let other = tempfile::tempdir().expect("other console");
    Console::start(other.path(), free_port()).stop();

    // The station trusts another console's CA: the server certificate does not verify.
    let station = Station::with_files(
        console.port,
        ConsoleFiles {
            ca: &other.path().join("ca.pem"),
            cert: &console.dir.join("station.pem"),
            key: &console.dir.join("station.key"),
            bundle_key: &console.dir.join("bundle-signing.pub.pem"),
        },
    );
    let (file, _) = certificate_file(station.dir.path(), "gw-x");
    let v = station.json(&["upload", file.to_str().expect("path"), "--json"]);
    assert_eq!(v["sync"]["error_code"], "console-tls", "{v}");
    assert!(
        v["sync"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("[console] ca"),
        "{v}"
    );
    assert_eq!(station.outbox_len(), 1, "kept for later");

    // A client certificate from another CA: the console refuses the station.
    let stranger = Station::with_files(
        console.port,
        ConsoleFiles {
            ca: &console.dir.join("ca.pem"),
            cert: &other.path().join("station.pem"),
            key: &other.path().join("station.key"),
            bundle_key: &console.dir.join("bundle-signing.pub.pem"),
        },
    );
    let v = stranger.json(&["upload", file.to_str().expect("path"), "--json"]);
    assert_eq!(v["sync"]["delivered"], 0);
    assert_eq!(v["sync"]["error_code"], "console-tls", "{v}");

    // No client certificate at all (curl, as any other program would try).
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(console.dir.join("ca.pem"))
        .arg(format!(
            "https://localhost:{}/v1/trust-bundle",
            console.port
        ))
        .output()
        .expect("curl is needed for this test");
    assert!(
        !out.status.success(),
        "the console answered a client without a certificate"
    );
    assert_eq!(console.records(), 0);
}

fn revocation_reaches_the_trust_bundle_and_tampering_or_rollback_is_refused(backend: Backend) {
    let dir = tempfile::tempdir().expect("console dir");
    let port = free_port();
    let db = TestDb::new(backend);
    let console = Console::start_on(dir.path(), port, &db);
    let station = Station::new(port, dir.path());
    let (file, fp) = certificate_file(station.dir.path(), "gw-r");
    station.json(&["upload", file.to_str().expect("path"), "--json"]);
    let v = station.json(&["trust", "sync", "--json"]);
    let first = v["bundle"]["version"].as_u64().expect("version");
    assert_eq!(v["bundle"]["allowed"], 1);

    // A snapshot of the console as it is now (to restore an "old backup" later).
    console.stop();
    let backup = tempfile::tempdir().expect("backup");
    copy_dir(dir.path(), backup.path());
    let backup_db = db.backup("backup");
    let console = Console::start_on(dir.path(), port, &db);

    let v = station.json(&["revoke", "--fingerprint", &fp, "--reason", "lost", "--json"]);
    assert_eq!(v["sync"]["delivered"], 1, "{v}");
    let v = station.json(&["trust", "sync", "--json"]);
    assert!(v["bundle"]["version"].as_u64().expect("version") > first);
    let shown = station.json(&["trust", "show", "--json"]);
    assert_eq!(shown["lists"]["revoked"][0]["sha256"], fp.as_str());
    assert_eq!(shown["lists"]["revoked"][0]["reason"], "lost");
    assert_eq!(shown["bundle"]["allowed"], 0);

    // The console restored from the old backup offers an older bundle: refused.
    console.stop();
    let restored = Console::start_on(backup.path(), port, &backup_db);
    let out = station.run(&["trust", "sync", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["error"]["code"], "bundle-rollback", "{v}");

    // The restored console goes on and re-issues the version this station holds with
    // other lists (the revocation is gone): a fork, refused, naming both hashes.
    let held = station.json(&["trust", "show", "--json"]);
    let held_hash = held["bundle"]["hash"].as_str().expect("hash").to_string();
    let (other, _) = certificate_file(station.dir.path(), "gw-after-restore");
    let v = station.json(&["upload", other.to_str().expect("path"), "--json"]);
    assert_eq!(v["sync"]["delivered"], 1, "{v}");
    let out = station.run(&["trust", "sync", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["error"]["code"], "bundle-fork", "{v}");
    let message = v["error"]["message"].as_str().expect("message");
    assert!(message.contains(&held_hash), "{message}");
    assert!(message.contains("bundle reset"), "{message}");
    // Still judged by what it held: the revocation stands.
    let shown = station.json(&["trust", "show", "--json"]);
    assert_eq!(shown["lists"]["revoked"][0]["sha256"], fp.as_str());

    // The administrator publishes a new chain; the station takes it only when told to.
    let chain = console_support::reset_bundle_chain(backup.path(), &backup_db.database_args());
    let out = station.run(&["trust", "sync", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["error"]["code"], "bundle-reset-offered", "{v}");
    let accepted = station.json(&["trust", "sync", "--accept-reset", &chain[..8], "--json"]);
    assert_eq!(accepted["ok"], true, "{accepted}");
    assert_eq!(accepted["bundle"]["chain"], chain.as_str(), "{accepted}");
    assert_eq!(accepted["bundle"]["allowed"], 2, "{accepted}");
    restored.stop();

    // A bundle signed with another key (what a tampered bundle looks like to the
    // station): refused, and the stored bundle is unchanged.
    let impostor = tempfile::tempdir().expect("impostor");
    let impostor_console = Console::start(impostor.path(), free_port());
    let fooled = Station::with_files(
        impostor_console.port,
        ConsoleFiles {
            ca: &impostor.path().join("ca.pem"),
            cert: &impostor.path().join("station.pem"),
            key: &impostor.path().join("station.key"),
            bundle_key: &dir.path().join("bundle-signing.pub.pem"),
        },
    );
    let out = fooled.run(&["trust", "sync", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["error"]["code"], "bundle-bad-signature", "{v}");
    let shown = station.json(&["trust", "show", "--json"]);
    assert_eq!(shown["bundle"]["chain"], chain.as_str());
    assert_eq!(shown["bundle"]["hash"], accepted["bundle"]["hash"]);
}

fn bad_input_gets_json_errors_and_stores_nothing(backend: Backend) {
    let (_d, console) = console(backend);
    let client_cfg = cardstation::config::ConsoleConfig {
        url: Some(format!("https://localhost:{}", console.port)),
        ca: Some(console.dir.join("ca.pem")),
        client_cert: Some(console.dir.join("station.pem")),
        client_key: Some(console.dir.join("station.key")),
        bundle_key: None,
        ..Default::default()
    };
    let client = cardstation::console::ConsoleClient::new(&client_cfg).expect("client");
    let upload = |certificate: String| {
        client.upload(&cardstation_protocol::messages::UploadRequest {
            certificate,
            card_serial: None,
            chuid_guid: None,
            slot: None,
            label: None,
            operator: "op".into(),
            station_id: "station-1".into(),
            attestation: None,
        })
    };
    let code = |r: Result<_, cardstation::console::ConsoleError>| match r {
        Err(cardstation::console::ConsoleError::Rejected { code, status, .. }) => (status, code),
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(
        code(upload("not pem".into())),
        (400, "malformed-pem".into())
    );
    assert_eq!(
        code(upload(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into()
        )),
        (400, "not-a-certificate".into())
    );
    // An RSA certificate is a certificate, but not a P-256 one.
    let rsa = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "/dev/null",
            "-subj",
            "/CN=rsa",
            "-days",
            "1",
        ])
        .output()
        .expect("openssl is needed for this test");
    assert_eq!(
        code(upload(String::from_utf8_lossy(&rsa.stdout).into_owned())),
        (400, "not-p256".into())
    );
    assert_eq!(code(client.get("xyz")), (400, "bad-fingerprint".into()));
    assert_eq!(
        code(client.revoke(&"a".repeat(64), "lost")),
        (404, "unknown-certificate".into())
    );
    assert_eq!(
        code(client.revoke(&"a".repeat(64), "bored")),
        (400, "bad-reason".into())
    );
    assert_eq!(console.records(), 0);

    // Wrong content type and an oversized body, through curl with the station's identity.
    let curl = |args: &[&str]| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(console.dir.join("ca.pem"))
            .arg("--cert")
            .arg(console.dir.join("station.pem"))
            .arg("--key")
            .arg(console.dir.join("station.key"))
            .args(["-o", "-", "-w", "\n%{http_code}"])
            .args(args)
            .arg(format!(
                "https://localhost:{}/v1/certificates",
                console.port
            ))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = curl(&["-H", "content-type: text/plain", "-d", "hello"]);
    assert!(
        text.ends_with("415") && text.contains("wrong-content-type"),
        "{text}"
    );
    let big = format!(
        "{{\"certificate\": \"{}\"}}",
        "A".repeat(cardstation_console::MAX_BODY + 10)
    );
    let big_file = _d.path().join("big.json");
    std::fs::write(&big_file, big).expect("write");
    let text = curl(&[
        "-H",
        "content-type: application/json",
        "--data-binary",
        &format!("@{}", big_file.display()),
    ]);
    assert!(
        text.ends_with("413") && text.contains("body-too-large"),
        "{text}"
    );
    assert_eq!(console.records(), 0);
}
