//! Certificate search over a large console, driven by `bench/search`:
//!   `bench_search fill DATABASE N`      fill an empty console database with N records
//!   `bench_search query CONSOLE_DIR URL` time searches over mutual TLS; prints JSON
//! The records look like a site's: devices labelled "gw-N Plant P", every seventh
//! card a person's ("First Last"), card serials, GUIDs, 1 % revoked.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use cardstation_console::storage::{self, Database, FullRecord, Snapshot};
use cardstation_protocol::messages::{CertificateRecord, CertificateStatus, SearchPage};

const FIRST: [&str; 10] = [
    "Anna", "Bruno", "Chloe", "David", "Emma", "Felix", "Greta", "Hugo", "Ines", "Jonas",
];
const LAST: [&str; 10] = [
    "Berg", "Costa", "Dahl", "Eriksen", "Fischer", "Garcia", "Hansen", "Ivanova", "Jensen", "Smith",
];
/// When the first record was uploaded (the rest follow a second apart).
const START: i64 = 1_700_000_000;

fn fingerprint(i: usize) -> String {
    hex::encode(Sha256::digest(format!("bench certificate {i}")))
}

fn label(i: usize) -> String {
    if i.is_multiple_of(7) {
        let p = i / 7;
        format!("{} {}", FIRST[p % 10], LAST[(p / 10) % 10])
    } else {
        format!("gw-{i} Plant {}", (b'A' + (i % 20) as u8) as char)
    }
}

fn record(i: usize) -> FullRecord {
    let revoked = i % 100 == 3;
    FullRecord {
        pem: String::from("(not needed by search)"),
        record: CertificateRecord {
            sha256: fingerprint(i),
            subject: format!("CN=device {i},O=Bench"),
            not_after: START + 86_400 * 3650,
            card_serial: Some(1_000_000 + i as u32),
            chuid_guid: Some(hex::encode(&Sha256::digest(format!("guid {i}"))[..16])),
            slot: Some("9e".into()),
            label: Some(label(i)),
            operator: "bench".into(),
            station_id: format!("desk-{}", i % 5),
            uploaded_at: START + i as i64,
            status: if revoked {
                CertificateStatus::Revoked
            } else {
                CertificateStatus::Active
            },
            revocation_reason: revoked.then(|| "lost".into()),
            revoked_at: revoked.then_some(START + i as i64 + 60),
            revoked_by: revoked.then(|| "desk-0".into()),
            superseded_by: None,
            superseded_at: None,
            attestation: None,
        },
        key_sha256: Some(hex::encode(Sha256::digest(format!("key {i}")))),
        revoked_by: revoked.then(|| "desk-0".into()),
        attestation_evidence: None,
    }
}

fn fill(database: &str, n: usize) -> Result<serde_json::Value, String> {
    let db = Database::parse(database).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let started = Instant::now();
    runtime.block_on(async {
        let store = storage::open(&db).await.map_err(|e| e.to_string())?;
        let snapshot = Snapshot {
            bundle_version: n as u64 + 1,
            records: (0..n).map(record).collect(),
            identities: Vec::new(),
            revoked_keys: Vec::new(),
            audit: Vec::new(),
            // No chain yet: the console cuts its first bundle version when it starts.
            bundle_chain: Vec::new(),
            bundle_published: None,
            events: Vec::new(),
            anchors: Vec::new(),
            attested_since: None,
        };
        store.import(&snapshot).await.map_err(|e| e.to_string())
    })?;
    Ok(serde_json::json!({"records": n, "fill_secs": started.elapsed().as_secs_f64()}))
}

