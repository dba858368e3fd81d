//! `POST /v1/certificates` (upload), `GET /v1/certificates/{sha256}` and
//! `POST /v1/certificates/{sha256}/revoke`. Every input is checked before anything
//! is stored.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use cardstation_pki::certificate::{from_pem_or_der, to_pem, CertificateInfo};
use cardstation_pki::rules::{
    check_certificate, public_key_sha256, request_public_key_sha256, Rules,
};
use cardstation_protocol::messages::{
    check_label, is_fingerprint, CertificateRecord, Issuance, IssuanceMode, IssueRequest,
    IssuedCertificate, RevokeRequest, SiteAttestation, SupersedeRequest, UploadRequest,
    REVOCATION_REASONS,
};

use crate::access::Station;
use crate::attestation::{Attested, Claimed};
use crate::http::{error, json_body, now, store_error, AppState};
use crate::storage::{Actor, NewCertificate, Revoked, Stored, Superseded};

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
    if let Err(refused) = check_fields(&req, &station) {
        return refused;
    }
    if state.policy.issuer.is_some() {
        return error(
            StatusCode::CONFLICT,
            "site-issues-certificates",
            "this site's CA issues the cards' certificates: a card-signed one is not taken. Enroll the card again (the station asks the console for its certificate), or ask the administrator",
        );
    }
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
    match accept(&state, req, station, &der, Proof::Unchecked).await {
        Ok((status, rec)) => (status, Json(rec)).into_response(),
        Err(refused) => refused,
    }
}

/// The station named in the request is the caller, and every descriptive field is
/// what a station sends.
#[allow(clippy::result_large_err)]
fn check_fields(req: &UploadRequest, station: &str) -> Result<(), Response> {
    if req.station_id != station {
        return Err(error(
            StatusCode::FORBIDDEN,
            "station-mismatch",
            format!(
                "this credential belongs to station {station:?}, but the request claims {:?}; set [station] id = {station:?} in cardstation.toml",
                req.station_id
            ),
        ));
    }
    if let Some((code, message)) = req.field_problem() {
        return Err(error(StatusCode::BAD_REQUEST, code, message));
    }
    check_label(req.label.as_deref().unwrap_or_default())
        .map_err(|message| error(StatusCode::BAD_REQUEST, "bad-label", message))?;
    Ok(())
}

/// Check the certificate `der` by the console's rules and store it with the request's
/// fields: what an upload and an issuance share. 201 for a new record, 200 for one
/// held already.
async fn accept(
    state: &AppState,
    req: UploadRequest,
    station: String,
    der: &[u8],
    proof: Proof,
) -> Result<(StatusCode, CertificateRecord), Response> {
    let label = check_label(req.label.as_deref().unwrap_or_default())
        .map_err(|message| error(StatusCode::BAD_REQUEST, "bad-label", message))?;
    let info = CertificateInfo::parse(der)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "not-a-certificate", e.to_string()))?;
    if info.public_key.is_none() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "not-p256",
            "the certificate's key is not an ECDSA P-256 key",
        ));
    }
    // The rules a spot check applies to the certificate itself.
    let rules = Rules {
        issuing_ca: state.policy.issuing_ca.as_deref(),
        now: now(),
        max_lifetime_days: state.policy.max_certificate_days,
    };
    let failures: Vec<_> = check_certificate(der, &rules)
        .into_iter()
        .filter(|c| !c.ok)
        .collect();
    if let Some(first) = failures.first() {
        let reasons: Vec<&str> = failures.iter().map(|c| c.message.as_str()).collect();
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            first.code,
            format!("the certificate is not acceptable: {}", reasons.join("; ")),
        ));
    }
    let Some(key_sha256) = public_key_sha256(der) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "not-a-certificate",
            "the certificate's key cannot be read",
        ));
    };
    let attested = match proof {
        Proof::Checked(attested) => attested,
        Proof::Unchecked => {
            // A certificate held already is answered with its record (uploads are
            // idempotent): its proof was judged when it came.
            let held = match state.store.get(&info.sha256).await {
                Ok(held) => held,
                Err(e) => return Err(store_error(e)),
            };
            if let Some(rec) = held {
                return Ok((StatusCode::OK, rec));
            }
            check_attestation(state, &req, &key_sha256)?
        }
    };
    let (attestation, attestation_evidence) = match attested {
        Some(a) => (Some(a.summary), Some(a.evidence_json)),
        None => (None, None),
    };
    let cert = NewCertificate {
        sha256: info.sha256,
        pem: to_pem(der),
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
        attestation,
        attestation_evidence,
    };
    match state.store.upload(cert).await {
        Ok(Stored::Created(rec)) => Ok((StatusCode::CREATED, rec)),
        Ok(Stored::Existing(rec)) => Ok((StatusCode::OK, rec)),
        Ok(Stored::KeyRevoked { revoked_at }) => Err(key_revoked(revoked_at)),
        Err(e) => Err(store_error(e)),
    }
}

