//! The gateway's HTTPS client of the console (blocking, rustls on ring). The server
//! certificate is always verified against the configured CA — there is no switch to
//! turn that off — and the gateway presents its own client certificate (its identity:
//! it may fetch bundles and post events, nothing else).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use cardstation_protocol::bundle;
use cardstation_protocol::messages::{EventBatch, EventsAnswer};

use crate::config::ConsoleConfig;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConsoleError {
    #[error("no console is configured: set [console] url, ca, client_cert and client_key")]
    NotConfigured,
    #[error("console settings: {0}")]
    Settings(String),
    #[error("the console at {url} cannot be reached ({detail}); the gateway keeps deciding on its last good trust bundle and queues its events")]
    Unreachable { url: String, detail: String },
    #[error("the TLS connection to the console failed: {0}. Check that [console] ca is the console's CA and that this gateway's certificate was issued by it")]
    Tls(String),
    #[error("the console refused the request ({status} {code}): {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the console failed ({status}): {message}; it will be tried again")]
    ServerError { status: u16, message: String },
    #[error("the console sent an answer that cannot be read: {0}")]
    Malformed(String),
}

impl ConsoleError {
    /// Worth trying again later, as opposed to a refusal that needs an operator.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ConsoleError::Unreachable { .. } | ConsoleError::ServerError { .. }
        )
    }
}

/// What a conditional bundle fetch brought.
pub enum Fetched {
    /// The console's bundle is the one held (HTTP 304): nothing was downloaded.
    NotModified { etag: Option<String> },
    Bundle {
        bytes: Vec<u8>,
        etag: Option<String>,
    },
}

pub struct ConsoleClient {
    http: reqwest::blocking::Client,
    base: String,
    /// Published bundle files elsewhere (`[console] bundle_url`) and their client
    /// (no client certificate: a web server or CDN does not ask for one).
    bundle_url: Option<(String, reqwest::blocking::Client)>,
}

