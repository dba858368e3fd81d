//! The console's HTTP resources. Every input is checked before anything is
//! stored; every error is a JSON body with a code and a message.

// Handlers return `Result<_, Response>`: the error *is* the HTTP answer, as is usual with axum.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use axum_server::tls::TlsInfo;

use cardstation_pki::certificate::{fingerprint, from_pem_or_der, to_pem, CertificateInfo};
use cardstation_pki::rules::{check_certificate, public_key_sha256, Rules};
use cardstation_protocol::bundle;
use cardstation_protocol::messages::{
    check_label, is_fingerprint, ErrorBody, ErrorDetail, RevokeRequest, UploadRequest,
    REVOCATION_REASONS,
};

use super::bundle::{BundleBook, BundleBuildError, DeltaAnswer};
use super::storage::{NewCertificate, Revoked, Store, StoreError, Stored};

/// Largest request body accepted (a PEM certificate and a few fields).
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// The signed trust-bundle chain (cached; the change counter is read from the
    /// database on every request, so a change made through another instance is
    /// published on the next request).
    pub bundles: Arc<BundleBook>,
    pub policy: Arc<Policy>,
}

/// What the console enforces beyond the protocol (from its settings file).
pub struct Policy {
    /// Revocations one station may make per hour; `None` for no limit.
    pub revocations_per_hour: Option<u32>,
    pub max_certificate_days: u32,
    /// Device certificates must chain to this CA (DER); `None` requires card-signed ones.
    pub issuing_ca: Option<Vec<u8>>,
}

/// The station making a request: the name bound to its verified client certificate.
#[derive(Clone)]
pub struct Station(pub String);

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/certificates", post(upload).get(crate::search::search))
        .route("/v1/certificates/{sha256}", get(get_certificate))
        .route("/v1/certificates/{sha256}/revoke", post(revoke))
        .route("/v1/trust-bundle", get(trust_bundle))
        .merge(crate::events::routes())
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not-found", "no such resource") })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "this resource does not take that method",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ))
        .with_state(state)
}

/// Every request: find the station by its client certificate (verified by TLS
/// against the station CA) and refuse unknown or revoked ones. Checked against
/// the database each time, so `station revoke` takes effect on the next request.
async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(cert) = req
        .extensions()
        .get::<Arc<TlsInfo>>()
        .and_then(|t| t.peer_certificates.first().cloned())
    else {
        return error(
            StatusCode::UNAUTHORIZED,
            "no-client-certificate",
            "present this station's console client certificate",
        );
    };
    let cert_sha256 = fingerprint(&cert);
    let station = match state.store.station_by_cert(&cert_sha256).await {
        Ok(Some(s)) => s,
        // Not a station's: a gateway's credential, or no one's.
        Ok(None) => {
            return crate::events::authenticate_gateway(&state, &cert_sha256, req, next).await
        }
        Err(e) => return store_error(e),
    };
    if station.revoked_at.is_some() {
        return error(
            StatusCode::FORBIDDEN,
            "station-revoked",
            format!(
                "this station's console credential (station {}) was revoked; ask the console administrator for a new one",
                station.name
            ),
        );
    }
    req.extensions_mut().insert(Station(station.name));
    next.run(req).await
}

pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }),
    )
        .into_response()
}

pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Read a JSON body: right content type, bounded size, valid JSON.
async fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
) -> Result<T, Response> {
    json_body_within(headers, body, MAX_BODY).await
}

/// [`json_body`] with a size limit of its own (an event batch is larger than a certificate).
pub(crate) async fn json_body_within<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    max_body: usize,
) -> Result<T, Response> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if !is_json {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "wrong-content-type",
            "send the body as application/json",
        ));
    }
    let bytes: Bytes = axum::body::to_bytes(body, max_body).await.map_err(|_| {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            format!("the body is larger than {max_body} bytes"),
        )
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "malformed-json", e.to_string()))
}

/// A storage failure as an answer: 503 when the database is unreachable for now
/// (the station keeps the item and tries again), 500 otherwise. Details go to the log.
pub fn store_error(e: StoreError) -> Response {
    match e {
        StoreError::Unavailable(detail) => {
            tracing::warn!("database unavailable: {detail}");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage-unavailable",
                "the console's database cannot be reached right now; nothing was changed. Try again shortly",
            )
        }
        other => {
            tracing::error!("database: {other}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage",
                "the console could not store the request",
            )
        }
    }
}