fn client(dir: &Path) -> Result<reqwest::blocking::Client, String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let read = |name: &str| std::fs::read(dir.join(name)).map_err(|x| format!("{name}: {x}"));
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&read("ca.pem")?) {
        roots.add(c.map_err(|x| e(&x))?).map_err(|x| e(&x))?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read("station.pem")?)
        .collect::<Result<_, _>>()
        .map_err(|x| e(&x))?;
    let key = PrivateKeyDer::from_pem_slice(&read("station.key")?).map_err(|x| e(&x))?;
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|x| e(&x))?
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .map_err(|x| e(&x))?;
    reqwest::blocking::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|x| e(&x))
}

fn page(
    http: &reqwest::blocking::Client,
    url: &str,
    params: &[(&str, String)],
) -> Result<SearchPage, String> {
    let url = reqwest::Url::parse_with_params(&format!("{url}/v1/certificates"), params)
        .map_err(|e| e.to_string())?;
    let rsp = http.get(url).send().map_err(|e| e.to_string())?;
    if !rsp.status().is_success() {
        return Err(format!(
            "{}: {}",
            rsp.status(),
            rsp.text().unwrap_or_default()
        ));
    }
    rsp.json().map_err(|e| e.to_string())
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(((v.len() - 1) as f64 * p).round() as usize)
        .copied()
        .unwrap_or(0.0)
}

/// Runs per search; the first (connection set-up, cold caches) is not counted.
const RUNS: usize = 21;

fn query(dir: &str, url: &str) -> Result<serde_json::Value, String> {
    let http = client(Path::new(dir))?;
    let url = url.trim_end_matches('/');
    let fp = fingerprint(31_415);
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("newest page, no search", vec![]),
        (
            "a holder's full name (\"Anna Berg\")",
            vec![("search", "Anna Berg".into())],
        ),
        (
            "a device label (\"gw-51234\")",
            vec![("search", "gw-51234".into())],
        ),
        ("a card serial", vec![("search", "1031415".into())]),
        (
            "a fingerprint prefix (8 hex digits)",
            vec![("search", fp[..8].to_string())],
        ),
        (
            "a word on most cards (\"plant\")",
            vec![("search", "plant".into())],
        ),
        (
            "a common surname (\"smith\")",
            vec![("search", "smith".into())],
        ),
        ("revoked cards", vec![("status", "revoked".into())]),
        (
            "one station's active cards",
            vec![("station", "desk-3".into()), ("status", "active".into())],
        ),
        ("no match (\"zzzz\")", vec![("search", "zzzz".into())]),
    ];
    let mut out = serde_json::Map::new();
    for (name, params) in cases {
        let mut times = Vec::new();
        let mut matches = 0;
        for run in 0..RUNS {
            let t = Instant::now();
            let p = page(&http, url, &params)?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            matches = p.records.len();
            if run > 0 {
                times.push(ms);
            }
        }
        out.insert(
            name.to_string(),
            serde_json::json!({
                "first_page_records": matches,
                "median_ms": percentile(&mut times, 0.5),
                "p95_ms": percentile(&mut times, 0.95),
            }),
        );
    }
    // Deep in a long result: the 20th page of "plant", cursor by cursor.
    let mut params = vec![("search", "plant".to_string())];
    let mut deep = Vec::new();
    for n in 1..=20 {
        let t = Instant::now();
        let p = page(&http, url, &params)?;
        if n == 20 {
            deep.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let Some(c) = p.next_cursor else {
            return Err("\"plant\" has fewer than 20 pages".into());
        };
        params = vec![("search", "plant".into()), ("cursor", c)];
    }
    out.insert(
        "page 20 of \"plant\" (by cursor)".into(),
        serde_json::json!({"first_page_records": 50, "median_ms": deep[0], "p95_ms": deep[0]}),
    );
    Ok(serde_json::Value::Object(out))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["fill", db, n] => n
            .parse()
            .map_err(|_| "N must be a number".to_string())
            .and_then(|n| fill(db, n)),
        ["query", dir, url] => query(dir, url),
        _ => Err("usage: bench_search fill DATABASE N | bench_search query CONSOLE_DIR URL".into()),
    };
    match result {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
