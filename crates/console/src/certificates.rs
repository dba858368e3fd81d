//! `POST /v1/certificates` (upload), `GET /v1/certificates/{sha256}` and
//! `POST /v1/certificates/{sha256}/revoke`. Every input is checked before anything
//! is stored.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use cardstation_pki::certificate::{from_pem_or_der, to_pem, CertificateInfo};
use cardstation_pki::rules::{check_certificate, public_key_sha256, Rules};
use cardstation_protocol::messages::{
    check_label, is_fingerprint, RevokeRequest, UploadRequest, REVOCATION_REASONS,
};

use crate::access::Station;
use crate::http::{error, json_body, now, store_error, AppState};
use crate::storage::{Actor, NewCertificate, Revoked, Stored};

pub async fn upload(
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
    if let Some((code, message)) = req.field_problem() {
        return error(StatusCode::BAD_REQUEST, code, message);
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
        operator: req.operator.trim().to_string(),
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

pub async fn get_certificate(
    State(state): State<AppState>,
    Path(sha256): Path<String>,
) -> Response {
    if !is_fingerprint(&sha256) {
        return bad_fingerprint();
    }
    match state.store.get(&sha256).await {
        Ok(Some(rec)) => Json(rec).into_response(),
        Ok(None) => unknown_certificate(),
        Err(e) => store_error(e),
    }
}

pub async fn revoke(
    State(state): State<AppState>,
    Extension(Station(station)): Extension<Station>,
    Path(sha256): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !is_fingerprint(&sha256) {
        return bad_fingerprint();
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
        .revoke(&sha256, &req.reason, now(), &Actor::station(&station), limit)
        .await
    {
        Ok(Revoked::Done(rec)) => Json(rec).into_response(),
        Ok(Revoked::NotFound) => unknown_certificate(),
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

fn bad_fingerprint() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "bad-fingerprint",
        "use the SHA-256 fingerprint: 64 lower-case hex digits",
    )
}

fn unknown_certificate() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "unknown-certificate",
        "no certificate with this fingerprint",
    )
}
