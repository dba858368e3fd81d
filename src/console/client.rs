//! HTTPS client of the management console (blocking; runs on worker threads and
//! in the CLI). The server certificate is always verified against the configured
//! CA — there is no switch to turn that off — and the station presents its own
//! client certificate.

use crate::app::failure::{Coded, ErrorCode};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::de::DeserializeOwned;

use crate::config::ConsoleConfig;

use cardstation_protocol::bundle;
use cardstation_protocol::messages::{
    AuditAnchor, AuditHead, CertificateRecord, CertificateStatus, ErrorBody, EventList,
    RevokeRequest, SearchPage, SearchQuery, UploadRequest,
};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConsoleError {
    #[error("no console is configured. Set [console] url, ca, client_cert and client_key in the config file")]
    NotConfigured,
    #[error("console settings: {0}")]
    Settings(String),
    #[error("the console at {url} cannot be reached ({detail}). Check the network and that the console is running; queued items are kept and sent later")]
    Unreachable { url: String, detail: String },
    #[error("the TLS connection to the console failed: {detail}. Check that [console] ca is the console's CA and that this station's certificate was issued by it")]
    Tls { detail: String },
    #[error("the console did not answer in time ({0})")]
    Timeout(String),
    #[error("the console refused the request ({status} {code}): {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the console failed ({status}): {message}. It will be tried again")]
    ServerError { status: u16, message: String },
    #[error("the console sent an answer that cannot be read: {0}")]
    Malformed(String),
}

impl ConsoleError {
    /// Worth retrying later (network, timeouts, server trouble), as opposed to a refusal.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ConsoleError::Unreachable { .. }
                | ConsoleError::Timeout(_)
                | ConsoleError::ServerError { .. }
        )
    }
}

impl Coded for ConsoleError {
    fn code(&self) -> ErrorCode {
        match self {
            ConsoleError::NotConfigured => ErrorCode::ConsoleNotConfigured,
            ConsoleError::Settings(_) => ErrorCode::ConsoleSettings,
            ConsoleError::Unreachable { .. } => ErrorCode::ConsoleUnreachable,
            ConsoleError::Tls { .. } => ErrorCode::ConsoleTls,
            ConsoleError::Timeout(_) => ErrorCode::ConsoleTimeout,
            ConsoleError::Rejected { .. } => ErrorCode::ConsoleRejected,
            ConsoleError::ServerError { .. } => ErrorCode::ConsoleServerError,
            ConsoleError::Malformed(_) => ErrorCode::ConsoleMalformed,
        }
    }
}

pub struct ConsoleClient {
    http: reqwest::blocking::Client,
    base: String,
    /// Published bundle files elsewhere (`[console] bundle_url`), and the client
    /// that fetches them (no client certificate: a CDN does not ask for one).
    bundle_url: Option<(String, reqwest::blocking::Client)>,
}

/// A trust bundle fetch's answer.
#[derive(Debug)]
pub enum Fetched {
    /// 304: the tag sent is still current.
    NotModified { etag: Option<String> },
    Bundle {
        bytes: Vec<u8>,
        etag: Option<String>,
    },
}

