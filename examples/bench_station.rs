//! Measurements that need the library in-process; driven by `bench/run`.
//!
//! `bench_station insert-latency CARDSTATION_BIN` — time from a virtual card
//!   appearing in "Virtual PCD 00 01" to the reader watcher reporting it.
//! `bench_station outbox DATA_DIR CONFIG N` — queue N uploads, deliver them over
//!   mutual TLS, report throughput.
//!
//! Prints one JSON object on stdout.

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cardstation::app::station::Station;
use cardstation::config::Paths;
use cardstation::console::outbox;
use cardstation::console::ConsoleClient;
use cardstation_pcsc::watcher::{WatchEvent, Watcher};
use cardstation_pcsc::CardPresence;
use cardstation_protocol::messages::UploadRequest;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("insert-latency") => {
            insert_latency(args.get(2).map(String::as_str).unwrap_or("cardstation"))
        }
        Some("outbox") => outbox_load(&args[2..]),
        _ => Err("usage: bench_station insert-latency BIN | outbox DATA_DIR CONFIG N".into()),
    };
    match result {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

/// The watcher's view of "Virtual PCD 00 01": present or not.
fn insert_latency(bin: &str) -> Result<serde_json::Value, String> {
    const READER: &str = "Virtual PCD 00 01";
    let (tx, rx) = mpsc::channel();
    let _watcher = Watcher::spawn(move |e| {
        if let WatchEvent::Readers(list) = e {
            let present = list
                .iter()
                .any(|r| r.name == READER && r.card == CardPresence::Present);
            let _ = tx.send((Instant::now(), present));
        }
    })
    .map_err(|e| e.to_string())?;
    let mut samples = Vec::new();
    for _ in 0..5 {
        // Wait until the reader is empty.
        while let Ok((_, present)) = rx.recv_timeout(Duration::from_secs(10)) {
            if !present {
                break;
            }
        }
        let mut card = Command::new(bin)
            .args(["virtual-card", "--port", "35964", "-v"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        // The card process says when vpcd has it; from then on it is pcscd's and ours.
        let stderr = card.stderr.take().ok_or("no stderr")?;
        let (conn_tx, conn_rx) = mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("virtual card connected") {
                    let _ = conn_tx.send(Instant::now());
                }
            }
        });
        let connected = conn_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        let seen = loop {
            let (at, present) = rx
                .recv_timeout(Duration::from_secs(10))
                .map_err(|e| e.to_string())?;
            if present {
                break at;
            }
        };
        samples.push(seen.saturating_duration_since(connected).as_secs_f64() * 1000.0);
        let _ = card.kill();
        let _ = card.wait();
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    Ok(serde_json::json!({"insert_to_event_ms": samples}))
}

fn outbox_load(args: &[String]) -> Result<serde_json::Value, String> {
    let [data, config, n] = args else {
        return Err("outbox DATA_DIR CONFIG N".into());
    };
    let n: usize = n.parse().map_err(|_| "N must be a number")?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let paths =
        Paths::resolve(Some(data.into()), Some(config.into())).map_err(|e| e.to_string())?;
    let station = Station::open(paths).map_err(|e| e.to_string())?;
    let started = Instant::now();
    // Distinct certificates: the console keys on the fingerprint.
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    for i in 0..n {
        let mut params = rcgen::CertificateParams::new(vec![format!("gw-{i}.example")])
            .map_err(|e| e.to_string())?;
        params.serial_number = Some((i as u64 + 1).into());
        // A device certificate the console accepts, for the console's first station.
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::days(3650);
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        let req = UploadRequest {
            certificate: cert.pem(),
            card_serial: None,
            chuid_guid: None,
            slot: Some("9e".into()),
            label: Some(format!("gw-{i}")),
            operator: "bench".into(),
            station_id: "station-1".into(),
            attestation: None,
        };
        outbox::enqueue_upload(
            &station.store,
            &cardstation_pki::fingerprint(cert.der()),
            &req,
        )
        .map_err(|e| e.to_string())?;
    }
    let queued = started.elapsed().as_secs_f64();
    let client = ConsoleClient::new(&station.config.console).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let settings = station.delivery_settings();
    let sender = outbox::Sender {
        station_id: &station.station_id,
        settings: &settings,
    };
    let report = outbox::sync(&station.store, &client, sender).map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "queued": n, "queue_secs": queued, "delivered": report.delivered, "pending": report.pending,
        "deliver_secs": secs, "per_second": report.delivered as f64 / secs,
    }))
}
