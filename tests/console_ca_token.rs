//! The issuing CA's key on a PKCS#11 token (SoftHSM standing in for an HSM): `ca init`
//! certifies the token's key and writes no key file, `serve` signs every card
//! certificate through the token, and openssl verifies the chain.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod console_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use console_support::{console_binary, Backend, Site, Station};

const TOKEN: &str = "Plant B CA";
const USER_PIN: &str = "246810";

fn softhsm_module() -> Option<PathBuf> {
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A token of its own (SOFTHSM2_CONF for this test process and the console it
/// starts) holding a P-256 key pair labelled "device-ca", as an administrator makes
/// one with softhsm2-util and pkcs11-tool.
fn token_with_a_ca_key(dir: &Path, module: &Path) -> PathBuf {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    std::env::set_var("SOFTHSM2_CONF", &conf);
    run(
        "softhsm2-util",
        &[
            "--init-token",
            "--free",
            "--label",
            TOKEN,
            "--so-pin",
            "12345678",
            "--pin",
            USER_PIN,
        ],
    );
    run(
        "pkcs11-tool",
        &[
            "--module",
            module.to_str().unwrap(),
            "--token-label",
            TOKEN,
            "--login",
            "--pin",
            USER_PIN,
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--label",
            "device-ca",
        ],
    );
    let pin = dir.join("ca-token.pin");
    std::fs::write(&pin, format!("{USER_PIN}\n")).unwrap();
    pin
}

fn token_settings(module: &Path, key: &str, pin: &Path) -> String {
    format!(
        "issuance = \"ca\"\n\n[issuing_ca_token]\nmodule = {:?}\ntoken = {TOKEN:?}\nkey = {key:?}\npin_file = {:?}\n",
        module.display().to_string(),
        pin.display().to_string()
    )
}

fn ca_init(data: &Path) -> std::process::Output {
    Command::new(console_binary())
        .args(["ca", "init", "--name", "Plant B token CA", "--data"])
        .arg(data)
        .output()
        .unwrap()
}

#[test]
fn a_ca_key_on_a_pkcs11_token_signs_card_certificates_and_never_reaches_the_disk() {
    let Some(module) = softhsm_module() else {
        assert!(
            std::env::var_os("CARDSTATION_REQUIRE_SOFTHSM").is_none(),
            "SoftHSM is required here: apt-get install softhsm2 (scripts/setup-debian)"
        );
        eprintln!("skipped: no SoftHSM (apt-get install softhsm2)");
        return;
    };
    let hsm = tempfile::tempdir().unwrap();
    let pin = token_with_a_ca_key(hsm.path(), &module);

    // A key label the token does not hold: `ca init` says which, and writes nothing.
    let wrong = tempfile::tempdir().unwrap();
    std::fs::write(
        wrong.path().join("console.toml"),
        token_settings(&module, "no-such-key", &pin),
    )
    .unwrap();
    let out = ca_init(wrong.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("holds no private key labelled \"no-such-key\""),
        "{stderr}"
    );
    assert!(!wrong.path().join("device-ca.pem").exists());

    let settings = token_settings(&module, "device-ca", &pin);
    let site = Site::start_after(Backend::Sqlite, &settings, &[], |data| {
        std::fs::write(data.join("console.toml"), &settings).unwrap();
        let out = ca_init(data);
        assert!(
            out.status.success(),
            "ca init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("on token"));
        assert!(!data.join("device-ca.key").exists(), "no key file");
    });
    let (_kit, desk) = Station::added_to(&site, "desk-t");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let request = params.serialize_request(&key).unwrap().pem().unwrap();
    let issued = desk
        .client()
        .request_certificate(&cardstation_protocol::messages::IssueRequest {
            request,
            profile: None,
            card_serial: Some(7),
            chuid_guid: None,
            slot: Some("9e".into()),
            label: Some("gw-40".into()),
            operator: "tester".into(),
            station_id: "desk-t".into(),
            attestation: None,
        })
        .unwrap();

    // The chain verifies with openssl against the CA certificate `ca init` wrote.
    let cert = hsm.path().join("gw-40.pem");
    std::fs::write(&cert, &issued.certificate).unwrap();
    let ca = site.data().join("device-ca.pem");
    let verdict = run(
        "openssl",
        &[
            "verify",
            "-x509_strict",
            "-purpose",
            "sslclient",
            "-CAfile",
            ca.to_str().unwrap(),
            cert.to_str().unwrap(),
        ],
    );
    assert!(verdict.contains(": OK"), "{verdict}");
    let issuer = run(
        "openssl",
        &["x509", "-noout", "-issuer", "-in", cert.to_str().unwrap()],
    );
    assert!(issuer.contains("Plant B token CA"), "{issuer}");
}
