//! Certificates from the site's issuing CA (`issuance = "ca"`), over real mutual TLS
//! on both storage backends: a request the card's key signed goes in, a certificate
//! built from the console's profile comes out, chained to the CA (checked with
//! `openssl verify`). Every bad request is a 4xx with its reason and stores nothing,
//! tried as an attacker holding a stolen station or gateway credential would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod console_support;

use std::path::Path;
use std::process::Command;

use cardstation::console::ConsoleError;
use cardstation_protocol::messages::{IssuanceMode, IssueRequest};
use console_support::{console_binary, Backend, Site, Station};

on_both_backends!(
    a_card_request_is_issued_under_the_profile_and_chains_to_the_site_ca,
    every_bad_request_is_refused_with_its_reason_and_nothing_is_stored,
    a_revoked_key_gets_no_new_certificate,
    a_ca_site_bundle_carries_its_ca_and_revocations_only,
    an_est_client_enrolls_and_renews_and_openssl_reads_the_answers,
    a_renewal_retires_only_a_certificate_of_the_same_card_and_revokes_nothing,
);

const SETTINGS: &str = "issuance = \"ca\"\n\n[profiles.device]\ndays = 90\ndefault = true\norganization = \"Plant B\"\n\n[profiles.operator]\ndays = 30\n";

/// A console whose CA issues card certificates (`ca init`, then `issuance = "ca"`).
fn ca_site(backend: Backend) -> Site {
    Site::start_after(backend, SETTINGS, &[], |data| {
        cardstation_test_site::site::ca_init(data, "Plant B device CA")
    })
}

/// A card's request: its key signs it (rcgen stands in for the card here; the
/// end-to-end tests use the virtual card through pcscd).
fn request_for(key: &rcgen::KeyPair, cn: Option<&str>) -> String {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = cn {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
    }
    params.serialize_request(key).unwrap().pem().unwrap()
}

