//! The reference management console: a small real HTTPS server (rustls, mutual
//! TLS) that tests, demos and sites can run, on SQLite (the default) or on
//! PostgreSQL for several instances at once. Only clients with a certificate
//! issued by the console's station CA may call it.

pub mod access;
pub mod admin;
pub mod attestation;
pub mod bundle;
pub mod ca_token;
mod certificates;
mod est;
mod events;
pub mod http;
pub mod issuance;
pub mod migrate;
mod routes;
pub mod search;
mod serve_bundle;
pub mod settings;
pub mod setup;
pub mod storage;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub use http::MAX_BODY;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Setup(#[from] setup::SetupError),
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
    #[error("console database {db}: {source}")]
    Database {
        db: storage::Database,
        #[source]
        source: storage::StoreError,
    },
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

pub struct ServeOptions {
    pub data: PathBuf,
    pub listen: SocketAddr,
    pub bundle_validity: Duration,
    /// Overrides `database` in the settings file; the default is `console.db` in `data`.
    pub database: Option<storage::Database>,
}

/// The database of the console in `data`: `option`, else the settings file, else
/// SQLite in `data` (what `serve` and the administration commands share).
pub fn resolve_database(
    data: &Path,
    option: Option<&storage::Database>,
) -> Result<storage::Database, ServeError> {
    if let Some(db) = option {
        return Ok(db.clone());
    }
    match settings::load(data)?.database {
        Some(name) => storage::Database::parse(&name).map_err(|source| {
            ServeError::Settings(settings::SettingsError::Invalid {
                path: data.join(settings::SETTINGS_FILE),
                message: source.to_string(),
            })
        }),
        None => Ok(storage::Database::default_in(data)),
    }
}

/// The console's rules from its settings file.
/// The site's policy from its settings file (console.toml) and CA files.
pub fn policy(data: &Path) -> Result<http::Policy, ServeError> {
    let s = settings::load(data)?;
    let invalid = |message: String| {
        ServeError::Settings(settings::SettingsError::Invalid {
            path: data.join(settings::SETTINGS_FILE),
            message,
        })
    };
    let max_certificate_days = s
        .max_certificate_days
        .unwrap_or(cardstation_pki::rules::DEFAULT_MAX_LIFETIME_DAYS);
    let ca_issues = s.issuance == Some(cardstation_protocol::messages::IssuanceMode::Ca);
    // Under CA issuance the issuing CA is the console's own unless named.
    let ca_path = match (&s.issuing_ca, ca_issues) {
        (Some(path), _) => Some(path.clone()),
        (None, true) => Some(data.join(issuance::DEVICE_CA_CERT)),
        (None, false) => None,
    };
    let issuer = match (ca_issues, &ca_path) {
        (true, Some(cert)) => {
            let key = s
                .issuing_ca_key
                .clone()
                .unwrap_or_else(|| data.join(issuance::DEVICE_CA_KEY));
            let ca = issuance::ca_key(&key, s.issuing_ca_token.as_ref())
                .and_then(|key| issuance::DeviceCa::load(cert, key))
                .map_err(|e| {
                invalid(format!(
                    "issuance = \"ca\" needs the issuing CA and its key: {e}. Run `cardstation-console ca init --data {}` to make one",
                    data.display()
                ))
            })?;
            let profiles = issuance::Profiles::from_settings(&s.profiles, max_certificate_days)
                .map_err(invalid)?;
            Some(Arc::new(http::CaIssuer { ca, profiles }))
        }
        _ => None,
    };
    let issuing_ca = match (&issuer, &ca_path) {
        (Some(issuer), _) => Some(issuer.ca.cert_der.clone()),
        (None, None) => None,
        (None, Some(path)) => {
            let bytes = std::fs::read(path).map_err(|source| setup::SetupError::Io {
                path: path.clone(),
                source,
            })?;
            let der = cardstation_pki::certificate::from_pem_or_der(&bytes)
                .map_err(|e| invalid(format!("issuing_ca {}: {e}", path.display())))?;
            Some(der)
        }
    };
    let attestation =
        attestation::AttestationPolicy::load(&s.attestation, data).map_err(&invalid)?;
    Ok(http::Policy {
        attestation,
        attested_since: 0,
        revocations_per_hour: match s.revocations_per_hour {
            Some(0) => None,
            Some(n) => Some(n),
            None => Some(settings::DEFAULT_REVOCATIONS_PER_HOUR),
        },
        max_certificate_days,
        issuing_ca,
        issuer,
    })
}

/// Run the console until SIGINT/SIGTERM, then shut down gracefully.
/// `on_listening` is told the bound address (useful with port 0).
pub async fn serve(
    opts: ServeOptions,
    on_listening: impl FnOnce(SocketAddr, &setup::ConsoleFiles, &storage::Database),
) -> Result<(), ServeError> {
    let files = setup::ensure(&opts.data)?;
    let database = resolve_database(&opts.data, opts.database.as_ref())?;
    let mut policy = policy(&opts.data)?;
    for root in policy.attestation.test_roots() {
        tracing::warn!(
            "attestation root \"{root}\" is a test root (virtual cards): keys attested under it prove nothing; remove it from {} on a production console",
            policy.attestation.roots_dir.display()
        );
    }
    let store = storage::open(&database)
        .await
        .map_err(|source| ServeError::Database {
            db: database.clone(),
            source,
        })?;
    if let Ok(n) = store.count().await {
        tracing::info!("{n} certificates stored in {database}");
    }
    admin::register_first_station(&store, &files).await;
    // While the console's own CA issues only for attested keys, its revocation-only
    // bundles say since when: a gateway then knows a certificate of that CA from then on
    // holds a key born on a card. (Every instance on one database must agree.)
    let vouching = policy.attestation.require && policy.issuer.is_some();
    // One second on: a certificate signed in this very second, before the rule, begins
    // before the mark (certificates begin on whole seconds).
    let since = http::now() - issuance::BACKDATE_SECS + 1;
    match store.attestation_required(vouching, since).await {
        Ok(0) => {}
        Ok(mark) => {
            policy.attested_since = mark;
            tracing::info!(
                "the issuing CA has issued only for attested keys since {}",
                cardstation_pki::certificate::format_unix(mark)
            )
        }
        Err(source) => {
            return Err(ServeError::Database {
                db: database.clone(),
                source,
            })
        }
    }
    let store = Arc::new(store);
    let bundles = bundle::BundleBook::new(
        store.clone(),
        Arc::new(files.bundle_signing_key()?),
        i64::try_from(opts.bundle_validity.as_secs()).unwrap_or(i64::MAX / 2),
        policy.issuing_ca.iter().cloned().collect(),
    );
    let state = http::AppState {
        store,
        bundles: Arc::new(bundles),
        policy: Arc::new(policy),
    };
    let tls = tls_config(&files)?;
    let app = routes::router(state).layer(axum::middleware::from_fn(log_request));

    let handle = axum_server::Handle::new();
    let shutdown = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing requests in flight");
        shutdown.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    // TCP_NODELAY: small JSON answers go out at once instead of waiting on the
    // client's delayed ACK (tens of milliseconds per request otherwise).
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(
        axum_server::tls_rustls::RustlsConfig::from_config(tls),
    )
    .acceptor(axum_server::accept::NoDelayAcceptor::new());
    let server = axum_server::bind(opts.listen)
        .acceptor(acceptor)
        .handle(handle.clone())
        .serve(app.into_make_service_with_connect_info::<SocketAddr>());
    let listen = opts.listen;
    let announce = async {
        if let Some(addr) = handle.listening().await {
            on_listening(addr, &files, &database);
        }
    };
    let (result, ()) = tokio::join!(server, announce);
    result.map_err(|source| ServeError::Listen {
        addr: listen,
        source,
    })
}

/// Server identity plus mandatory client certificates from the console CA.
fn tls_config(files: &setup::ConsoleFiles) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    let tls = |e: &dyn std::fmt::Display| ServeError::Tls(e.to_string());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&files.read(setup::SERVER_CERT)?)
            .collect::<Result<_, _>>()
            .map_err(|e| tls(&e))?;
    let key =
        PrivateKeyDer::from_pem_slice(&files.read(setup::SERVER_KEY)?).map_err(|e| tls(&e))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&files.read(setup::CA_CERT)?) {
        roots.add(ca.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| tls(&e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| tls(&e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

async fn log_request(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let response = next.run(req).await;
    tracing::info!(
        "{peer} {method} {path} -> {} ({} ms)",
        response.status().as_u16(),
        started.elapsed().as_millis()
    );
    response
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
