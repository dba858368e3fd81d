//! Console load, driven by `bench/console`: `bench_console CONSOLE_DIR N THREADS URL...`
//! uploads N fresh certificates from THREADS threads spread over the console
//! instances at URL..., then times trust bundles: rebuilt (a revocation just
//! changed the version) and cached (nothing changed). Prints one JSON object.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use cardstation_protocol::messages::{RevokeRequest, UploadRequest};

/// A console client with the first-start station identity, over mutual TLS.
struct Client {
    http: reqwest::blocking::Client,
    base: String,
}

impl Client {
    fn send(&self, req: reqwest::blocking::RequestBuilder) -> Result<(), String> {
        let rsp = req.send().map_err(|e| e.to_string())?;
        if rsp.status().is_success() {
            rsp.bytes().map(|_| ()).map_err(|e| e.to_string())
        } else {
            Err(format!(
                "{}: {}",
                rsp.status(),
                rsp.text().unwrap_or_default()
            ))
        }
    }
    fn upload(&self, req: &UploadRequest) -> Result<(), String> {
        self.send(
            self.http
                .post(format!("{}/v1/certificates", self.base))
                .json(req),
        )
    }
    fn revoke(&self, fp: &str, reason: &str) -> Result<(), String> {
        self.send(
            self.http
                .post(format!("{}/v1/certificates/{fp}/revoke", self.base))
                .json(&RevokeRequest {
                    reason: reason.into(),
                }),
        )
    }
    fn trust_bundle(&self) -> Result<(), String> {
        self.send(self.http.get(format!("{}/v1/trust-bundle", self.base)))
    }
}

fn client(dir: &Path, url: &str) -> Result<Client, String> {
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
    let http = reqwest::blocking::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|x| e(&x))?;
    Ok(Client {
        http,
        base: url.trim_end_matches('/').to_string(),
    })
}

fn certificate(i: usize) -> Result<(String, String), String> {
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let mut params =
        rcgen::CertificateParams::new(vec![format!("gw-{i}.bench")]).map_err(|e| e.to_string())?;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(3650);
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    Ok((cert.pem(), cardstation_pki::fingerprint(cert.der())))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn run(args: &[String]) -> Result<serde_json::Value, String> {
    let [dir, n, threads, urls @ ..] = args else {
        return Err("usage: bench_console CONSOLE_DIR N THREADS URL...".into());
    };
    let dir = PathBuf::from(dir);
    let n: usize = n.parse().map_err(|_| "N must be a number")?;
    let threads: usize = threads.parse().map_err(|_| "THREADS must be a number")?;
    if urls.is_empty() || threads == 0 {
        return Err("give at least one URL and one thread".into());
    }
    let certs = Arc::new((0..n).map(certificate).collect::<Result<Vec<_>, _>>()?);

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let c = client(&dir, &urls[t % urls.len()]);
            let (certs, next) = (certs.clone(), next.clone());
            std::thread::spawn(move || -> Result<(), String> {
                let c = c?;
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some((pem, _)) = certs.get(i) else {
                        return Ok(());
                    };
                    c.upload(&UploadRequest {
                        certificate: pem.clone(),
                        card_serial: None,
                        chuid_guid: None,
                        slot: Some("9a".into()),
                        label: None,
                        operator: "bench".into(),
                        station_id: "station-1".into(),
                        attestation: None,
                    })?;
                }
            })
        })
        .collect();
    for w in workers {
        w.join().map_err(|_| "an upload thread panicked")??;
    }
    let upload_secs = started.elapsed().as_secs_f64();

    // Bundles: each revocation changes the version, so the next bundle is built
    // from the database; asking again without a change is served from the cache.
    let clients = urls
        .iter()
        .map(|u| client(&dir, u))
        .collect::<Result<Vec<_>, _>>()?;
    let (mut rebuilt, mut cached) = (Vec::new(), Vec::new());
    for (i, (_, fp)) in certs.iter().take(20).enumerate() {
        clients[i % clients.len()].revoke(fp, "lost")?;
        let c = &clients[(i + 1) % clients.len()];
        let t = Instant::now();
        c.trust_bundle()?;
        rebuilt.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        c.trust_bundle()?;
        cached.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(serde_json::json!({
        "uploads": n,
        "threads": threads,
        "instances": urls.len(),
        "upload_secs": upload_secs,
        "uploads_per_sec": n as f64 / upload_secs,
        "bundle_rebuilt_median_ms": median(rebuilt),
        "bundle_cached_median_ms": median(cached),
    }))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
