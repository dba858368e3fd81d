//! The console as an attacker holding one station's credential meets it, over real
//! mutual TLS, on both storage backends: one identity per station, names from the
//! verified certificate, every uploaded certificate checked, revocations bounded
//! and undoable by the administrator alone, a hash-chained audit trail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod console_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use cardstation::console::ConsoleError;
use cardstation_protocol::messages::{CertificateStatus, UploadRequest};
use console_support::{certificate_file, device_params, Backend, Site, Station, TestDb};

on_both_backends!(
    each_station_gets_its_own_identity_while_the_console_runs,
    a_body_claiming_another_station_is_refused_and_never_stored,
    a_revoked_station_is_refused_on_its_next_request_and_told_so,
    every_bad_certificate_is_refused_with_its_reason_and_nothing_stored,
    a_revoked_key_cannot_come_back_in_a_new_certificate,
    revocations_are_limited_per_station_and_undone_by_the_administrator_alone,
    the_audit_trail_records_every_change_and_detects_tampering,
    serve_runs_without_the_ca_key_and_station_add_takes_it_from_elsewhere,
    no_identity_may_be_named_like_the_administrator,
    every_upload_field_is_checked_and_answered_alike_on_both_backends,
    an_upload_refused_for_the_station_name_is_sent_once_the_settings_are_fixed,
);

fn request(pem: String, station: &str) -> UploadRequest {
    UploadRequest {
        certificate: pem,
        card_serial: Some(7),
        chuid_guid: None,
        slot: Some("9a".into()),
        label: None,
        operator: "op".into(),
        station_id: station.into(),
        attestation: None,
    }
}

