//! Issue 23.5: a bundle server that sends without end (chunked, no Content-Length)
//! cannot fill the receiver's memory: the download stops at the size the bundle's
//! header allows, or at `max_bundle_mib` where the header gives no bound, and says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cardstation_console_client::{ConsoleClient, ConsoleConfig, ConsoleError, Fetched};
use cardstation_protocol::bundle::{sign_full, Header};
use cardstation_protocol::trust_lists::TrustLists;

/// Serve `prefix` and then 'A's for ever, chunked, to every GET on 127.0.0.1.
/// Returns the port and the count of bytes written so far.
fn endless_server(prefix: Vec<u8>) -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let counter = counter.clone();
            let prefix = prefix.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
                if conn.write_all(head.as_bytes()).is_err() {
                    return;
                }
                let chunk = |data: &[u8]| {
                    let mut c = format!("{:x}\r\n", data.len()).into_bytes();
                    c.extend_from_slice(data);
                    c.extend_from_slice(b"\r\n");
                    c
                };
                if !prefix.is_empty() && conn.write_all(&chunk(&prefix)).is_err() {
                    return;
                }
                counter.fetch_add(prefix.len() as u64, Ordering::Relaxed);
                let junk = chunk(&[b'A'; 64 * 1024]);
                while conn.write_all(&junk).is_ok() {
                    counter.fetch_add(64 * 1024, Ordering::Relaxed);
                }
            });
        }
    });
    (port, sent)
}

/// A console client whose bundles come from `http://127.0.0.1:PORT` (the console
/// itself is never asked). Its credential is made here.
fn client(dir: &Path, port: u16, max_bundle_mib: u64) -> ConsoleClient {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "desk-1");
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("station.pem"), cert.pem()).unwrap();
    let key_path = dir.join("station.key");
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let cfg = ConsoleConfig {
        url: Some("https://127.0.0.1:9".into()),
        ca: Some(dir.join("ca.pem")),
        client_cert: Some(dir.join("station.pem")),
        client_key: Some(key_path),
        bundle_url: Some(format!("http://127.0.0.1:{port}")),
        request_timeout_secs: 60,
        max_bundle_mib,
        ..Default::default()
    };
    assert_eq!(
        cardstation_console_client::client_name(&cfg)
            .unwrap()
            .as_deref(),
        Some("desk-1")
    );
    ConsoleClient::new(&cfg).unwrap()
}

/// A signed full bundle of 1,000 cards.
fn full_bundle() -> Vec<u8> {
    let allowed: Vec<[u8; 32]> = (0..1000u32)
        .map(|i| {
            let mut fp = [0u8; 32];
            fp[..4].copy_from_slice(&i.to_be_bytes());
            fp
        })
        .collect();
    let lists = TrustLists::from_unsorted(allowed, vec![], vec![]);
    let header = Header::for_lists([7; 16], 1, 100, 200, [0; 32], &lists);
    let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    sign_full(&header, &lists, &[], &key).unwrap()
}

fn refused_fast(
    client: &ConsoleClient,
    sent: &AtomicU64,
    since: Option<u64>,
    limit: u64,
) -> String {
    let started = Instant::now();
    let got = client.trust_bundle(since, None);
    let took = started.elapsed();
    let message = match got {
        Err(e @ ConsoleError::Malformed(_)) => e.to_string(),
        Err(e) => panic!("wrong error: {e}"),
        Ok(Fetched::Bundle { bytes, .. }) => panic!("{} bytes taken", bytes.len()),
        Ok(Fetched::NotModified { .. }) => panic!("304"),
    };
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(message.contains("larger than"), "{message}");
    // The server got ahead only by what the sockets buffer.
    std::thread::sleep(Duration::from_millis(200));
    let sent = sent.load(Ordering::Relaxed);
    assert!(
        sent < limit + (16 << 20),
        "{sent} bytes sent for a limit of {limit}"
    );
    message
}

#[test]
fn a_full_bundle_followed_by_endless_bytes_stops_at_the_size_its_header_allows() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = full_bundle();
    let (port, sent) = endless_server(bundle.clone());
    let client = client(dir.path(), port, 512);
    let message = refused_fast(&client, &sent, None, 1 << 20);
    assert!(message.contains("the size its header allows"), "{message}");
}

#[test]
fn a_delta_without_end_stops_at_max_bundle_mib() {
    let dir = tempfile::tempdir().unwrap();
    // A delta's header does not bound its removals: the setting does.
    let mut delta = full_bundle();
    delta[5] = 2;
    let (port, sent) = endless_server(delta);
    let client = client(dir.path(), port, 4);
    let message = refused_fast(&client, &sent, Some(1), 4 << 20);
    assert!(message.contains("max_bundle_mib"), "{message}");
}

#[test]
fn endless_bytes_that_are_no_bundle_are_handed_on_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (port, _) = endless_server(Vec::new());
    let client = client(dir.path(), port, 512);
    match client.trust_bundle(None, None).unwrap() {
        Fetched::Bundle { bytes, .. } => assert!(bytes.len() <= 128 * 1024, "{}", bytes.len()),
        Fetched::NotModified { .. } => panic!("304"),
    }
}