/// Whether the key's attestation is still to be judged (an upload) or was judged before
/// the certificate was made (an issuance: nothing is signed for a key the policy refuses).
enum Proof {
    Unchecked,
    Checked(Option<Attested>),
}

/// The site's attestation policy on the key `key_sha256` the request names: its
/// evidence verified, or its absence allowed.
#[allow(clippy::result_large_err)]
fn check_attestation(
    state: &AppState,
    req: &UploadRequest,
    key_sha256: &str,
) -> Result<Option<Attested>, Response> {
    state
        .policy
        .attestation
        .check(
            req.attestation.as_ref(),
            &Claimed {
                key_sha256,
                card_serial: req.card_serial,
                slot: req.slot.as_deref(),
            },
            now(),
        )
        .map_err(|r| error(StatusCode::UNPROCESSABLE_ENTITY, r.code, r.message))
}

fn key_revoked(revoked_at: i64) -> Response {
    error(
        StatusCode::CONFLICT,
        "key-revoked",
        format!(
            "this key was revoked on {}; a new certificate for it is refused. Enrol the card with a new key",
            cardstation_pki::certificate::format_unix(revoked_at)
        ),
    )
}

/// `GET /v1/issuance`: how this site's cards get their certificates.
pub async fn issuance(State(state): State<AppState>) -> Response {
    let attestation = SiteAttestation {
        required: state.policy.attestation.require,
    };
    Json(match &state.policy.issuer {
        Some(issuer) => Issuance {
            mode: IssuanceMode::Ca,
            profiles: issuer.profiles.describe(),
            ca: Some(issuer.ca.cert_pem.clone()),
            attestation,
        },
        None => Issuance {
            mode: IssuanceMode::CardSigned,
            profiles: Vec::new(),
            ca: None,
            attestation,
        },
    })
    .into_response()
}

/// `POST /v1/certificate-requests`: the card's signed request in, its certificate from
/// the site's issuing CA out. Nothing is signed before every field is checked, and
/// nothing is stored unless the certificate passes the rules an upload meets.
pub async fn issue(
    State(state): State<AppState>,
    Extension(Station(station)): Extension<Station>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let req: IssueRequest = match json_body(&headers, body).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let request = match pem::parse(req.request.as_bytes()) {
        Ok(p) if p.tag() == "CERTIFICATE REQUEST" => p.into_contents(),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "malformed-request",
                "request must be a PEM CERTIFICATE REQUEST block (PKCS#10)",
            )
        }
    };
    let fields = req.as_upload(String::new());
    let chain = state
        .policy
        .issuer
        .as_ref()
        .map(|i| vec![i.ca.cert_pem.clone()])
        .unwrap_or_default();
    match issue_request(
        &state,
        station,
        fields,
        req.profile.as_deref(),
        &request,
        false,
    )
    .await
    {
        Ok((status, der, record)) => (
            status,
            Json(IssuedCertificate {
                certificate: to_pem(&der),
                chain,
                record,
            }),
        )
            .into_response(),
        Err(refused) => refused,
    }
}