/// The client for `bundle_url`: public CA roots and the console CA, no client certificate.
fn bundle_http(cfg: &ConsoleConfig, url: &str) -> Result<reqwest::blocking::Client, ConsoleError> {
    let settings = |e: &dyn std::fmt::Display| ConsoleError::Settings(e.to_string());
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(ConsoleError::Settings(format!(
            "[console] bundle_url must start with https:// or http:// (got {url})"
        )));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(ca) = cfg.ca.as_deref() {
        for cert in CertificateDer::pem_slice_iter(&read_file(ca, "ca")?).flatten() {
            let _ = roots.add(cert);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| settings(&e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::blocking::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(Duration::from_secs(cfg.connect_timeout_secs))
        .timeout(Duration::from_secs(cfg.request_timeout_secs.max(60)))
        .user_agent(concat!("cardstation/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| settings(&e))
}

fn read(path: &Option<std::path::PathBuf>, what: &str) -> Result<Vec<u8>, ConsoleError> {
    let path = path
        .as_deref()
        .ok_or_else(|| ConsoleError::Settings(format!("[console] {what} is not set")))?;
    read_file(path, what)
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, ConsoleError> {
    std::fs::read(path)
        .map_err(|e| ConsoleError::Settings(format!("cannot read {what} {}: {e}", path.display())))
}

/// The station's console key is its identity: refuse one that other users can
/// read or replace (as for the site secret).
#[cfg(unix)]
fn refuse_open_key(path: Option<&Path>) -> Result<(), ConsoleError> {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = path else {
        return Ok(());
    };
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(()); // reading it says what is wrong
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ConsoleError::Settings(format!(
            "[console] client_key {} can be read or changed by other users (mode {mode:o}); run chmod 600 on it",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_open_key(_: Option<&Path>) -> Result<(), ConsoleError> {
    Ok(())
}

/// The TLS settings of the console connection: only the configured CA is trusted,
/// and the station presents its client certificate.
pub fn tls_config(cfg: &ConsoleConfig) -> Result<rustls::ClientConfig, ConsoleError> {
    let settings = |e: &dyn std::fmt::Display| ConsoleError::Settings(e.to_string());
    let mut roots = rustls::RootCertStore::empty();
    let ca = read(&cfg.ca, "ca")?;
    for cert in CertificateDer::pem_slice_iter(&ca) {
        roots
            .add(cert.map_err(|e| settings(&format!("[console] ca: {e}")))?)
            .map_err(|e| settings(&format!("[console] ca: {e}")))?;
    }
    if roots.is_empty() {
        return Err(ConsoleError::Settings(
            "[console] ca holds no certificate".into(),
        ));
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read(&cfg.client_cert, "client_cert")?)
            .collect::<Result<_, _>>()
            .map_err(|e| settings(&format!("[console] client_cert: {e}")))?;
    refuse_open_key(cfg.client_key.as_deref())?;
    let key = PrivateKeyDer::from_pem_slice(&read(&cfg.client_key, "client_key")?)
        .map_err(|e| settings(&format!("[console] client_key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| settings(&e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| settings(&format!("client certificate and key do not match: {e}")))
}

/// The error an unsuccessful answer stands for.
fn failure(status: reqwest::StatusCode, body: &[u8]) -> ConsoleError {
    let (code, message) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => (b.error.code, b.error.message),
        Err(_) => (
            "http".to_string(),
            String::from_utf8_lossy(body).chars().take(200).collect(),
        ),
    };
    // This station's credential is revoked or unknown: a settings problem (a new
    // credential from the console administrator), so queued items are kept.
    if status.as_u16() == 403 && (code == "station-revoked" || code == "unknown-station") {
        return ConsoleError::Settings(message);
    }
    if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
        ConsoleError::ServerError {
            status: status.as_u16(),
            message,
        }
    } else {
        ConsoleError::Rejected {
            status: status.as_u16(),
            code,
            message,
        }
    }
}

impl ConsoleClient {
    pub fn new(cfg: &ConsoleConfig) -> Result<Self, ConsoleError> {
        let url = cfg.url.as_deref().ok_or(ConsoleError::NotConfigured)?;
        if !url.starts_with("https://") {
            return Err(ConsoleError::Settings(format!(
                "[console] url must start with https:// (got {url})"
            )));
        }
        let settings = |e: &dyn std::fmt::Display| ConsoleError::Settings(e.to_string());
        let tls = tls_config(cfg)?;
        let http = reqwest::blocking::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_secs(cfg.connect_timeout_secs))
            .timeout(Duration::from_secs(cfg.request_timeout_secs))
            .user_agent(concat!("cardstation/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| settings(&e))?;
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

    /// `POST /v1/certificates` (idempotent by fingerprint).
    pub fn upload(&self, req: &UploadRequest) -> Result<CertificateRecord, ConsoleError> {
        self.send(
            self.http
                .post(format!("{}/v1/certificates", self.base))
                .json(req),
        )
    }

    pub fn get(&self, sha256: &str) -> Result<CertificateRecord, ConsoleError> {
        self.send(
            self.http
                .get(format!("{}/v1/certificates/{sha256}", self.base)),
        )
    }

    pub fn revoke(&self, sha256: &str, reason: &str) -> Result<CertificateRecord, ConsoleError> {
        self.send(
            self.http
                .post(format!("{}/v1/certificates/{sha256}/revoke", self.base))
                .json(&RevokeRequest {
                    reason: reason.to_string(),
                }),
        )
    }

    /// `GET /v1/certificates?search=…`: one page of matching certificates, newest first.
    pub fn search(&self, q: &SearchQuery) -> Result<SearchPage, ConsoleError> {
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(s) = &q.search {
            params.push(("search", s.clone()));
        }
        if let Some(s) = q.status {
            let status = match s {
                CertificateStatus::Active => "active",
                CertificateStatus::Revoked => "revoked",
            };
            params.push(("status", status.into()));
        }
        if let Some(s) = &q.station {
            params.push(("station", s.clone()));
        }
        if let Some(l) = q.limit {
            params.push(("limit", l.to_string()));
        }
        if let Some(c) = &q.cursor {
            params.push(("cursor", c.clone()));
        }
        let url =
            reqwest::Url::parse_with_params(&format!("{}/v1/certificates", self.base), &params)
                .map_err(|e| ConsoleError::Settings(format!("[console] url: {e}")))?;
        self.send(self.http.get(url))
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
        let body = rsp.bytes().map_err(|e| self.classify(&e))?;
        if !status.is_success() {
            return Err(failure(status, &body));
        }
        Ok(Some(Fetched::Bundle {
            bytes: Vec::from(body),
            etag: tag,
        }))
    }

    /// `GET /v1/events`: what gateways reported about the certificate `fingerprint`
    /// (every certificate when `None`), newest first, at most `limit`.
    pub fn events(&self, fingerprint: Option<&str>, limit: u32) -> Result<EventList, ConsoleError> {
        let mut url = format!("{}/v1/events?limit={limit}", self.base);
        if let Some(fp) = fingerprint {
            // Only hex goes into the address: nothing to escape.
            if !cardstation_protocol::messages::is_fingerprint(fp) {
                return Err(ConsoleError::Settings(format!(
                    "{fp:?} is not a SHA-256 fingerprint"
                )));
            }
            url.push_str(&format!("&fingerprint={fp}"));
        }
        self.send(self.http.get(url))
    }

    /// `POST /v1/audit-anchor`: anchor this station's audit chain head at the console.
    pub fn post_audit_head(&self, head: &AuditHead) -> Result<AuditAnchor, ConsoleError> {
        self.send(
            self.http
                .post(format!("{}/v1/audit-anchor", self.base))
                .json(head),
        )
    }

    /// `GET /v1/audit-anchor`: the head the console holds for this station, if any.
    pub fn audit_anchor(&self) -> Result<Option<AuditAnchor>, ConsoleError> {
        match self.send(self.http.get(format!("{}/v1/audit-anchor", self.base))) {
            Ok(a) => Ok(Some(a)),
            Err(ConsoleError::Rejected {
                status: 404, code, ..
            }) if code == "no-audit-anchor" => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::blocking::RequestBuilder,
    ) -> Result<T, ConsoleError> {
        let rsp = req.send().map_err(|e| self.classify(&e))?;
        let status = rsp.status();
        let body = rsp.bytes().map_err(|e| self.classify(&e))?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| ConsoleError::Malformed(e.to_string()));
        }
        Err(failure(status, &body))
    }

    /// Tell TLS failures (wrong CA, refused client certificate) from a console that is down.
    fn classify(&self, e: &reqwest::Error) -> ConsoleError {
        let mut detail = e.to_string();
        let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
        let mut tls = None;
        while let Some(s) = source {
            detail = s.to_string();
            if let Some(r) = s.downcast_ref::<rustls::Error>() {
                tls = Some(r.to_string());
            }
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                if let Some(r) = io
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                {
                    tls = Some(r.to_string());
                }
            }
            source = s.source();
        }
        // The TLS error may arrive wrapped in types of the HTTP stack that hide the
        // rustls error; its wording is stable enough to recognise.
        let lower = detail.to_ascii_lowercase();
        if tls.is_none()
            && [
                "invalid peer certificate",
                "certificate",
                "handshake",
                "alert",
                "tls",
            ]
            .iter()
            .any(|w| lower.contains(w))
        {
            tls = Some(detail.clone());
        }
        if let Some(detail) = tls {
            return ConsoleError::Tls { detail };
        }
        if e.is_timeout() {
            return ConsoleError::Timeout(detail);
        }
        ConsoleError::Unreachable {
            url: self.base.clone(),
            detail,
        }
    }
}
