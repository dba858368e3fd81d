//! RFC 7030 EST over the console's mutual TLS, for any EST client: `cacerts`,
//! `simpleenroll` and `simplereenroll` under /.well-known/est/. The caller is a station
//! credential (the ACCESS table); the request goes through the same issuance as
//! `POST /v1/certificate-requests`, the holder label being the request's CN.
//!
//! Bodies are base64 as RFC 7030 §4 has them: a PKCS#10 request in
//! (`application/pkcs10`), a certs-only CMS SignedData out
//! (`application/pkcs7-mime; smime-type=certs-only`). Refusals are the console's JSON
//! error body with a 4xx status, as elsewhere.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use base64::Engine;

use crate::access::Station;
use cardstation_protocol::messages::UploadRequest;

use crate::certificates::issue_request;
use crate::http::{error, read_body, AppState, MAX_BODY};

/// Operator recorded for certificates issued through EST (the protocol names none).
pub const EST_OPERATOR: &str = "est";

const PKCS7_CERTS_ONLY: &str = "application/pkcs7-mime; smime-type=certs-only";

/// A certs-only SignedData holding `ders`, base64 with line breaks, as EST answers.
fn certs_only(ders: &[&[u8]]) -> Response {
    encode_certs_only(ders).unwrap_or_else(|e| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot-encode",
            format!("encoding the answer: {e}"),
        )
    })
}

fn encode_certs_only(ders: &[&[u8]]) -> Result<Response, der::Error> {
    use der::{Decode, Encode};
    let certs = ders
        .iter()
        .map(|d| x509_cert::Certificate::from_der(d))
        .collect::<Result<Vec<_>, _>>()?;
    let info = cms::content_info::ContentInfo::try_from(certs)?;
    let der = info.to_der()?;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut lines = String::with_capacity(text.len() + text.len() / 64 + 1);
    for chunk in text.as_bytes().chunks(64) {
        lines.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        lines.push_str("\r\n");
    }
    let mut response = (StatusCode::OK, lines).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PKCS7_CERTS_ONLY),
    );
    headers.insert(
        "content-transfer-encoding",
        HeaderValue::from_static("base64"),
    );
    Ok(response)
}

/// `GET /.well-known/est/cacerts`: the issuing CA.
pub async fn cacerts(State(state): State<AppState>) -> Response {
    let Some(issuer) = state.policy.issuer.clone() else {
        return not_a_ca_site();
    };
    certs_only(&[&issuer.ca.cert_der])
}

pub async fn simpleenroll(
    State(state): State<AppState>,
    Extension(station): Extension<Station>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    enroll(state, station, headers, body, false).await
}

/// A new certificate for a key that holds an active one (renewal with the same key).
pub async fn simplereenroll(
    State(state): State<AppState>,
    Extension(station): Extension<Station>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    enroll(state, station, headers, body, true).await
}

async fn enroll(
    state: AppState,
    Station(station): Station,
    headers: HeaderMap,
    body: Body,
    renewal: bool,
) -> Response {
    if state.policy.issuer.is_none() {
        return not_a_ca_site();
    }
    let is_pkcs10 = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/pkcs10"));
    if !is_pkcs10 {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "wrong-content-type",
            "send the PKCS#10 request as application/pkcs10 (base64)",
        );
    }
    let bytes = match read_body(body, MAX_BODY).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let text: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let Ok(request) = base64::engine::general_purpose::STANDARD.decode(&text) else {
        return error(
            StatusCode::BAD_REQUEST,
            "malformed-request",
            "the body must be a base64 PKCS#10 request (RFC 7030 section 4.2)",
        );
    };
    let fields = UploadRequest {
        certificate: String::new(),
        card_serial: None,
        chuid_guid: None,
        slot: None,
        label: None,
        operator: EST_OPERATOR.to_string(),
        station_id: station.clone(),
        attestation: None,
    };
    match issue_request(&state, station, fields, None, &request, renewal).await {
        Ok((_, der, _)) => certs_only(&[&der]),
        Err(refused) => refused,
    }
}

fn not_a_ca_site() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "site-cards-sign-themselves",
        "this console issues no certificates (issuance = \"card-signed\"); EST needs issuance = \"ca\"",
    )
}
