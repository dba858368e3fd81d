//! `GET /v1/trust-bundle[?since=V]`: the signed trust bundle, served from memory.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use cardstation_protocol::bundle;

use crate::bundle::{BundleBuildError, DeltaAnswer};
use crate::http::{error, now, store_error, AppState};

#[derive(serde::Deserialize)]
pub struct BundleQuery {
    pub since: Option<u64>,
}

/// `GET /v1/trust-bundle[?since=V]`: the current signed version (full), or the
/// signed delta from V. `If-None-Match` with the current tag answers 304.
pub async fn trust_bundle(
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
