//! The console's HTTP resources: which handler answers each request. Who may
//! call each one is the table in access.rs, checked before any handler runs.

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;

use crate::http::{error, AppState};
use crate::{access, certificates, est, events, search, serve_bundle};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/v1/certificates",
            post(certificates::upload).get(search::search),
        )
        .route(
            "/v1/certificates/{sha256}",
            get(certificates::get_certificate),
        )
        .route(
            "/v1/certificates/{sha256}/revoke",
            post(certificates::revoke),
        )
        .route(
            "/v1/certificates/{sha256}/supersede",
            post(certificates::supersede),
        )
        .route("/v1/certificate-requests", post(certificates::issue))
        .route("/v1/issuance", get(certificates::issuance))
        .route("/.well-known/est/cacerts", get(est::cacerts))
        .route("/.well-known/est/simpleenroll", post(est::simpleenroll))
        .route("/.well-known/est/simplereenroll", post(est::simplereenroll))
        .route("/v1/trust-bundle", get(serve_bundle::trust_bundle))
        .merge(events::routes())
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
            access::authorize,
        ))
        .with_state(state)
}