async fn upload(
    State(state): State<AppState>,
    Extension(Station(station)): Extension<Station>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let req: UploadRequest = match json_body(&headers, body).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if req.station_id != station {
        return error(
            StatusCode::FORBIDDEN,
            "station-mismatch",
            format!(
                "this credential belongs to station {station:?}, but the request claims {:?}; set [station] id = {station:?} in cardstation.toml",
                req.station_id
            ),
        );
    }
    let label = match check_label(req.label.as_deref().unwrap_or_default()) {
        Ok(l) => l,
        Err(message) => return error(StatusCode::BAD_REQUEST, "bad-label", message),
    };
    if !req.certificate.contains("-----BEGIN CERTIFICATE-----") {
        return error(
            StatusCode::BAD_REQUEST,
            "malformed-pem",
            "certificate must be a PEM CERTIFICATE block",
        );
    }
    let der = match from_pem_or_der(req.certificate.as_bytes()) {
        Ok(d) => d,
        Err(e) => return error(StatusCode::BAD_REQUEST, "malformed-pem", e.to_string()),
    };
    let info = match CertificateInfo::parse(&der) {
        Ok(i) => i,
        Err(e) => return error(StatusCode::BAD_REQUEST, "not-a-certificate", e.to_string()),
    };
    if info.public_key.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "not-p256",
            "the certificate's key is not an ECDSA P-256 key",
        );
    }
    // The rules a spot check applies to the certificate itself.
    let rules = Rules {
        issuing_ca: state.policy.issuing_ca.as_deref(),
        now: now(),
        max_lifetime_days: state.policy.max_certificate_days,
    };
    let failures: Vec<_> = check_certificate(&der, &rules)
        .into_iter()
        .filter(|c| !c.ok)
        .collect();
    if let Some(first) = failures.first() {
        let reasons: Vec<&str> = failures.iter().map(|c| c.message.as_str()).collect();
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            first.code,
            format!("the certificate is not acceptable: {}", reasons.join("; ")),
        );
    }
    let Some(key_sha256) = public_key_sha256(&der) else {
        return error(
            StatusCode::BAD_REQUEST,
            "not-a-certificate",
            "the certificate's key cannot be read",
        );
    };
    let cert = NewCertificate {
        sha256: info.sha256,
        pem: to_pem(&der),
        subject: info.subject,
        not_after: info.not_after,
        card_serial: req.card_serial,
        chuid_guid: req.chuid_guid,
        slot: req.slot,
        label,
        operator: req.operator,
        station_id: station,
        uploaded_at: now(),
        key_sha256,
    };
    match state.store.upload(cert).await {
        Ok(Stored::Created(rec)) => (StatusCode::CREATED, Json(rec)).into_response(),
        Ok(Stored::Existing(rec)) => (StatusCode::OK, Json(rec)).into_response(),
        Ok(Stored::KeyRevoked { revoked_at }) => error(
            StatusCode::CONFLICT,
            "key-revoked",
            format!(
                "this key was revoked on {}; a new certificate for it is refused. Enrol the card with a new key",
                cardstation_pki::certificate::format_unix(revoked_at)
            ),
        ),
        Err(e) => store_error(e),
    }
}

async fn get_certificate(State(state): State<AppState>, Path(sha256): Path<String>) -> Response {
    if !is_fingerprint(&sha256) {
        return error(
            StatusCode::BAD_REQUEST,
            "bad-fingerprint",
            "use the SHA-256 fingerprint: 64 lower-case hex digits",
        );
    }
    match state.store.get(&sha256).await {
        Ok(Some(rec)) => Json(rec).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "unknown-certificate",
            "no certificate with this fingerprint",
        ),
        Err(e) => store_error(e),
    }
}

async fn revoke(
    State(state): State<AppState>,
    Extension(Station(station)): Extension<Station>,
    Path(sha256): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !is_fingerprint(&sha256) {
        return error(
            StatusCode::BAD_REQUEST,
            "bad-fingerprint",
            "use the SHA-256 fingerprint: 64 lower-case hex digits",
        );
    }
    let req: RevokeRequest = match json_body(&headers, body).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if !REVOCATION_REASONS.contains(&req.reason.as_str()) {
        return error(
            StatusCode::BAD_REQUEST,
            "bad-reason",
            format!("reason must be one of {}", REVOCATION_REASONS.join(", ")),
        );
    }
    let limit = state.policy.revocations_per_hour;
    match state
        .store
        .revoke(&sha256, &req.reason, now(), &station, limit)
        .await
    {
        Ok(Revoked::Done(rec)) => Json(rec).into_response(),
        Ok(Revoked::NotFound) => error(
            StatusCode::NOT_FOUND,
            "unknown-certificate",
            "no certificate with this fingerprint",
        ),
        Ok(Revoked::RateLimited { limit }) => error(
            StatusCode::TOO_MANY_REQUESTS,
            "revocation-rate-limit",
            format!(
                "station {station} revoked {limit} certificates in the last hour, the most allowed; nothing was revoked. Try again later, or ask the console administrator"
            ),
        ),
        Err(e) => store_error(e),
    }
}

#[derive(serde::Deserialize)]
struct BundleQuery {
    since: Option<u64>,
}

/// `GET /v1/trust-bundle[?since=V]`: the current signed version (full), or the
/// signed delta from V. `If-None-Match` with the current tag answers 304.
async fn trust_bundle(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<BundleQuery>,
) -> Response {
    let t = now();
    let current = match state.bundles.current(t).await {
        Ok(c) => c,
        Err(e) => return bundle_error(e),
    };
    let tag = current.etag();
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    if matches {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response();
    }
    let body = match q.since {
        None => current.full.clone(),
        Some(since) => match state.bundles.delta(since, t).await {
            Ok(DeltaAnswer::Delta(d)) => d,
            Ok(DeltaAnswer::Unavailable(why)) => {
                return error(StatusCode::NOT_FOUND, "delta-unavailable", why)
            }
            Err(e) => return bundle_error(e),
        },
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, bundle::MEDIA_TYPE.to_string()),
            (header::ETAG, tag),
            (header::CACHE_CONTROL, "no-cache".to_string()),
        ],
        Body::from(Bytes::from_owner(ArcBytes(body))),
    )
        .into_response()
}

/// Serves the cached bundle without copying it per request.
struct ArcBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for ArcBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

fn bundle_error(e: BundleBuildError) -> Response {
    match e {
        BundleBuildError::Store(e) => store_error(e),
        BundleBuildError::Build(m) => error(StatusCode::INTERNAL_SERVER_ERROR, "bundle", m),
    }
}
