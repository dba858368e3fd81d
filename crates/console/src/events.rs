//! What gateways report and what stations anchor: `POST /v1/events` (gateways
//! only), `GET /v1/events` (stations), `POST`/`GET /v1/audit-anchor` (stations),
//! and the rule that a gateway credential reaches nothing but the trust bundle
//! and the events it posts.

// Handlers return `Result<_, Response>`: the error *is* the HTTP answer, as is usual with axum.
#![allow(clippy::result_large_err)]

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};

use cardstation_protocol::messages::{
    is_event_id, is_fingerprint, AuditHead, Decision, EventBatch, EventList, EventsAnswer,
    GatewayEvent, RefusedEvent, AT_UNKNOWN, REFUSED_FOR_GOOD, REFUSED_FOR_NOW,
};

use crate::access::{Gateway, Station};
use crate::http::{error, json_body_within, now, store_error, AppState};
use crate::storage::valid_identity_name;
use crate::storage::{AnchorSet, EventQuery, MAX_EVENT_QUERY};

/// Most events in one `POST /v1/events` (the gateway sends up to 200 at a time).
pub const MAX_BATCH: usize = 500;
/// Largest `POST /v1/events` body.
pub const MAX_EVENTS_BODY: usize = 1024 * 1024;
const MAX_READER: usize = 256;
const MAX_SUBJECT: usize = 1024;
const MAX_REASONS: usize = 32;
const MAX_REASON: usize = 64;
/// A gateway's clock may run this far ahead of the console's.
const MAX_CLOCK_AHEAD_SECS: i64 = 3600;
/// 2000-01-01: a decision dated earlier comes from a gateway whose clock is not set.
const EARLIEST: i64 = 946_684_800;
const DEFAULT_LIMIT: u32 = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/events", post(post_events).get(list_events))
        .route("/v1/audit-anchor", post(post_anchor).get(get_anchor))
}

fn plain_text(s: &str, max: usize) -> bool {
    !s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
}

fn reason_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_REASON
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// What is wrong with one reported event, if anything: the refusal code
/// (`REFUSED_FOR_GOOD`, or `REFUSED_FOR_NOW` for a time ahead of the console's clock,
/// which may pass later) and why.
fn check_event(e: &GatewayEvent, now: i64) -> Result<(), (&'static str, String)> {
    let bad = |why: String| (REFUSED_FOR_GOOD, why);
    if !is_event_id(&e.id) {
        return Err(bad("id must be 32 lower-case hex digits".into()));
    }
    // AT_UNKNOWN: the gateway says it cannot vouch for its clock.
    if e.at != AT_UNKNOWN && e.at < EARLIEST {
        return Err(bad(format!(
            "at {} is before 2000: set the gateway's clock (a gateway that knows its clock is unset sends at = 0)",
            e.at
        )));
    }
    if e.at > now + MAX_CLOCK_AHEAD_SECS {
        return Err((
            REFUSED_FOR_NOW,
            format!(
                "at {} is more than an hour ahead of the console's clock ({now})",
                e.at
            ),
        ));
    }
    if !plain_text(&e.reader, MAX_READER) {
        return Err(bad(format!(
            "reader must be 1 to {MAX_READER} characters without control characters"
        )));
    }
    if let Some(fp) = &e.fingerprint {
        if !is_fingerprint(fp) {
            return Err(bad("fingerprint must be 64 lower-case hex digits".into()));
        }
    }
    if e.decision == Decision::Grant && e.fingerprint.is_none() {
        return Err(bad(
            "a grant must name the card's certificate (fingerprint)".into(),
        ));
    }
    if let Some(subject) = &e.subject {
        if !plain_text(subject, MAX_SUBJECT) {
            return Err(bad(format!(
                "subject must be 1 to {MAX_SUBJECT} characters without control characters"
            )));
        }
    }
    if e.reasons.len() > MAX_REASONS || !e.reasons.iter().all(|r| reason_code(r)) {
        return Err(bad(format!(
            "reasons must be at most {MAX_REASONS} codes of a-z, 0-9 and '-' (up to {MAX_REASON} each)"
        )));
    }
    if e.bundle_version.is_some_and(|v| i64::try_from(v).is_err()) {
        return Err(bad("bundle_version is out of range".into()));
    }
    Ok(())
}