/// The client for `bundle_url`: public CA roots and the console CA, no client certificate.
fn bundle_http(cfg: &ConsoleConfig, url: &str) -> Result<reqwest::blocking::Client, ConsoleError> {
    let settings = |e: String| ConsoleError::Settings(e);
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(settings(format!(
            "[console] bundle_url must start with https:// or http:// (got {url})"
        )));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if cfg.ca.is_some() {
        for cert in CertificateDer::pem_slice_iter(&read(&cfg.ca, "ca")?).flatten() {
            let _ = roots.add(cert);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| settings(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::blocking::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(Duration::from_secs(cfg.connect_timeout_secs))
        .timeout(Duration::from_secs(cfg.request_timeout_secs.max(60)))
        .user_agent(concat!("cardstation-gateway/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| settings(e.to_string()))
}

fn read(path: &Option<std::path::PathBuf>, what: &str) -> Result<Vec<u8>, ConsoleError> {
    let path: &Path = path
        .as_deref()
        .ok_or_else(|| ConsoleError::Settings(format!("[console] {what} is not set")))?;
    std::fs::read(path)
        .map_err(|e| ConsoleError::Settings(format!("cannot read {what} {}: {e}", path.display())))
}

fn tls_config(cfg: &ConsoleConfig) -> Result<rustls::ClientConfig, ConsoleError> {
    let settings = |e: String| ConsoleError::Settings(e);
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&read(&cfg.ca, "ca")?) {
        let cert = cert.map_err(|e| settings(format!("[console] ca: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| settings(format!("[console] ca: {e}")))?;
    }
    if roots.is_empty() {
        return Err(settings("[console] ca holds no certificate".into()));
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read(&cfg.client_cert, "client_cert")?)
            .collect::<Result<_, _>>()
            .map_err(|e| settings(format!("[console] client_cert: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(&read(&cfg.client_key, "client_key")?)
        .map_err(|e| settings(format!("[console] client_key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| settings(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| settings(format!("client certificate and key do not match: {e}")))
}

impl ConsoleClient {
    pub fn new(cfg: &ConsoleConfig) -> Result<Self, ConsoleError> {
        let url = cfg.url.as_deref().ok_or(ConsoleError::NotConfigured)?;
        if !url.starts_with("https://") {
            return Err(ConsoleError::Settings(format!(
                "[console] url must start with https:// (got {url})"
            )));
        }
        let http = reqwest::blocking::Client::builder()
            .tls_backend_preconfigured(tls_config(cfg)?)
            .connect_timeout(Duration::from_secs(cfg.connect_timeout_secs))
            .timeout(Duration::from_secs(cfg.request_timeout_secs))
            .user_agent(concat!("cardstation-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConsoleError::Settings(e.to_string()))?;
        let bundle_url = match cfg.bundle_url.as_deref() {
            Some(u) => Some((u.to_string(), bundle_http(cfg, u)?)),
            None => None,
        };
        Ok(ConsoleClient {
            http,
            base: url.trim_end_matches('/').to_string(),
            bundle_url,
        })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// The trust bundle: the delta from `since` if the source has one, else the full
    /// bundle; conditional on `etag` (304 when it is still current).
    pub fn trust_bundle(
        &self,
        since: Option<u64>,
        etag: Option<&str>,
    ) -> Result<Fetched, ConsoleError> {
        let (delta, full) = bundle::fetch_urls(
            &self.base,
            self.bundle_url.as_ref().map(|(u, _)| u.as_str()),
            since,
        );
        if let Some(url) = delta {
            if let Some(f) = self.fetch_bundle(&url, etag)? {
                return Ok(f);
            }
        }
        self.fetch_bundle(&full, etag)?
            .ok_or_else(|| ConsoleError::Rejected {
                status: 404,
                code: "not-found".into(),
                message: format!("no trust bundle at {full}"),
            })
    }

    /// One GET; `None` for 404 (no such delta: take the full bundle).
    fn fetch_bundle(&self, url: &str, etag: Option<&str>) -> Result<Option<Fetched>, ConsoleError> {
        let http = self.bundle_url.as_ref().map_or(&self.http, |(_, h)| h);
        let mut req = http.get(url);
        if let Some(tag) = etag {
            req = req.header(reqwest::header::IF_NONE_MATCH, tag);
        }
        let rsp = req.send().map_err(|e| self.classify(&e))?;
        let status = rsp.status();
        let tag = rsp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Some(Fetched::NotModified {
                etag: tag.or(etag.map(str::to_string)),
            }));
        }
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if rsp
            .content_length()
            .is_some_and(|n| n > bundle::MAX_BUNDLE_BYTES)
        {
            return Err(ConsoleError::Malformed(format!(
                "the trust bundle at {url} is larger than {} bytes; refused",
                bundle::MAX_BUNDLE_BYTES
            )));
        }
        if !status.is_success() {
            return Err(self
                .answer::<serde_json::Value>(rsp)
                .err()
                .unwrap_or_else(|| ConsoleError::Malformed(format!("HTTP {status} from {url}"))));
        }
        let body = rsp.bytes().map_err(|e| self.classify(&e))?;
        Ok(Some(Fetched::Bundle {
            bytes: Vec::from(body),
            etag: tag,
        }))
    }

    /// `POST /v1/events`.
    pub fn post_events(&self, batch: &EventBatch) -> Result<EventsAnswer, ConsoleError> {
        let rsp = self
            .http
            .post(format!("{}/v1/events", self.base))
            .json(batch)
            .send()
            .map_err(|e| self.classify(&e))?;
        self.answer(rsp)
    }

    fn answer<T: serde::de::DeserializeOwned>(
        &self,
        rsp: reqwest::blocking::Response,
    ) -> Result<T, ConsoleError> {
        let status = rsp.status();
        let body = rsp.bytes().map_err(|e| self.classify(&e))?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| ConsoleError::Malformed(e.to_string()));
        }
        let (code, message) =
            match serde_json::from_slice::<cardstation_protocol::messages::ErrorBody>(&body) {
                Ok(b) => (b.error.code, b.error.message),
                Err(_) => (
                    "http".to_string(),
                    String::from_utf8_lossy(&body).chars().take(200).collect(),
                ),
            };
        if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
            Err(ConsoleError::ServerError {
                status: status.as_u16(),
                message,
            })
        } else {
            Err(ConsoleError::Rejected {
                status: status.as_u16(),
                code,
                message,
            })
        }
    }

    /// Tell TLS failures (wrong CA, refused client certificate) from a console that is down.
    fn classify(&self, e: &reqwest::Error) -> ConsoleError {
        let mut detail = e.to_string();
        let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
        let mut tls = false;
        while let Some(s) = source {
            detail = s.to_string();
            tls |= s.downcast_ref::<rustls::Error>().is_some()
                || s.downcast_ref::<std::io::Error>()
                    .and_then(|io| io.get_ref())
                    .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
            source = s.source();
        }
        let lower = detail.to_ascii_lowercase();
        tls |= ["certificate", "handshake", "alert", "tls"]
            .iter()
            .any(|w| lower.contains(w));
        if tls {
            ConsoleError::Tls(detail)
        } else {
            ConsoleError::Unreachable {
                url: self.base.clone(),
                detail,
            }
        }
    }
}