fn p256() -> rcgen::KeyPair {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

fn issue_request(request: String, label: Option<&str>, station: &str) -> IssueRequest {
    IssueRequest {
        request,
        profile: None,
        card_serial: Some(42),
        chuid_guid: Some("ab".repeat(16)),
        slot: Some("9e".into()),
        label: label.map(String::from),
        operator: "op".into(),
        station_id: station.into(),
        attestation: None,
    }
}

fn refused(result: Result<impl std::fmt::Debug, ConsoleError>) -> (u16, String) {
    match result {
        Err(ConsoleError::Rejected { status, code, .. }) => (status, code),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn openssl_verify(dir: &Path, ca_pem: &str, cert_pem: &str) -> String {
    std::fs::write(dir.join("ca.pem"), ca_pem).unwrap();
    std::fs::write(dir.join("card.pem"), cert_pem).unwrap();
    let out = Command::new("openssl")
        .args(["verify", "-x509_strict", "-purpose", "sslclient", "-CAfile"])
        .arg(dir.join("ca.pem"))
        .arg(dir.join("card.pem"))
        .output()
        .expect("openssl (scripts/setup-debian installs it)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn a_card_request_is_issued_under_the_profile_and_chains_to_the_site_ca(backend: Backend) {
    let site = ca_site(backend);
    let (_kit, desk) = Station::added_to(&site, "desk-2");
    let client = desk.client();

    let info = client.issuance().unwrap();
    assert_eq!(info.mode, IssuanceMode::Ca);
    let names: Vec<(&str, u32, bool)> = info
        .profiles
        .iter()
        .map(|p| (p.name.as_str(), p.days, p.default))
        .collect();
    assert_eq!(names, [("device", 90, true), ("operator", 30, false)]);
    let ca_pem = info.ca.clone().expect("the CA certificate");
    assert_eq!(
        ca_pem,
        std::fs::read_to_string(site.data().join("device-ca.pem")).unwrap()
    );

    let key = p256();
    let issued = client
        .request_certificate(&issue_request(
            request_for(&key, None),
            Some("gw-17 Plant B"),
            "desk-2",
        ))
        .unwrap();
    assert_eq!(issued.chain, std::slice::from_ref(&ca_pem));
    let der = cardstation_pki::certificate::from_pem_or_der(issued.certificate.as_bytes()).unwrap();
    let info = cardstation_pki::certificate::CertificateInfo::parse(&der).unwrap();
    // Built from the profile and the label, with the card's key.
    assert_eq!(info.subject, "CN=gw-17 Plant B, O=Plant B");
    let days = (info.not_after - info.not_before) / 86_400;
    assert!((89..=90).contains(&days), "{days} days");
    assert_eq!(
        info.public_key.unwrap(),
        p256::PublicKey::from_sec1_bytes(key.public_key_raw()).unwrap()
    );
    // Recorded at the console, as the station's upload would have been.
    assert_eq!(issued.record.sha256, info.sha256);
    assert_eq!(issued.record.station_id, "desk-2");
    assert_eq!(issued.record.label.as_deref(), Some("gw-17 Plant B"));
    assert_eq!(site.console.records(), 1);
    assert_eq!(client.get(&info.sha256).unwrap(), issued.record);

    // An independent verifier agrees: chained to the site CA, fit for client auth.
    let tmp = tempfile::tempdir().unwrap();
    let verdict = openssl_verify(tmp.path(), &ca_pem, &issued.certificate);
    assert!(verdict.contains(": OK"), "{verdict}");

    // The other profile, named by the request.
    let mut req = issue_request(
        request_for(&p256(), Some("J. Smith")),
        Some("J. Smith"),
        "desk-2",
    );
    req.profile = Some("operator".into());
    let issued = client.request_certificate(&req).unwrap();
    let der = cardstation_pki::certificate::from_pem_or_der(issued.certificate.as_bytes()).unwrap();
    let info = cardstation_pki::certificate::CertificateInfo::parse(&der).unwrap();
    let days = (info.not_after - info.not_before) / 86_400;
    assert!((29..=30).contains(&days), "{days} days");
    assert_eq!(site.console.records(), 2);
}

fn every_bad_request_is_refused_with_its_reason_and_nothing_is_stored(backend: Backend) {
    let site = ca_site(backend);
    let (_kit, desk) = Station::added_to(&site, "desk-2");
    let client = desk.client();
    let label = Some("gw-1");

    // The request's signature does not match its key: no proof of possession.
    let good = request_for(&p256(), None);
    let mut der = pem::parse(&good).unwrap().into_contents();
    let last = der.len() - 3;
    der[last] ^= 0x55;
    let forged = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der));
    assert_eq!(
        refused(client.request_certificate(&issue_request(forged, label, "desk-2"))),
        (400, "bad-request-signature".into())
    );

    // A subject the profile does not allow, or a CN that is not the label.
    let key = p256();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Evil Corp");
    let with_o = params.serialize_request(&key).unwrap().pem().unwrap();
    assert_eq!(
        refused(client.request_certificate(&issue_request(with_o, label, "desk-2"))),
        (400, "subject-not-allowed".into())
    );
    assert_eq!(
        refused(client.request_certificate(&issue_request(
            request_for(&key, Some("admin-gateway")),
            label,
            "desk-2"
        ))),
        (400, "subject-not-allowed".into())
    );
    // Extensions: to be a CA, other names, other usages.
    let mut ca = rcgen::CertificateParams::default();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_req = ca.serialize_request(&key).unwrap().pem().unwrap();
    assert_eq!(
        refused(client.request_certificate(&issue_request(ca_req, label, "desk-2"))),
        (400, "extension-not-allowed".into())
    );
    let san = rcgen::CertificateParams::new(vec!["console.example".to_string()])
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    assert_eq!(
        refused(client.request_certificate(&issue_request(san, label, "desk-2"))),
        (400, "extension-not-allowed".into())
    );
    let mut eku = rcgen::CertificateParams::default();
    eku.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let eku_req = eku.serialize_request(&key).unwrap().pem().unwrap();
    assert_eq!(
        refused(client.request_certificate(&issue_request(eku_req, label, "desk-2"))),
        (400, "extension-not-allowed".into())
    );
    // Not P-256.
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    assert_eq!(
        refused(client.request_certificate(&issue_request(
            request_for(&p384, None),
            label,
            "desk-2"
        ))),
        (400, "not-p256".into())
    );
    // No holder named at all, a label with an escape sequence, an unknown profile,
    // not a request, another station's name, a field out of bounds.
    assert_eq!(
        refused(client.request_certificate(&issue_request(
            request_for(&key, None),
            None,
            "desk-2"
        ))),
        (400, "label-required".into())
    );
    assert_eq!(
        refused(client.request_certificate(&issue_request(
            request_for(&key, None),
            Some("gw\u{1b}[2J"),
            "desk-2"
        ))),
        (400, "bad-label".into())
    );
    let mut unknown = issue_request(request_for(&key, None), label, "desk-2");
    unknown.profile = Some("root".into());
    assert_eq!(
        refused(client.request_certificate(&unknown)),
        (400, "unknown-profile".into())
    );
    assert_eq!(
        refused(client.request_certificate(&issue_request(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
            label,
            "desk-2"
        ))),
        (400, "malformed-request".into())
    );
    assert_eq!(
        refused(client.request_certificate(&issue_request(
            request_for(&key, None),
            label,
            "station-1"
        ))),
        (403, "station-mismatch".into())
    );
    let mut long = issue_request(request_for(&key, None), label, "desk-2");
    long.chuid_guid = Some("a".repeat(2000));
    assert_eq!(
        refused(client.request_certificate(&long)),
        (400, "bad-guid".into())
    );

    // A card-signed certificate is not taken at a CA site.
    let (file, _) = console_support::certificate_file(desk.dir.path(), "gw-self");
    let pem_text = std::fs::read_to_string(file).unwrap();
    let upload = cardstation_protocol::messages::UploadRequest {
        certificate: pem_text,
        card_serial: None,
        chuid_guid: None,
        slot: Some("9e".into()),
        label: None,
        operator: "op".into(),
        station_id: "desk-2".into(),
        attestation: None,
    };
    assert_eq!(
        refused(client.upload(&upload)),
        (409, "site-issues-certificates".into())
    );

    // A stolen gateway credential may not enroll.
    let gw_kit = site.add_gateway("gw-north");
    let thief = cardstation::console::ConsoleClient::new(&cardstation::config::ConsoleConfig {
        url: Some(site.console.url()),
        ca: Some(site.data().join("ca.pem")),
        client_cert: Some(gw_kit.join("gateway.pem")),
        client_key: Some(gw_kit.join("gateway.key")),
        bundle_key: None,
        ..Default::default()
    })
    .unwrap();
    let (status, code) = refused(thief.request_certificate(&issue_request(
        request_for(&key, None),
        label,
        "gw-north",
    )));
    assert_eq!((status, code.as_str()), (403, "gateway-not-allowed"));
    assert_eq!(refused(thief.issuance()).0, 403);

    assert_eq!(site.console.records(), 0, "nothing refused is stored");
}

fn a_revoked_key_gets_no_new_certificate(backend: Backend) {
    let site = ca_site(backend);
    let (_kit, desk) = Station::added_to(&site, "desk-2");
    let client = desk.client();
    let key = p256();
    let issued = client
        .request_certificate(&issue_request(
            request_for(&key, None),
            Some("gw-5"),
            "desk-2",
        ))
        .unwrap();
    client.revoke(&issued.record.sha256, "lost").unwrap();
    assert_eq!(
        refused(client.request_certificate(&issue_request(
            request_for(&key, None),
            Some("gw-5"),
            "desk-2"
        ))),
        (409, "key-revoked".into())
    );
    assert_eq!(site.console.records(), 1);
}

/// What gateways of a CA site believe: the CA and what was revoked, no allow-list;
/// each issuance moves the issued-up-to mark, a revocation adds one 16-byte id (its
/// key's), and the delta that carries it is small.
fn a_ca_site_bundle_carries_its_ca_and_revocations_only(backend: Backend) {
    use cardstation_protocol::trust_lists::{fingerprint_from_hex, short_id};
    let site = ca_site(backend);
    let (_kit, desk) = Station::added_to(&site, "desk-3");
    let client = desk.client();
    let ca_pem = std::fs::read(site.data().join("device-ca.pem")).unwrap();
    let ca_der = cardstation_pki::certificate::from_pem_or_der(&ca_pem).unwrap();
    let key = p256();
    let issued = client
        .request_certificate(&issue_request(
            request_for(&key, None),
            Some("gw-6"),
            "desk-3",
        ))
        .unwrap();
    let before = console_support::full_bundle(&client, site.data());
    let authority = before.lists.authority().expect("a revocation-only bundle");
    assert_eq!(authority.cas, vec![ca_der]);
    assert!(before.lists.allowed().is_empty());
    assert!(authority.revoked_ids.is_empty());
    assert!(authority.issued_up_to >= issued.record.uploaded_at);
    let issued_fp = fingerprint_from_hex(&issued.record.sha256).unwrap();
    assert_eq!(
        before.lists.standing(&issued_fp, None),
        cardstation_protocol::trust_lists::Standing::ChainDecides
    );

    client.revoke(&issued.record.sha256, "lost").unwrap();
    let after = console_support::full_bundle(&client, site.data());
    // The key as the console names it: SHA-256 of its SubjectPublicKeyInfo.
    let key_fp = fingerprint_from_hex(&cardstation_pki::fingerprint(
        &rcgen::PublicKeyData::subject_public_key_info(&key),
    ))
    .unwrap();
    assert_eq!(
        after.lists.authority().unwrap().revoked_ids,
        vec![short_id(&key_fp)]
    );
    // The delta from before: the one id, well under 2 kB.
    let delta = client
        .trust_bundle(Some(before.header.version), None)
        .unwrap();
    let cardstation::console::client::Fetched::Bundle { bytes, .. } = delta else {
        panic!("a delta was asked for");
    };
    assert!(
        bytes.len() < 700,
        "a one-revocation delta of {} bytes",
        bytes.len()
    );
}

#[test]
fn a_card_signed_site_refuses_requests_and_says_so() {
    let site = Site::start(Backend::Sqlite);
    let (_kit, desk) = Station::added_to(&site, "desk-2");
    let client = desk.client();
    assert_eq!(client.issuance().unwrap().mode, IssuanceMode::CardSigned);
    assert_eq!(
        refused(client.request_certificate(&issue_request(
            request_for(&p256(), None),
            Some("gw-1"),
            "desk-2"
        ))),
        (409, "site-cards-sign-themselves".into())
    );
}

#[test]
fn a_ca_site_without_its_ca_does_not_start_and_ca_init_keeps_an_existing_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("console.toml"), "issuance = \"ca\"\n").unwrap();
    let out = Command::new(console_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ca init"), "{err}");

    let init = |data: &Path| {
        Command::new(console_binary())
            .args(["ca", "init", "--data"])
            .arg(data)
            .output()
            .unwrap()
    };
    assert!(init(dir.path()).status.success());
    let first = std::fs::read(dir.path().join("device-ca.pem")).unwrap();
    let again = init(dir.path());
    assert!(!again.status.success());
    assert_eq!(
        std::fs::read(dir.path().join("device-ca.pem")).unwrap(),
        first
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("device-ca.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o077,
        0,
        "the CA key is readable by others: {mode:o}"
    );
}

/// `curl` with `kit`'s credential: (HTTP status, body).
fn curl(site: &Site, kit: &Path, path: &str, csr_b64: Option<&Path>) -> (u16, Vec<u8>) {
    let out_file = kit.join("answer");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-o"])
        .arg(&out_file)
        .args(["-w", "%{http_code}", "--cacert"])
        .arg(site.data().join("ca.pem"))
        .arg("--cert")
        .arg(kit.join(if kit.join("station.pem").exists() {
            "station.pem"
        } else {
            "gateway.pem"
        }))
        .arg("--key")
        .arg(kit.join(if kit.join("station.key").exists() {
            "station.key"
        } else {
            "gateway.key"
        }));
    if let Some(body) = csr_b64 {
        cmd.args(["-H", "Content-Type: application/pkcs10", "--data-binary"])
            .arg(format!("@{}", body.display()));
    }
    let out = cmd
        .arg(format!("{}{path}", site.console.url()))
        .output()
        .expect("curl (scripts/setup-debian installs it)");
    let status = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (status, std::fs::read(&out_file).unwrap_or_default())
}

/// Run `openssl ARGS`; its stdout.
fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A PKCS#10 request made by openssl (an EST client's own tooling), base64 as EST sends it.
fn openssl_request(dir: &Path, name: &str, key: &Path, new_key: bool) -> std::path::PathBuf {
    let der = dir.join(format!("{name}.csr.der"));
    let subject = format!("/CN={name}");
    let (k, d) = (key.to_str().unwrap(), der.to_str().unwrap());
    if new_key {
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            k,
            "-subj",
            &subject,
            "-outform",
            "DER",
            "-out",
            d,
        ]);
    } else {
        openssl(&[
            "req", "-new", "-key", k, "-subj", &subject, "-outform", "DER", "-out", d,
        ]);
    }
    let b64 = dir.join(format!("{name}.csr.b64"));
    openssl(&["base64", "-in", d, "-out", b64.to_str().unwrap()]);
    b64
}