fn refusal<T: std::fmt::Debug>(r: Result<T, ConsoleError>) -> (u16, String, String) {
    match r {
        Err(ConsoleError::Rejected {
            status,
            code,
            message,
        }) => (status, code, message),
        Err(ConsoleError::ServerError { status, message }) => (status, "server".into(), message),
        Err(ConsoleError::Settings(message)) => (0, "settings".into(), message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn each_station_gets_its_own_identity_while_the_console_runs(backend: Backend) {
    let site = Site::start_with(backend, "");
    let (kit, desk) = Station::added_to(&site, "desk-2");
    for f in [
        "station.pem",
        "station.key",
        "ca.pem",
        "bundle-signing.pub.pem",
        "cardstation.toml",
    ] {
        assert!(
            kit.join(f).is_file(),
            "{f} missing from the station's files"
        );
    }
    assert_eq!(mode(&kit.join("station.key")), 0o600);
    assert_eq!(mode(&kit), 0o700);
    // The console's own files: directory and keys for its user alone.
    assert_eq!(mode(site.data()), 0o700);
    for key in ["ca.key", "server.key", "station.key", "bundle-signing.key"] {
        assert_eq!(mode(&site.data().join(key)), 0o600, "{key}");
    }
    if backend == Backend::Sqlite {
        assert_eq!(mode(&site.data().join("console.db")), 0o600);
    }

    // The new station works at once (no restart), and its records carry its name.
    let (file, fp) = certificate_file(desk.dir.path(), "gw-d2");
    let v = desk.json(&["upload", file.to_str().unwrap(), "--json"]);
    assert_eq!(v["sync"]["delivered"], 1, "{v}");
    assert_eq!(desk.client().get(&fp).expect("record").station_id, "desk-2");

    // A name in use is refused; a bad name too.
    let out = site.admin(&["station", "add", "desk-2", "--out", "/tmp/unused-kit"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already has an active credential"));
    let out = site.admin(&["station", "add", "../etc", "--out", "/tmp/unused-kit"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!Path::new("/tmp/unused-kit").exists());

    let list: serde_json::Value =
        serde_json::from_str(&site.admin_ok(&["station", "list", "--json"])).expect("JSON");
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["desk-2", "station-1"]);
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["revoked_at"].is_null()));

    // A certificate from the console's CA that was never registered as a station
    // (a CA key used behind the console's back) is refused too.
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(site.data().join("ca.key")).unwrap())
            .unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(
        &std::fs::read_to_string(site.data().join("ca.pem")).unwrap(),
        ca_key,
    )
    .unwrap();
    let rogue_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "station-1");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let rogue = params.signed_by(&rogue_key, &issuer).unwrap();
    let rogue_dir = tempfile::tempdir().unwrap();
    std::fs::write(rogue_dir.path().join("station.pem"), rogue.pem()).unwrap();
    let rogue_key_file = rogue_dir.path().join("station.key");
    std::fs::write(&rogue_key_file, rogue_key.serialize_pem()).unwrap();
    // A key others may read is refused by the station before it is ever used.
    let set_mode = |mode: u32| {
        std::fs::set_permissions(
            &rogue_key_file,
            std::os::unix::fs::PermissionsExt::from_mode(mode),
        )
        .unwrap()
    };
    set_mode(0o644);
    let open = cardstation::console::ConsoleClient::new(&cardstation::config::ConsoleConfig {
        url: Some(format!("https://localhost:{}", site.console.port)),
        ca: Some(site.data().join("ca.pem")),
        client_cert: Some(rogue_dir.path().join("station.pem")),
        client_key: Some(rogue_key_file.clone()),
        ..Default::default()
    });
    match open {
        Err(ConsoleError::Settings(m)) => assert!(m.contains("chmod 600"), "{m}"),
        Err(e) => panic!("wrong refusal: {e}"),
        Ok(_) => panic!("a key others can read was used"),
    }
    set_mode(0o600);
    let client = cardstation::console::ConsoleClient::new(&cardstation::config::ConsoleConfig {
        url: Some(format!("https://localhost:{}", site.console.port)),
        ca: Some(site.data().join("ca.pem")),
        client_cert: Some(rogue_dir.path().join("station.pem")),
        client_key: Some(rogue_dir.path().join("station.key")),
        ..Default::default()
    })
    .unwrap();
    let (_, code, message) = refusal(client.trust_bundle(None, None));
    assert_eq!(code, "settings");
    assert!(message.contains("not a registered station"), "{message}");
}

fn a_body_claiming_another_station_is_refused_and_never_stored(backend: Backend) {
    let site = Site::start_with(backend, "");
    let (_kit, desk) = Station::added_to(&site, "desk-2");
    let (file, _) = certificate_file(desk.dir.path(), "gw-spoof");
    let pem = std::fs::read_to_string(&file).unwrap();
    let (status, code, message) = refusal(desk.client().upload(&request(pem, "station-1")));
    assert_eq!((status, code.as_str()), (403, "station-mismatch"));
    assert!(message.contains("desk-2"), "{message}");
    assert_eq!(site.console.records(), 0);
    assert_eq!(
        site.count("SELECT COUNT(*) FROM audit WHERE action = 'upload'"),
        0
    );
}

fn a_revoked_station_is_refused_on_its_next_request_and_told_so(backend: Backend) {
    let site = Site::start_with(backend, "");
    let (_kit, desk) = Station::added_to(&site, "desk-2");
    let (file, _) = certificate_file(desk.dir.path(), "gw-1");
    let v = desk.json(&["upload", file.to_str().unwrap(), "--json"]);
    assert_eq!(v["sync"]["delivered"], 1, "{v}");

    // Revoked while the console runs: the very next request is refused.
    let said = site.admin_ok(&["station", "revoke", "desk-2"]);
    assert!(said.contains("revoked"), "{said}");
    let (file, fp) = certificate_file(desk.dir.path(), "gw-2");
    let out = desk.run(&["upload", file.to_str().unwrap()]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("console credential (station desk-2) was revoked")
            && text.contains("ask the console administrator for a new one"),
        "{text}"
    );
    // The station keeps what it could not deliver, for when it has a new credential.
    assert_eq!(desk.outbox_len(), 1);
    let (_, code, _) = refusal(desk.client().trust_bundle(None, None));
    assert_eq!(code, "settings");
    let (status, _, _) = {
        let r = Station::new(site.console.port, site.data())
            .client()
            .get(&fp);
        refusal(r)
    };
    assert_eq!(
        status, 404,
        "station-1 is unaffected (and gw-2 was never stored)"
    );
    assert_eq!(site.console.records(), 1);

    // The administrator issues a new credential: the station works again.
    let out = site.admin(&["station", "revoke", "desk-2"]);
    assert_eq!(out.status.code(), Some(1), "nothing left to revoke");
    // `station add` writes the new credential over the old files the station uses.
    let old_cert = std::fs::read(desk_kit_file(&desk, "station.pem")).unwrap();
    let kit = site.add_station("desk-2");
    assert_eq!(kit.join("station.pem"), desk_kit_file(&desk, "station.pem"));
    assert_ne!(std::fs::read(kit.join("station.pem")).unwrap(), old_cert);
    // The kept item is due again after the outbox's first backoff.
    std::thread::sleep(std::time::Duration::from_millis(5500));
    let v = desk.json(&["outbox", "sync", "--json"]);
    assert_eq!(v["sync"]["delivered"], 1, "{v}");
    assert_eq!(site.console.records(), 2);
}

/// Where the station's config points for `file` (its kit directory).
fn desk_kit_file(station: &Station, file: &str) -> PathBuf {
    let config =
        cardstation::config::Config::load(&station.dir.path().join("cardstation.toml"), true)
            .unwrap();
    config.console.client_cert.unwrap().with_file_name(file)
}

/// Certificates the station's spot check fails, each as a PEM and the reason code.
fn bad_certificates(dir: &Path) -> Vec<(&'static str, String, &'static str)> {
    let key = || rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let with = |edit: &dyn Fn(&mut rcgen::CertificateParams)| {
        let mut p = device_params("gw-bad");
        edit(&mut p);
        p.self_signed(&key()).unwrap().pem()
    };
    let old = time::OffsetDateTime::from_unix_timestamp(946_684_800).unwrap();
    let mut out = vec![
        (
            "expired in 2000",
            with(&|p| {
                p.not_before = old;
                p.not_after = old + time::Duration::days(365);
            }),
            "expired",
        ),
        (
            "notBefore after notAfter",
            with(&|p| {
                let t = time::OffsetDateTime::now_utc();
                p.not_before = t - time::Duration::days(1);
                p.not_after = t - time::Duration::days(2);
            }),
            "bad-validity",
        ),
        (
            "CA:TRUE",
            with(&|p| p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained)),
            "is-ca",
        ),
        (
            "no clientAuth",
            with(&|p| p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth]),
            "extended-key-usage",
        ),
        (
            "200 years",
            with(&|p| p.not_after = p.not_before + time::Duration::days(73_000)),
            "lifetime-too-long",
        ),
        (
            "a 20 KB CN",
            with(&|p| {
                p.distinguished_name
                    .push(rcgen::DnType::CommonName, "x".repeat(20_000))
            }),
            "too-large",
        ),
        (
            "1,500 SANs",
            with(&|p| {
                p.subject_alt_names = (0..1500)
                    .map(|i| rcgen::SanType::DnsName(format!("n{i}.ex").try_into().unwrap()))
                    .collect()
            }),
            "too-large",
        ),
        (
            "40 SANs",
            with(&|p| {
                p.subject_alt_names = (0..40)
                    .map(|i| rcgen::SanType::DnsName(format!("n{i}.ex").try_into().unwrap()))
                    .collect()
            }),
            "too-many-names",
        ),
    ];
    // A corrupted self-signature: one bit of the signature flipped.
    let good = device_params("gw-sig").self_signed(&key()).unwrap();
    let mut der = good.der().to_vec();
    let n = der.len();
    der[n - 4] ^= 0x01;
    out.push((
        "corrupted self-signature",
        pem::encode(&pem::Pem::new("CERTIFICATE", der)),
        "bad-self-signature",
    ));
    // A P-256 device certificate issued by an RSA CA (openssl, as an attacker would).
    let sh = |script: &str| {
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .output()
            .expect("openssl is needed for this test");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout rsa-ca.key -out rsa-ca.pem -subj /CN=rsa-ca -days 30 2>/dev/null \
        && openssl ecparam -name prime256v1 -genkey -noout -out leaf.key \
        && openssl req -new -key leaf.key -subj /CN=gw-rsa -out leaf.csr \
        && printf 'keyUsage=digitalSignature\\nextendedKeyUsage=clientAuth\\n' > ext.cnf \
        && openssl x509 -req -in leaf.csr -CA rsa-ca.pem -CAkey rsa-ca.key -CAcreateserial -days 30 -extfile ext.cnf -out leaf.pem 2>/dev/null");
    out.push((
        "issued by an RSA CA",
        std::fs::read_to_string(dir.join("leaf.pem")).unwrap(),
        "unknown-issuer",
    ));
    out
}