/// `POST /v1/events`: keep each event once (by gateway and id). A malformed event is
/// named in the answer's `refused` and not kept; the good events of the batch are kept
/// all the same, so one bad event cannot hold back a gateway's later reports.
async fn post_events(
    State(state): State<AppState>,
    Extension(Gateway(gateway)): Extension<Gateway>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let batch: EventBatch = match json_body_within(&headers, body, MAX_EVENTS_BODY).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    if batch.events.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "empty-batch",
            "the batch holds no events",
        );
    }
    if batch.events.len() > MAX_BATCH {
        return error(
            StatusCode::BAD_REQUEST,
            "batch-too-large",
            format!(
                "{} events in one batch; send at most {MAX_BATCH}",
                batch.events.len()
            ),
        );
    }
    let now = now();
    let mut good = Vec::with_capacity(batch.events.len());
    let mut refused = Vec::new();
    for (index, mut e) in batch.events.into_iter().enumerate() {
        match check_event(&e, now) {
            Ok(()) => {
                if e.at == AT_UNKNOWN {
                    e.at = now;
                }
                good.push(e);
            }
            Err((code, why)) => {
                tracing::warn!("gateway {gateway}: event {} refused: {why}", index + 1);
                refused.push(RefusedEvent {
                    index,
                    id: e.id.chars().take(64).collect(),
                    code: code.into(),
                    message: format!("event {} of the batch: {why}", index + 1),
                });
            }
        }
    }
    let counts = if good.is_empty() {
        cardstation_protocol::messages::EventsAccepted {
            accepted: 0,
            duplicates: 0,
        }
    } else {
        match state.store.add_events(&gateway, &good, now).await {
            Ok(counts) => counts,
            Err(e) => return store_error(e),
        }
    };
    Json(EventsAnswer { counts, refused }).into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EventParams {
    fingerprint: Option<String>,
    gateway: Option<String>,
    since: Option<i64>,
    limit: Option<u32>,
}

/// `GET /v1/events?fingerprint=&gateway=&since=&limit=`: newest first, bounded.
async fn list_events(
    State(state): State<AppState>,
    Extension(Station(_station)): Extension<Station>,
    params: Result<Query<EventParams>, QueryRejection>,
) -> Response {
    let Query(p) = match params {
        Ok(p) => p,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad-query",
                format!("{e}; use fingerprint=FP, gateway=NAME, since=UNIX-SECONDS, limit=N"),
            )
        }
    };
    if p.fingerprint.as_deref().is_some_and(|f| !is_fingerprint(f)) {
        return error(
            StatusCode::BAD_REQUEST,
            "bad-fingerprint",
            "use the SHA-256 fingerprint: 64 lower-case hex digits",
        );
    }
    if p.gateway
        .as_deref()
        .is_some_and(|g| !valid_identity_name(g))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "bad-gateway",
            "gateway must be a gateway name (a-z, 0-9, '-', '_', '.')",
        );
    }
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_EVENT_QUERY {
        return error(
            StatusCode::BAD_REQUEST,
            "bad-limit",
            format!("limit must be 1 to {MAX_EVENT_QUERY}"),
        );
    }
    let query = EventQuery {
        fingerprint: p.fingerprint,
        gateway: p.gateway,
        since: p.since,
        limit,
    };
    match state.store.events(&query).await {
        Ok(events) => Json(EventList { events }).into_response(),
        Err(e) => store_error(e),
    }
}