/// The certificates in an EST certs-only answer (base64 CMS), as PEM, read by openssl.
fn est_certificates(dir: &Path, answer: &[u8]) -> String {
    let b64 = dir.join("answer.b64");
    std::fs::write(&b64, answer).unwrap();
    let der = dir.join("answer.p7");
    openssl(&[
        "base64",
        "-d",
        "-in",
        b64.to_str().unwrap(),
        "-out",
        der.to_str().unwrap(),
    ]);
    openssl(&[
        "pkcs7",
        "-inform",
        "DER",
        "-in",
        der.to_str().unwrap(),
        "-print_certs",
    ])
}

fn an_est_client_enrolls_and_renews_and_openssl_reads_the_answers(backend: Backend) {
    let site = ca_site(backend);
    let kit = site.add_station("est-desk");
    let work = tempfile::tempdir().unwrap();

    // cacerts: the issuing CA.
    let (status, body) = curl(&site, &kit, "/.well-known/est/cacerts", None);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let ca = est_certificates(work.path(), &body);
    let ca_file = site.data().join("device-ca.pem");
    let ca_subject = openssl(&[
        "x509",
        "-noout",
        "-subject",
        "-in",
        ca_file.to_str().unwrap(),
    ]);
    assert!(
        ca.contains(ca_subject.trim().trim_start_matches("subject=")),
        "{ca}"
    );

    // simpleenroll with a request openssl made: a certificate openssl verifies.
    let key = work.path().join("gw.key");
    let csr = openssl_request(work.path(), "est-gw-1", &key, true);
    let (status, body) = curl(&site, &kit, "/.well-known/est/simpleenroll", Some(&csr));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let issued = est_certificates(work.path(), &body);
    let issued_file = work.path().join("issued.pem");
    std::fs::write(&issued_file, &issued).unwrap();
    let verdict = openssl(&[
        "verify",
        "-purpose",
        "sslclient",
        "-CAfile",
        ca_file.to_str().unwrap(),
        issued_file.to_str().unwrap(),
    ]);
    assert!(verdict.contains(": OK"), "{verdict}");
    assert!(
        issued.contains("CN=est-gw-1") || issued.contains("CN = est-gw-1"),
        "{issued}"
    );
    assert_eq!(site.console.records(), 1);

    // simplereenroll: the same key again is a renewal; a key with no certificate is not.
    let again = openssl_request(work.path(), "est-gw-1", &key, false);
    let (status, _) = curl(&site, &kit, "/.well-known/est/simplereenroll", Some(&again));
    assert_eq!(status, 200);
    assert_eq!(site.console.records(), 2);
    let stranger = openssl_request(
        work.path(),
        "est-gw-2",
        &work.path().join("other.key"),
        true,
    );
    let (status, body) = curl(
        &site,
        &kit,
        "/.well-known/est/simplereenroll",
        Some(&stranger),
    );
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("nothing-to-renew"));

    // Not base64, and a gateway's credential: refused, nothing stored.
    let junk = work.path().join("junk");
    std::fs::write(&junk, "not a request!").unwrap();
    let (status, _) = curl(&site, &kit, "/.well-known/est/simpleenroll", Some(&junk));
    assert_eq!(status, 400);
    let gw = site.add_gateway("gw-est");
    let (status, _) = curl(&site, &gw, "/.well-known/est/simpleenroll", Some(&stranger));
    assert_eq!(status, 403);
    assert_eq!(site.console.records(), 2);
}