fn every_bad_certificate_is_refused_with_its_reason_and_nothing_stored(backend: Backend) {
    let site = Site::start_with(backend, "");
    let station = Station::new(site.console.port, site.data());
    let client = station.client();
    let scratch = tempfile::tempdir().unwrap();
    for (what, pem, expected) in bad_certificates(scratch.path()) {
        let (status, code, message) = refusal(client.upload(&request(pem, "station-1")));
        assert_eq!(status, 422, "{what}: {code} {message}");
        assert_eq!(code, expected, "{what}: {message}");
        assert!(
            message.starts_with("the certificate is not acceptable"),
            "{what}: {message}"
        );
    }
    assert_eq!(site.console.records(), 0);
    assert_eq!(
        site.count("SELECT COUNT(*) FROM audit WHERE action = 'upload'"),
        0
    );
    // And a good one still goes through.
    let (file, _) = certificate_file(scratch.path(), "gw-good");
    client
        .upload(&request(
            std::fs::read_to_string(file).unwrap(),
            "station-1",
        ))
        .expect("a device certificate");
    assert_eq!(site.console.records(), 1);
}

fn a_revoked_key_cannot_come_back_in_a_new_certificate(backend: Backend) {
    let site = Site::start_with(backend, "");
    let client = Station::new(site.console.port, site.data()).client();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let first = device_params("gw-k").self_signed(&key).unwrap();
    let fp = cardstation_pki::fingerprint(first.der());
    client
        .upload(&request(first.pem(), "station-1"))
        .expect("upload");
    client.revoke(&fp, "stolen").expect("revoke");

    // The same key in a fresh certificate (new name, new serial): refused.
    let again = device_params("gw-k-renewed").self_signed(&key).unwrap();
    let again_fp = cardstation_pki::fingerprint(again.der());
    assert_ne!(fp, again_fp);
    let (status, code, message) = refusal(client.upload(&request(again.pem(), "station-1")));
    assert_eq!((status, code.as_str()), (409, "key-revoked"), "{message}");
    assert!(message.contains("this key was revoked"), "{message}");
    assert_eq!(site.console.records(), 1);
    // Not on the allow-list, so the spot check (and a gateway) fails it.
    let lists = console_support::full_lists(&client, site.data());
    assert!(!lists.is_allowed_hex(&again_fp));
    assert!(lists.revocation_hex(&fp).is_some());

    // Reinstated by the administrator, the key may come back.
    site.admin_ok(&["cards", "reinstate", &fp]);
    client
        .upload(&request(again.pem(), "station-1"))
        .expect("the key is no longer revoked");
    assert_eq!(site.console.records(), 2);
}

