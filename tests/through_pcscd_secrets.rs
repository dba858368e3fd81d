//! No secret reaches a log, a trace, an audit row or a database file: enrol (with
//! a PIN), change the PIN and spot-check with full tracing on, then search every
//! byte the station wrote for the PIN, the PUK and the management keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod pcscd;

use std::process::Stdio;

use cardstation::app::site_keys::{CardIdentity, SiteSecret};
use cardstation_piv::management_key::DEFAULT_MANAGEMENT_KEY;
use cardstation_piv::Algorithm;
use pcscd::{exclusive, pcscd_or_skip, CardProcess, StationDir, PORT_0, READER_0};

fn run_traced(
    station: &StationDir,
    args: &[&str],
    stdin: &str,
    logs: &mut Vec<u8>,
) -> serde_json::Value {
    use std::io::Write;
    let mut child = std::process::Command::new(pcscd::cardstation_bin())
        .arg("--data-dir")
        .arg(station.path("data"))
        .arg("--config")
        .arg(station.path("cardstation.toml"))
        .arg("-vvv")
        .args(args)
        .env("RUST_LOG", "trace")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cardstation");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("stdin");
    let out = child.wait_with_output().expect("output");
    logs.extend_from_slice(&out.stdout);
    logs.extend_from_slice(&out.stderr);
    // verify answers 3 (signature valid, trust unknown) at a station without a bundle.
    assert!(
        matches!(out.status.code(), Some(0) | Some(3)),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_pin_puk_or_management_key_in_any_log_trace_audit_row_or_database_file() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let card = CardProcess::start(PORT_0, None);
    let station = StationDir::new();
    let mut logs = Vec::new();

    let e = run_traced(
        &station,
        &[
            "enroll",
            "--reader",
            READER_0,
            "--slot",
            "9a",
            "--pin-stdin",
            "--json",
        ],
        "123456\n",
        &mut logs,
    );
    run_traced(
        &station,
        &["pin", "change", "--reader", READER_0, "--json"],
        "123456\n86428642\n",
        &mut logs,
    );
    run_traced(
        &station,
        &[
            "verify",
            "--reader",
            READER_0,
            "--slot",
            "9a",
            "--pin-stdin",
            "--json",
        ],
        "86428642\n",
        &mut logs,
    );
    run_traced(
        &station,
        &[
            "doctor",
            "--trace",
            "--bundle",
            station.path("diag.json").to_str().expect("path"),
        ],
        "",
        &mut logs,
    );
    assert!(
        contains(&logs, b"VERIFY"),
        "the APDU trace was not logged: the test would prove nothing"
    );

    // The per-card management key the station derived for this card.
    let secret = SiteSecret::load(&station.path("data").join("site-secret")).expect("site secret");
    let guid =
        cardstation_piv::Guid::parse_hex(e["enrollment"]["chuid_guid"].as_str().expect("guid"));
    assert!(guid.is_some(), "the enrollment names the card's GUID");
    let serial = e["enrollment"]["card_serial"].as_u64().map(|s| s as u32);
    let derived = secret
        .management_key(&CardIdentity { serial, guid }, Algorithm::Aes256)
        .expect("derived key");

    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    for pin in ["123456", "86428642", "12345678"] {
        secrets.push((format!("{pin} (ASCII)"), pin.as_bytes().to_vec()));
        secrets.push((format!("{pin} (hex)"), hex::encode(pin).into_bytes()));
        secrets.push((format!("{pin} (HEX)"), hex::encode_upper(pin).into_bytes()));
    }
    for (name, key) in [
        ("factory management key", DEFAULT_MANAGEMENT_KEY.to_vec()),
        ("derived management key", derived.bytes().to_vec()),
    ] {
        secrets.push((format!("{name} (raw)"), key.clone()));
        secrets.push((format!("{name} (hex)"), hex::encode(&key).into_bytes()));
        secrets.push((
            format!("{name} (HEX)"),
            hex::encode_upper(&key).into_bytes(),
        ));
    }

    // Every file the station wrote, the database and its journal included.
    let mut files = vec![("logs and output".to_string(), logs)];
    let data = station.path("data");
    for entry in std::fs::read_dir(&data).expect("data dir").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "site-secret" {
            continue; // the site secret itself, not a card secret
        }
        files.push((name, std::fs::read(entry.path()).expect("read")));
    }
    files.push((
        "diag.json".into(),
        std::fs::read(station.path("diag.json")).expect("bundle"),
    ));
    assert!(files.iter().any(|(n, _)| n == "station.db"));

    for (file, bytes) in &files {
        for (what, needle) in &secrets {
            assert!(!contains(bytes, needle), "{what} found in {file}");
        }
    }
    card.stop();
}
