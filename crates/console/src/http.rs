//! What every handler shares: the state, the console's rules, and answers
//! (errors are a JSON body with a code and a message).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use cardstation_protocol::messages::{ErrorBody, ErrorDetail};

use crate::bundle::BundleBook;
use crate::storage::{Store, StoreError};

/// Largest request body accepted (a PEM certificate and a few fields).
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
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
    /// Under CA issuance (`issuance = "ca"`): the CA that signs card requests.
    pub issuer: Option<Arc<CaIssuer>>,
    /// Which attestation roots vouch for cards, and whether attestation is required.
    pub attestation: crate::attestation::AttestationPolicy,
    /// Since when the CA has issued only for attested keys (0: it does not vouch).
    pub attested_since: i64,
}

/// The issuing CA and the profiles it issues under.
pub struct CaIssuer {
    pub ca: crate::issuance::DeviceCa,
    pub profiles: crate::issuance::Profiles,
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

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Read a JSON body: right content type, bounded size, valid JSON.
pub async fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
) -> Result<T, Response> {
    json_body_within(headers, body, MAX_BODY).await
}

/// [`json_body`] with a size limit of its own (an event batch is larger than a certificate).
pub async fn json_body_within<T: serde::de::DeserializeOwned>(
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
    let bytes = read_body(body, max_body).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "malformed-json", e.to_string()))
}

/// The whole body, refused past `max_body` bytes.
pub async fn read_body(body: Body, max_body: usize) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, max_body).await.map_err(|_| {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            format!("the body is larger than {max_body} bytes"),
        )
    })
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