/// `POST /v1/audit-anchor`: keep the calling station's audit chain head, unless the
/// console already holds a longer one or another hash for as many rows (then the
/// station's trail lost or changed rows since: 409, the anchor stays).
async fn post_anchor(
    State(state): State<AppState>,
    Extension(Station(station)): Extension<Station>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let head: AuditHead = match json_body_within(&headers, body, 4096).await {
        Ok(h) => h,
        Err(resp) => return resp,
    };
    if !is_fingerprint(&head.hash) || i64::try_from(head.rows).is_err() {
        return error(
            StatusCode::BAD_REQUEST,
            "bad-audit-head",
            "hash must be 64 lower-case hex digits and rows a row count",
        );
    }
    match state.store.set_audit_anchor(&station, &head, now()).await {
        Ok(AnchorSet::Stored(anchor)) => Json(anchor).into_response(),
        Ok(AnchorSet::Shorter(held)) => error(
            StatusCode::CONFLICT,
            "audit-trail-shorter",
            format!(
                "the console holds station {station}'s audit trail anchored at {} rows (last hash {}); this trail has {} rows: rows were removed since",
                held.rows, held.hash, head.rows
            ),
        ),
        Ok(AnchorSet::Different(held)) => error(
            StatusCode::CONFLICT,
            "audit-trail-changed",
            format!(
                "the console holds station {station}'s audit trail anchored at {} rows with last hash {}; this trail's row {} has hash {}: the trail was rewritten",
                held.rows, held.hash, head.rows, head.hash
            ),
        ),
        Err(e) => store_error(e),
    }
}

/// `GET /v1/audit-anchor`: the head the console holds for the calling station.
async fn get_anchor(
    State(state): State<AppState>,
    Extension(Station(station)): Extension<Station>,
) -> Response {
    match state.store.audit_anchor(&station).await {
        Ok(Some(anchor)) => Json(anchor).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "no-audit-anchor",
            format!("the console holds no audit anchor for station {station} yet"),
        ),
        Err(e) => store_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Spoil = Box<dyn Fn(&mut GatewayEvent)>;

    fn event() -> GatewayEvent {
        GatewayEvent {
            id: "0123456789abcdef0123456789abcdef".into(),
            at: 1_800_000_000,
            reader: "Virtual PCD 00 00".into(),
            decision: Decision::Grant,
            fingerprint: Some("a".repeat(64)),
            subject: Some("CN=gw".into()),
            reasons: vec![],
            bundle_version: Some(3),
        }
    }

    #[test]
    fn events_are_checked_field_by_field() {
        const NOW: i64 = 1_800_000_000;
        let now = NOW;
        assert_eq!(check_event(&event(), now), Ok(()));
        let bad: Vec<Spoil> = vec![
            Box::new(|e| e.id = "0123".into()),
            Box::new(|e| e.id = "0123456789ABCDEF0123456789ABCDEF".into()),
            Box::new(|e| e.at = 1),
            Box::new(|e| e.at = -5),
            Box::new(|e| e.reader = String::new()),
            Box::new(|e| e.reader = "a\u{1b}[2J".into()),
            Box::new(|e| e.reader = "r".repeat(MAX_READER + 1)),
            Box::new(|e| e.fingerprint = Some("zz".into())),
            Box::new(|e| e.fingerprint = None),
            Box::new(|e| e.subject = Some("s".repeat(MAX_SUBJECT + 1))),
            Box::new(|e| e.reasons = vec!["a,b".into()]),
            Box::new(|e| e.reasons = vec!["x".into(); MAX_REASONS + 1]),
            Box::new(|e| e.bundle_version = Some(u64::MAX)),
        ];
        for (i, spoil) in bad.iter().enumerate() {
            let mut e = event();
            spoil(&mut e);
            assert!(
                matches!(check_event(&e, now), Err((REFUSED_FOR_GOOD, _))),
                "case {i} was not refused for good"
            );
        }
        // Ahead of the console's clock: refused for now (it may pass later).
        let mut ahead = event();
        ahead.at = NOW + 2 * 3600;
        assert!(matches!(
            check_event(&ahead, now),
            Err((REFUSED_FOR_NOW, _))
        ));
        // A gateway that says its clock is unset: taken (stored at the receive time).
        let mut unknown = event();
        unknown.at = AT_UNKNOWN;
        assert_eq!(check_event(&unknown, now), Ok(()));
        // The gateway bounds what it sends by the same limits.
        assert_eq!(
            (MAX_SUBJECT, MAX_READER, EARLIEST),
            (
                cardstation_protocol::messages::MAX_EVENT_SUBJECT,
                cardstation_protocol::messages::MAX_EVENT_READER,
                cardstation_protocol::messages::EARLIEST_EVENT_TIME
            )
        );
        let mut deny = event();
        deny.decision = Decision::Deny;
        deny.fingerprint = None;
        deny.reasons = vec!["card".into()];
        assert_eq!(check_event(&deny, now), Ok(()));
    }
}
