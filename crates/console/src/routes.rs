//! The console's HTTP resources. Every input is checked before anything is
//! stored; every error is a JSON body with a code and a message.

// Handlers return `Result<_, Response>`: the error *is* the HTTP answer, as is usual with axum.
#![allow(clippy::result_large_err)]

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use p256::ecdsa::SigningKey;

use cardstation_pki::certificate::{from_pem_or_der, to_pem, CertificateInfo};
use cardstation_protocol::bundle;
use cardstation_protocol::messages::{
    is_fingerprint, BundlePayload, ErrorBody, ErrorDetail, RevokeRequest, UploadRequest,
    REVOCATION_REASONS,
};

use super::db::{ConsoleDb, Stored};

/// Largest request body accepted (a PEM certificate and a few fields).
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub db: Arc<Mutex<ConsoleDb>>,
    pub signing_key: Arc<SigningKey>,
    pub bundle_validity_secs: i64,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/certificates", post(upload))
        .route("/v1/certificates/{sha256}", get(get_certificate))
        .route("/v1/certificates/{sha256}/revoke", post(revoke))
        .route("/v1/trust-bundle", get(trust_bundle))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not-found", "no such resource") })
        .with_state(state)
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

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Read a JSON body: right content type, bounded size, valid JSON.
async fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
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
    let bytes: Bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            format!("the body is larger than {MAX_BODY} bytes"),
        )
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "malformed-json", e.to_string()))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Response> + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
}

fn db_error(e: impl std::fmt::Display) -> Response {
    tracing::error!("database: {e}");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "storage",
        "the console could not store the request",
    )
}

async fn upload(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let req: UploadRequest = match json_body(&headers, body).await {
        Ok(r) => r,
        Err(resp) => return resp,
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
    let db = state.db.clone();
    let result = blocking(move || {
        let mut db = db.lock().map_err(|_| db_error("lock poisoned"))?;
        db.upload(
            &info.sha256,
            &to_pem(&der),
            &info.subject,
            info.not_after,
            &req,
            now(),
        )
        .map_err(db_error)
    })
    .await;
    match result {
        Ok(Stored::Created(rec)) => (StatusCode::CREATED, Json(rec)).into_response(),
        Ok(Stored::Existing(rec)) => (StatusCode::OK, Json(rec)).into_response(),
        Err(resp) => resp,
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
    let db = state.db.clone();
    match blocking(move || {
        db.lock()
            .map_err(|_| db_error("lock poisoned"))?
            .get(&sha256)
            .map_err(db_error)
    })
    .await
    {
        Ok(Some(rec)) => Json(rec).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "unknown-certificate",
            "no certificate with this fingerprint",
        ),
        Err(resp) => resp,
    }
}

async fn revoke(
    State(state): State<AppState>,
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
    let db = state.db.clone();
    let result = blocking(move || {
        db.lock()
            .map_err(|_| db_error("lock poisoned"))?
            .revoke(&sha256, &req.reason, now())
            .map_err(db_error)
    })
    .await;
    match result {
        Ok(Some(rec)) => Json(rec).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "unknown-certificate",
            "no certificate with this fingerprint",
        ),
        Err(resp) => resp,
    }
}

async fn trust_bundle(State(state): State<AppState>) -> Response {
    let db = state.db.clone();
    let bundle_state = blocking(move || {
        db.lock()
            .map_err(|_| db_error("lock poisoned"))?
            .bundle_state()
            .map_err(db_error)
    })
    .await;
    let (version, allowed, revoked) = match bundle_state {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let issued_at = now();
    let payload = BundlePayload {
        version,
        issued_at,
        expires_at: issued_at + state.bundle_validity_secs,
        allowed,
        revoked,
    };
    match bundle::sign(&payload, &state.signing_key) {
        Ok(signed) => Json(signed).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "signing", e.to_string()),
    }
}
