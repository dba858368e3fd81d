//! The requests: the station's (uploads, revocations, look-ups, search, events,
//! audit anchors) and the gateway's (trust bundle, events), over one connection set-up.

use std::time::Duration;

use serde::de::DeserializeOwned;

use cardstation_protocol::bundle;
use cardstation_protocol::messages::{
    AuditAnchor, AuditHead, CertificateRecord, CertificateStatus, ErrorBody, EventBatch, EventList,
    EventsAnswer, Issuance, IssueRequest, IssuedCertificate, RevokeRequest, SearchPage,
    SearchQuery, SupersedeRequest, UploadRequest,
};

use crate::body::read_bundle;
use crate::tls::{bundle_url_tls, tls_config};
use crate::{ConsoleConfig, ConsoleError};

pub struct ConsoleClient {
    http: reqwest::blocking::Client,
    base: String,
    /// Published bundle files elsewhere (`[console] bundle_url`), and the client
    /// that fetches them (no client certificate: a CDN does not ask for one).
    bundle_url: Option<(String, reqwest::blocking::Client)>,
    max_bundle_bytes: u64,
}

/// A trust bundle fetch's answer.
#[derive(Debug)]
pub enum Fetched {
    /// 304: the tag sent is still current; nothing was downloaded.
    NotModified { etag: Option<String> },
    Bundle {
        bytes: Vec<u8>,
        etag: Option<String>,
    },
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
    // This credential is revoked or unknown: a settings problem (a new credential
    // from the console administrator), not a refusal of the request itself.
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

/// Error answers are read up to this many bytes (they are short JSON).
const MAX_ERROR_BODY: u64 = 64 * 1024;

impl ConsoleClient {
    /// A client for the console in `cfg` (user agent `cardstation/VERSION`).
    pub fn new(cfg: &ConsoleConfig) -> Result<Self, ConsoleError> {
        Self::for_agent(cfg, concat!("cardstation/", env!("CARGO_PKG_VERSION")))
    }

    /// A client that names itself `user_agent` in its requests.
    pub fn for_agent(cfg: &ConsoleConfig, user_agent: &str) -> Result<Self, ConsoleError> {
        let url = cfg.validate()?;
        let settings = |e: reqwest::Error| ConsoleError::Settings(e.to_string());
        let http = reqwest::blocking::Client::builder()
            .tls_backend_preconfigured(tls_config(cfg)?)
            .connect_timeout(Duration::from_secs(cfg.connect_timeout_secs))
            .timeout(Duration::from_secs(cfg.request_timeout_secs))
            .user_agent(user_agent)
            .build()
            .map_err(settings)?;
        let bundle_url = match cfg.bundle_url.as_deref() {
            Some(u) => {
                let client = reqwest::blocking::Client::builder()
                    .tls_backend_preconfigured(bundle_url_tls(cfg)?)
                    .connect_timeout(Duration::from_secs(cfg.connect_timeout_secs))
                    .timeout(Duration::from_secs(cfg.request_timeout_secs.max(60)))
                    .user_agent(user_agent)
                    .build()
                    .map_err(settings)?;
                Some((u.to_string(), client))
            }
            None => None,
        };
        Ok(ConsoleClient {
            http,
            base: url.trim_end_matches('/').to_string(),
            bundle_url,
            max_bundle_bytes: cfg.max_bundle_bytes(),
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

    /// `GET /v1/issuance`: whether the site's CA issues card certificates, and how.
    pub fn issuance(&self) -> Result<Issuance, ConsoleError> {
        self.send(self.http.get(format!("{}/v1/issuance", self.base)))
    }

    /// `POST /v1/certificate-requests`: the card's signed request in, a certificate
    /// from the site's issuing CA (already recorded at the console) out.
    pub fn request_certificate(
        &self,
        req: &IssueRequest,
    ) -> Result<IssuedCertificate, ConsoleError> {
        self.send(
            self.http
                .post(format!("{}/v1/certificate-requests", self.base))
                .json(req),
        )
    }

    /// `GET /v1/certificates/{sha256}`: the record and its status.
    pub fn get(&self, sha256: &str) -> Result<CertificateRecord, ConsoleError> {
        self.send(
            self.http
                .get(format!("{}/v1/certificates/{sha256}", self.base)),
        )
    }

    /// `POST /v1/certificates/{sha256}/revoke`.
    pub fn revoke(&self, sha256: &str, reason: &str) -> Result<CertificateRecord, ConsoleError> {
        self.send(
            self.http
                .post(format!("{}/v1/certificates/{sha256}/revoke", self.base))
                .json(&RevokeRequest {
                    reason: reason.to_string(),
                }),
        )
    }

    /// `POST /v1/certificates/{old}/supersede`: the card holding `old` was renewed with
    /// `new` (at the console already); `old` stays valid until its end.
    pub fn supersede(&self, old: &str, new: &str) -> Result<CertificateRecord, ConsoleError> {
        self.send(
            self.http
                .post(format!("{}/v1/certificates/{old}/supersede", self.base))
                .json(&SupersedeRequest {
                    by: new.to_string(),
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
        if let Some(d) = q.expiring_days {
            params.push(("expiring_days", d.to_string()));
        }
        if let Some(a) = q.attested {
            params.push(("attested", a.to_string()));
        }
        let url =
            reqwest::Url::parse_with_params(&format!("{}/v1/certificates", self.base), &params)
                .map_err(|e| ConsoleError::Settings(format!("[console] url: {e}")))?;
        self.send(self.http.get(url))
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

    /// `POST /v1/events`: a gateway's decisions.
    pub fn post_events(&self, batch: &EventBatch) -> Result<EventsAnswer, ConsoleError> {
        self.send(
            self.http
                .post(format!("{}/v1/events", self.base))
                .json(batch),
        )
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
        if !status.is_success() {
            let body = self.read_capped(rsp, MAX_ERROR_BODY)?;
            return Err(failure(status, &body));
        }
        let announced = rsp.content_length();
        let bytes = read_bundle(rsp, announced, url, self.max_bundle_bytes, |e| {
            self.classify_io(e)
        })?;
        Ok(Some(Fetched::Bundle { bytes, etag: tag }))
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

    /// At most `max` bytes of an answer (the rest is not read).
    fn read_capped(
        &self,
        rsp: reqwest::blocking::Response,
        max: u64,
    ) -> Result<Vec<u8>, ConsoleError> {
        use std::io::Read;
        let mut out = Vec::new();
        rsp.take(max)
            .read_to_end(&mut out)
            .map_err(|e| self.classify_io(e))?;
        Ok(out)
    }

    /// A failed read of an answer's body.
    fn classify_io(&self, e: std::io::Error) -> ConsoleError {
        if e.kind() == std::io::ErrorKind::TimedOut {
            return ConsoleError::Timeout(e.to_string());
        }
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
        {
            Some(r) => self.classify(r),
            None => ConsoleError::Unreachable {
                url: self.base.clone(),
                detail: e.to_string(),
            },
        }
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