fn revocations_are_limited_per_station_and_undone_by_the_administrator_alone(backend: Backend) {
    let site = Site::start_with(backend, "revocations_per_hour = 3\n");
    let desk1 = Station::new(site.console.port, site.data()).client();
    let (_kit, thief) = Station::added_to(&site, "stolen-laptop");
    let thief = thief.client();
    let scratch = tempfile::tempdir().unwrap();
    let fps: Vec<String> = (0..6)
        .map(|i| {
            let (file, fp) = certificate_file(scratch.path(), &format!("gw-{i}"));
            desk1
                .upload(&request(
                    std::fs::read_to_string(file).unwrap(),
                    "station-1",
                ))
                .expect("upload");
            fp
        })
        .collect();
    // station-1 revokes one of its own before the laptop is stolen.
    desk1.revoke(&fps[0], "damaged").expect("revoke");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let stolen_at = time::OffsetDateTime::now_utc().unix_timestamp();

    // The stolen laptop revokes as fast as it can: 3 go through, then 429.
    for fp in &fps[1..4] {
        let rec = thief.revoke(fp, "lost").expect("within the limit");
        assert_eq!(rec.status, CertificateStatus::Revoked);
    }
    let (status, _, message) = refusal(thief.revoke(&fps[4], "lost"));
    assert_eq!(status, 429, "{message}");
    assert!(
        message.contains("revoked 3 certificates in the last hour"),
        "{message}"
    );
    assert_eq!(
        site.count(&format!(
            "SELECT COUNT(*) FROM certificates WHERE sha256 = '{}' AND status = 'active'",
            fps[4]
        )),
        1,
        "nothing revoked beyond the limit"
    );
    // Each station has its own budget.
    desk1
        .revoke(&fps[5], "replaced")
        .expect("station-1's own budget");
    assert_eq!(
        site.count("SELECT COUNT(*) FROM certificates WHERE revoked_by = 'station:stolen-laptop'"),
        3
    );

    // No station can reinstate: there is no such resource for them.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(site.data().join("ca.pem"))
        .arg("--cert")
        .arg(site.data().join("station.pem"))
        .arg("--key")
        .arg(site.data().join("station.key"))
        .args([
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            "{}",
        ])
        .arg(format!(
            "https://localhost:{}/v1/certificates/{}/reinstate",
            site.console.port, fps[1]
        ))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.ends_with("404") && text.contains("\"not-found\""),
        "{text}"
    );
    // A method a resource does not take: 405, with a JSON body.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(site.data().join("ca.pem"))
        .arg("--cert")
        .arg(site.data().join("station.pem"))
        .arg("--key")
        .arg(site.data().join("station.key"))
        .args(["-w", "\n%{http_code}", "-X", "DELETE"])
        .arg(format!(
            "https://localhost:{}/v1/trust-bundle",
            site.console.port
        ))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, status) = text.rsplit_once('\n').unwrap();
    assert_eq!(status, "405", "{text}");
    let body: serde_json::Value = serde_json::from_str(body).expect("a JSON 405 body");
    assert_eq!(body["error"]["code"], "method-not-allowed");

    // The administrator undoes what the stolen laptop did since it was stolen.
    let said = site.admin_ok(&[
        "cards",
        "reinstate",
        "--by-station",
        "stolen-laptop",
        "--since",
        &stolen_at.to_string(),
    ]);
    assert!(said.contains("Reinstated 3 certificate(s)"), "{said}");
    for fp in &fps[1..5] {
        assert_eq!(
            desk1.get(fp).unwrap().status,
            CertificateStatus::Active,
            "{fp}"
        );
    }
    // What station-1 itself revoked stays revoked.
    assert_eq!(
        desk1.get(&fps[0]).unwrap().status,
        CertificateStatus::Revoked
    );
    assert_eq!(
        desk1.get(&fps[5]).unwrap().status,
        CertificateStatus::Revoked
    );
    let lists = console_support::full_lists(&desk1, site.data());
    for fp in &fps[1..5] {
        assert!(lists.is_allowed_hex(fp));
    }
    // One certificate by fingerprint, too.
    site.admin_ok(&["cards", "reinstate", &fps[5]]);
    assert_eq!(
        desk1.get(&fps[5]).unwrap().status,
        CertificateStatus::Active
    );
}

