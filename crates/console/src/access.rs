//! Who may call what: the client certificate names an identity (verified by TLS
//! against the console CA, looked up in the credential store on every request, so
//! a revocation takes effect on the next one), and one table says which roles may
//! make each request. It is checked before any handler runs; a route missing from
//! the table is closed to every role.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum_server::tls::TlsInfo;

use cardstation_pki::certificate::fingerprint;

use crate::http::{error, store_error, AppState};
use crate::storage::Role;

/// Every request a client may make, and the roles that may make it.
pub const ACCESS: &[(Method, &str, &[Role])] = &[
    (Method::POST, "/v1/certificates", &[Role::Station]),
    (Method::GET, "/v1/certificates", &[Role::Station]),
    (Method::GET, "/v1/certificates/{sha256}", &[Role::Station]),
    (
        Method::POST,
        "/v1/certificates/{sha256}/revoke",
        &[Role::Station],
    ),
    (
        Method::POST,
        "/v1/certificates/{sha256}/supersede",
        &[Role::Station],
    ),
    (Method::POST, "/v1/certificate-requests", &[Role::Station]),
    (Method::GET, "/v1/issuance", &[Role::Station]),
    (Method::GET, "/.well-known/est/cacerts", &[Role::Station]),
    (
        Method::POST,
        "/.well-known/est/simpleenroll",
        &[Role::Station],
    ),
    (
        Method::POST,
        "/.well-known/est/simplereenroll",
        &[Role::Station],
    ),
    (
        Method::GET,
        "/v1/trust-bundle",
        &[Role::Station, Role::Gateway],
    ),
    (Method::POST, "/v1/events", &[Role::Gateway]),
    (Method::GET, "/v1/events", &[Role::Station]),
    (Method::POST, "/v1/audit-anchor", &[Role::Station]),
    (Method::GET, "/v1/audit-anchor", &[Role::Station]),
];

/// The identity making a request (handlers take it as an extractor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub role: Role,
    pub name: String,
}

/// The station making a request: the name bound to its verified client certificate.
#[derive(Clone)]
pub struct Station(pub String);

/// The gateway making a request: the name bound to its verified client certificate.
#[derive(Clone)]
pub struct Gateway(pub String);

/// What the table says of `method` on the route `path` for `role`.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// The role may use the resource, not with this method.
    WrongMethod,
    /// Only these roles may.
    Refused(&'static [Role]),
}

pub fn verdict(role: Role, method: &Method, path: &str) -> Verdict {
    let mut listed_for_role = false;
    for (m, p, roles) in ACCESS {
        if *p != path {
            continue;
        }
        if m == method {
            return if roles.contains(&role) {
                Verdict::Allowed
            } else {
                Verdict::Refused(roles)
            };
        }
        listed_for_role |= roles.contains(&role);
    }
    if listed_for_role {
        Verdict::WrongMethod
    } else {
        Verdict::Refused(&[])
    }
}

fn refused(caller: &Caller, allowed: &[Role]) -> Response {
    // A gateway may do only two things: say so, whatever it tried.
    if caller.role == Role::Gateway {
        return error(
            StatusCode::FORBIDDEN,
            "gateway-not-allowed",
            "a gateway credential may fetch the trust bundle and post events, nothing else",
        );
    }
    match allowed {
        [only] => error(
            StatusCode::FORBIDDEN,
            &format!("not-a-{only}"),
            format!("this resource is for {only} credentials (cardstation-console {only} add)"),
        ),
        _ => error(
            StatusCode::FORBIDDEN,
            &format!("{}-not-allowed", caller.role),
            format!("a {} credential may not make this request", caller.role),
        ),
    }
}

/// Every request: who is calling, and may they.
pub async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
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
    let identity = match state.store.identity_by_cert(&fingerprint(&cert)).await {
        Ok(Some(id)) => id,
        Ok(None) => {
            return error(
                StatusCode::FORBIDDEN,
                "unknown-station",
                "this client certificate is not a registered station or gateway credential; ask the console administrator for one (cardstation-console station add / gateway add)",
            )
        }
        Err(e) => return store_error(e),
    };
    let caller = Caller {
        role: identity.role,
        name: identity.name,
    };
    if identity.revoked_at.is_some() {
        return error(
            StatusCode::FORBIDDEN,
            &format!("{}-revoked", caller.role),
            format!(
                "this {role}'s console credential ({role} {name}) was revoked; ask the console administrator for a new one",
                role = caller.role,
                name = caller.name
            ),
        );
    }
    // No route matched: the router's own answer (404), for a known caller only.
    let matched = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    if let Some(path) = matched {
        match verdict(caller.role, req.method(), &path) {
            Verdict::Allowed => {}
            Verdict::WrongMethod => {
                return error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method-not-allowed",
                    "this resource does not take that method",
                )
            }
            Verdict::Refused(allowed) => {
                tracing::warn!(
                    "{} {} refused: {} {path}",
                    caller.role,
                    caller.name,
                    req.method()
                );
                return refused(&caller, allowed);
            }
        }
    }
    match caller.role {
        Role::Station => {
            req.extensions_mut().insert(Station(caller.name.clone()));
        }
        Role::Gateway => {
            req.extensions_mut().insert(Gateway(caller.name.clone()));
        }
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_reaches_only_what_the_table_lists() {
        use Verdict::*;
        assert_eq!(
            verdict(Role::Station, &Method::POST, "/v1/certificates"),
            Allowed
        );
        assert_eq!(
            verdict(Role::Gateway, &Method::GET, "/v1/trust-bundle"),
            Allowed
        );
        assert_eq!(verdict(Role::Gateway, &Method::POST, "/v1/events"), Allowed);
        assert_eq!(
            verdict(Role::Gateway, &Method::POST, "/v1/certificates"),
            Refused(&[Role::Station])
        );
        assert_eq!(
            verdict(Role::Station, &Method::POST, "/v1/events"),
            Refused(&[Role::Gateway])
        );
        assert_eq!(
            verdict(Role::Station, &Method::DELETE, "/v1/trust-bundle"),
            WrongMethod
        );
        // A route added to the router but not to the table is closed to everyone.
        for role in Role::ALL {
            assert_eq!(verdict(role, &Method::GET, "/v1/new-thing"), Refused(&[]));
        }
    }
}