/// The one issuance path (JSON and EST): check the fields (an upload's, its
/// certificate left empty), refuse a revoked key,
/// sign under the profile, store as an upload would be. `renewal`: the key must hold
/// an active certificate already (EST simplereenroll). The certificate (DER) and its
/// record.
pub async fn issue_request(
    state: &AppState,
    station: String,
    fields: UploadRequest,
    profile_name: Option<&str>,
    request: &[u8],
    renewal: bool,
) -> Result<(StatusCode, Vec<u8>, CertificateRecord), Response> {
    let Some(issuer) = state.policy.issuer.clone() else {
        return Err(error(
            StatusCode::CONFLICT,
            "site-cards-sign-themselves",
            "this site's cards sign their own certificates (issuance = \"card-signed\"): enroll without a certificate request, or set issuance = \"ca\" at the console",
        ));
    };
    check_fields(&fields, &station)?;
    let Some((_, profile)) = issuer.profiles.get(profile_name) else {
        let known: Vec<String> = issuer
            .profiles
            .describe()
            .into_iter()
            .map(|p| p.name)
            .collect();
        return Err(error(
            StatusCode::BAD_REQUEST,
            "unknown-profile",
            format!(
                "no profile {:?} at this console; it has {}",
                profile_name.unwrap_or_default(),
                known.join(", ")
            ),
        ));
    };
    // A key revoked before cannot come back under a new certificate, nor one the site's
    // attestation policy refuses: both refused before anything is signed.
    let Some(key) = request_public_key_sha256(request) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "malformed-request",
            "the request's public key cannot be read: send a PKCS#10 request for a P-256 key",
        ));
    };
    let attested = check_attestation(state, &fields, &key)?;
    match state.store.key_revoked_at(&key).await {
        Ok(Some(at)) => return Err(key_revoked(at)),
        Ok(None) => {}
        Err(e) => return Err(store_error(e)),
    }
    if renewal {
        match state.store.key_has_active_certificate(&key).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "nothing-to-renew",
                    "no active certificate holds this key: use simpleenroll for a new card",
                ))
            }
            Err(e) => return Err(store_error(e)),
        }
    }
    let issued = issuer
        .ca
        .issue(
            request,
            profile,
            fields.label.as_deref(),
            now(),
            state.policy.attested_since,
        )
        .map_err(|refusal| error(StatusCode::BAD_REQUEST, refusal.code, refusal.message))?;
    let der = issued.der;
    // EST names the holder only in the request: the record's label is the issued CN.
    let mut fields = fields;
    fields.label = Some(issued.holder);
    // The certificate is for the request's key, whose proof was judged above.
    let (status, record) = accept(state, fields, station, &der, Proof::Checked(attested)).await?;
    Ok((status, der, record))
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

/// `POST /v1/certificates/{sha256}/supersede`: a renewal's last step. The old
/// certificate is marked superseded by the new one, of the same card (same key or
/// CHUID) and ending later; nothing is revoked, both stay valid until their own ends.
pub async fn supersede(
    State(state): State<AppState>,
    Extension(Station(station)): Extension<Station>,
    Path(sha256): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !is_fingerprint(&sha256) {
        return bad_fingerprint();
    }
    let req: SupersedeRequest = match json_body(&headers, body).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if !is_fingerprint(&req.by) {
        return bad_fingerprint();
    }
    if req.by == sha256 {
        return error(
            StatusCode::BAD_REQUEST,
            "same-certificate",
            "a certificate cannot supersede itself",
        );
    }
    match state
        .store
        .supersede(&sha256, &req.by, now(), &Actor::station(&station))
        .await
    {
        Ok(Superseded::Done(rec)) => Json(rec).into_response(),
        Ok(Superseded::NotFound(which)) => error(
            StatusCode::NOT_FOUND,
            "unknown-certificate",
            format!("no certificate {which} at the console (upload the new one first)"),
        ),
        Ok(Superseded::OtherCard) => error(
            StatusCode::CONFLICT,
            "not-the-same-card",
            "the two certificates hold neither the same key nor the same CHUID: a renewal is of one card. Use replacement (revoke the old) for another card",
        ),
        Ok(Superseded::Revoked(which)) => error(
            StatusCode::CONFLICT,
            "revoked",
            format!("{which} is revoked: only a certificate in service is renewed"),
        ),
        Ok(Superseded::NotLater) => error(
            StatusCode::CONFLICT,
            "not-later",
            "the new certificate ends before the old one: that is no renewal",
        ),
        Ok(Superseded::Already(by)) => error(
            StatusCode::CONFLICT,
            "already-superseded",
            format!("already superseded by {by}"),
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