fn the_audit_trail_records_every_change_and_detects_tampering(backend: Backend) {
    let site = Site::start_with(backend, "");
    let (_kit, desk) = Station::added_to(&site, "desk-2");
    let client = desk.client();
    let scratch = tempfile::tempdir().unwrap();
    let (file, fp) = certificate_file(scratch.path(), "gw-a");
    client
        .upload(&request(std::fs::read_to_string(file).unwrap(), "desk-2"))
        .unwrap();
    client.revoke(&fp, "lost").unwrap();
    site.admin_ok(&["cards", "reinstate", &fp]);
    site.admin_ok(&["station", "revoke", "desk-2"]);

    let rows: serde_json::Value =
        serde_json::from_str(&site.admin_ok(&["audit", "--json"])).expect("JSON");
    let seen: Vec<(String, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["actor"].as_str().unwrap().to_string(),
                r["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expect: Vec<(String, String)> = [
        ("setup", "station-add"),
        ("administrator", "station-add"),
        ("station:desk-2", "upload"),
        ("station:desk-2", "revoke"),
        ("administrator", "reinstate"),
        ("administrator", "station-revoke"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(seen, expect);
    let said = site.admin_ok(&["audit", "--verify"]);
    assert!(said.contains("intact: 6 rows"), "{said}");

    // Someone with database access rewrites who revoked the card.
    let tamper = "UPDATE audit SET actor = 'station:station-1' WHERE seq = 4";
    match &site.db {
        TestDb::Sqlite => {
            rusqlite::Connection::open(site.data().join("console.db"))
                .unwrap()
                .execute(tamper, [])
                .unwrap();
        }
        TestDb::Postgres { cluster, database } => {
            cluster.psql(database, tamper);
        }
    }
    let out = site.admin(&["audit", "--verify"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("row 4 was changed"), "{stderr}");
}

fn serve_runs_without_the_ca_key_and_station_add_takes_it_from_elsewhere(backend: Backend) {
    let mut site = Site::start_with(backend, "");
    // The CA key leaves the console host (here: another directory, as removable media).
    let offline = tempfile::tempdir().unwrap();
    let moved = offline.path().join("ca.key");
    std::fs::copy(site.data().join("ca.key"), &moved).unwrap();
    std::fs::remove_file(site.data().join("ca.key")).unwrap();
    let port = site.console.port;
    site.console.restart();
    assert!(
        !site.data().join("ca.key").exists(),
        "serve must not recreate the CA key"
    );

    // Without the key, issuing is refused with what to do; with --ca-key it works.
    let out = site.admin(&["station", "add", "desk-9", "--out", "/tmp/unused-kit-9"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ca-key"));
    let kit = offline.path().join("kit");
    let url = format!("https://localhost:{port}");
    site.admin_ok(&[
        "station",
        "add",
        "desk-9",
        "--out",
        kit.to_str().unwrap(),
        "--url",
        &url,
        "--ca-key",
        moved.to_str().unwrap(),
    ]);
    let desk = Station::from_kit(&kit);
    let (file, _) = certificate_file(desk.dir.path(), "gw-9");
    let v = desk.json(&["upload", file.to_str().unwrap(), "--json"]);
    assert_eq!(v["sync"]["delivered"], 1, "{v}");
    // Revoking needs no CA key at all.
    site.admin_ok(&["station", "revoke", "desk-9"]);
    let (_, code, _) = refusal(desk.client().trust_bundle(None, None));
    assert_eq!(code, "settings");
}

/// `station add admin` once made a station whose revocations read as the
/// administrator's; names of the console's own actors are refused for every role,
/// and `identity add` issues any role through the same path as `station add`.
fn no_identity_may_be_named_like_the_administrator(backend: Backend) {
    let site = Site::start_with(backend, "");
    let kit = site.data().join("kit-admin");
    for args in [
        vec!["station", "add", "admin"],
        vec!["gateway", "add", "administrator"],
        vec!["identity", "add", "setup", "--role", "station"],
    ] {
        let mut args = args.clone();
        args.extend(["--out", kit.to_str().unwrap()]);
        let out = site.admin(&args);
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("is reserved"), "{err}");
    }
    assert!(!kit.exists(), "no files were written for a refused name");

    let gw_kit = site.data().join("kit-gw");
    let said = site.admin_ok(&[
        "identity",
        "add",
        "gw-9",
        "--role",
        "gateway",
        "--out",
        gw_kit.to_str().unwrap(),
    ]);
    assert!(said.contains("Gateway gw-9: credential"), "{said}");
    assert!(gw_kit.join("gateway.toml").is_file());
    let all = site.admin_ok(&["identity", "list"]);
    assert!(all.contains("gateway:gw-9"), "{all}");
    assert!(all.contains("station:station-1"), "{all}");
    let gateways = site.admin_ok(&["gateway", "list"]);
    assert!(
        gateways.contains("gw-9") && !gateways.contains("station-1"),
        "{gateways}"
    );
    let said = site.admin_ok(&["identity", "revoke", "gw-9", "--role", "gateway"]);
    assert!(said.contains("1 credential(s) revoked"), "{said}");
}

/// Fields beside the certificate were once stored unchecked: escape sequences reached
/// the administrator's terminal, and a long `chuid_guid` was a 500 on PostgreSQL but
/// stored on SQLite. Each is a 400 naming the field now, and nothing is stored.
fn every_upload_field_is_checked_and_answered_alike_on_both_backends(backend: Backend) {
    let site = Site::start_with(backend, "");
    let client = site.console.client();
    let scratch = tempfile::tempdir().unwrap();
    let (file, fp) = certificate_file(scratch.path(), "gw-fields");
    let pem = std::fs::read_to_string(file).unwrap();
    type Spoil = fn(&mut UploadRequest);
    let cases: [(&str, Spoil, &str); 6] = [
        (
            "escape in operator",
            |r| r.operator = "op\u{1b}[2J".into(),
            "bad-operator",
        ),
        (
            "empty operator",
            |r| r.operator = "  ".into(),
            "bad-operator",
        ),
        (
            "long operator",
            |r| r.operator = "o".repeat(129),
            "bad-operator",
        ),
        ("unknown slot", |r| r.slot = Some("9b".into()), "bad-slot"),
        (
            "long GUID",
            |r| r.chuid_guid = Some("A".repeat(4000)),
            "bad-guid",
        ),
        (
            "GUID with escape",
            |r| r.chuid_guid = Some(format!("{}\u{1b}", "0".repeat(31))),
            "bad-guid",
        ),
    ];
    for (what, spoil, expected) in cases {
        let mut req = request(pem.clone(), "station-1");
        spoil(&mut req);
        let (status, code, message) = refusal(client.upload(&req));
        assert_eq!(
            (status, code.as_str()),
            (400, expected),
            "{what}: {message}"
        );
    }
    assert_eq!(site.console.records(), 0, "nothing was stored");

    // What a station sends is taken, and a retired slot too.
    let mut req = request(pem, "station-1");
    req.slot = Some("82".into());
    req.chuid_guid = Some("00FF".repeat(8));
    req.operator = " Jane Doe ".into();
    let rec = client.upload(&req).unwrap();
    assert_eq!(
        (rec.sha256.as_str(), rec.operator.as_str()),
        (fp.as_str(), "Jane Doe")
    );
}

/// Issue 22.6: a `[station] id` that is not the credential's name gets the upload
/// refused; the item is kept, `outbox retry` sends it again on request, and once
/// the settings are fixed (here: no id, so the name comes from the certificate) the
/// next delivery sends it by itself, under the credential's name.
fn an_upload_refused_for_the_station_name_is_sent_once_the_settings_are_fixed(backend: Backend) {
    let site = Site::start_with(backend, "");
    let (_kit, desk) = Station::added_to(&site, "desk-9");
    let config = desk.dir.path().join("cardstation.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("id = \"desk-9\"\n"), "{text}");
    std::fs::write(
        &config,
        text.replace("id = \"desk-9\"", "id = \"desk-nine\""),
    )
    .unwrap();
    let (cert, fp) = certificate_file(desk.dir.path(), "card-a");
    let v = desk.json(&["upload", cert.to_str().unwrap(), "--json"]);
    assert_eq!(v["sync"]["rejected"], 1, "{v}");
    assert!(
        v["sync"]["error"]
            .as_str()
            .unwrap()
            .contains("station-mismatch"),
        "{v}"
    );
    let items = desk.json(&["outbox", "list", "--json"]);
    assert_eq!(items[0]["state"], "rejected", "{items}");
    // Asked for, it is sent again (and refused again: nothing changed yet).
    let v = desk.json(&["outbox", "retry", "--json"]);
    assert_eq!(v["sync"]["rejected"], 1, "{v}");
    let items = desk.json(&["outbox", "list", "--json"]);
    assert_eq!(items[0]["attempts"], 2, "{items}");
    // Unchanged settings: a sync leaves it alone.
    let v = desk.json(&["outbox", "sync", "--json"]);
    assert_eq!(v["sync"]["delivered"], 0, "{v}");
    assert_eq!(site.count("SELECT COUNT(*) FROM certificates"), 0);
    // No id: the station is the one its certificate names, and the refused item
    // goes out by itself with the next delivery.
    std::fs::write(&config, text.replace("id = \"desk-9\"\n", "")).unwrap();
    let v = desk.json(&["outbox", "sync", "--json"]);
    assert_eq!(
        (&v["sync"]["requeued"], &v["sync"]["delivered"]),
        (&serde_json::json!(1), &serde_json::json!(1)),
        "{v}"
    );
    assert_eq!(desk.outbox_len(), 0);
    assert_eq!(desk.client().get(&fp).expect("record").station_id, "desk-9");
}