/// Upload a card-signed certificate made for `key` (valid `days`), with `guid`.
fn upload_for(
    client: &cardstation::console::ConsoleClient,
    key: &rcgen::KeyPair,
    guid: Option<&str>,
    days: i64,
) -> String {
    let mut params = console_support::device_params("gw-r");
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    let cert = params.self_signed(key).unwrap();
    client
        .upload(&cardstation_protocol::messages::UploadRequest {
            certificate: cert.pem(),
            card_serial: None,
            chuid_guid: guid.map(String::from),
            slot: Some("9e".into()),
            label: None,
            operator: "op".into(),
            station_id: "desk-2".into(),
            attestation: None,
        })
        .unwrap()
        .sha256
}

fn a_renewal_retires_only_a_certificate_of_the_same_card_and_revokes_nothing(backend: Backend) {
    let site = Site::start(backend);
    let (_kit, desk) = Station::added_to(&site, "desk-2");
    let client = desk.client();
    let key = p256();
    let old = upload_for(&client, &key, None, 30);
    let new = upload_for(&client, &key, None, 365);
    let stranger = upload_for(&client, &p256(), None, 400);
    let version = |c: &cardstation::console::ConsoleClient| {
        console_support::full_bundle(c, site.data()).header.version
    };
    let before = version(&client);

    // Another card's certificate, one ending sooner, itself, an unknown one: refused.
    assert_eq!(
        refused(client.supersede(&old, &stranger)),
        (409, "not-the-same-card".into())
    );
    assert_eq!(
        refused(client.supersede(&new, &old)),
        (409, "not-later".into())
    );
    assert_eq!(
        refused(client.supersede(&old, &old)),
        (400, "same-certificate".into())
    );
    assert_eq!(
        refused(client.supersede(&old, &"ab".repeat(32))),
        (404, "unknown-certificate".into())
    );

    // The same key: marked renewed, still active, nothing revoked, the bundle unchanged.
    let rec = client.supersede(&old, &new).unwrap();
    assert_eq!(rec.superseded_by.as_deref(), Some(new.as_str()));
    assert_eq!(
        rec.status,
        cardstation_protocol::messages::CertificateStatus::Active
    );
    assert_eq!(
        client.supersede(&old, &new).unwrap().superseded_by,
        rec.superseded_by
    );
    assert_eq!(
        refused(client.supersede(&old, &stranger)).1,
        "already-superseded"
    );
    let lists = console_support::full_lists(&client, site.data());
    for fp in [&old, &new] {
        assert!(lists.is_allowed_hex(fp), "{fp} left the allow-list");
    }
    assert_eq!(version(&client), before);
    assert!(site.admin_ok(&["audit"]).contains("supersede"));

    // The same CHUID (a renewal onto a new key of the same card) counts as the same card.
    let a = upload_for(&client, &p256(), Some(&"cd".repeat(16)), 30);
    let b = upload_for(&client, &p256(), Some(&"cd".repeat(16)), 60);
    client.supersede(&a, &b).unwrap();

    // A revoked certificate is not renewed (the same card, so only the revocation stops it).
    let c = upload_for(&client, &p256(), Some(&"ef".repeat(16)), 30);
    client.revoke(&c, "lost").unwrap();
    let d = upload_for(&client, &p256(), Some(&"ef".repeat(16)), 60);
    assert_eq!(refused(client.supersede(&c, &d)), (409, "revoked".into()));
}
