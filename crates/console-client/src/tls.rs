//! TLS settings: only the configured CA is trusted for the console, the client
//! always presents its certificate, and its key must be its owner's alone.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::{ConsoleConfig, ConsoleError};

fn settings(e: impl std::fmt::Display) -> ConsoleError {
    ConsoleError::Settings(e.to_string())
}

fn read(path: &Option<PathBuf>, what: &str) -> Result<Vec<u8>, ConsoleError> {
    let path = path
        .as_deref()
        .ok_or_else(|| settings(format!("[console] {what} is not set")))?;
    read_file(path, what)
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, ConsoleError> {
    std::fs::read(path).map_err(|e| settings(format!("cannot read {what} {}: {e}", path.display())))
}

/// The client key is the program's identity at the console: refuse one that other
/// users can read or replace, and say how to fix it.
#[cfg(unix)]
fn refuse_open_key(path: Option<&Path>) -> Result<(), ConsoleError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Some(path) = path else {
        return Ok(());
    };
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(()); // reading it says what is wrong
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        let owner = if meta.uid() == me {
            String::new()
        } else {
            format!(
                " (it belongs to uid {}; this program runs as uid {me}, so give it to that user first: chown {me} {})",
                meta.uid(),
                path.display()
            )
        };
        return Err(settings(format!(
            "[console] client_key {} can be read or changed by other users (mode {mode:o}); run chmod 600 {}{owner}",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_open_key(_: Option<&Path>) -> Result<(), ConsoleError> {
    Ok(())
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS settings of the console connection: only the configured CA is trusted,
/// and the client presents its certificate.
pub fn tls_config(cfg: &ConsoleConfig) -> Result<rustls::ClientConfig, ConsoleError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&read(&cfg.ca, "ca")?) {
        roots
            .add(cert.map_err(|e| settings(format!("[console] ca: {e}")))?)
            .map_err(|e| settings(format!("[console] ca: {e}")))?;
    }
    if roots.is_empty() {
        return Err(settings("[console] ca holds no certificate"));
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read(&cfg.client_cert, "client_cert")?)
            .collect::<Result<_, _>>()
            .map_err(|e| settings(format!("[console] client_cert: {e}")))?;
    refuse_open_key(cfg.client_key.as_deref())?;
    let key = PrivateKeyDer::from_pem_slice(&read(&cfg.client_key, "client_key")?)
        .map_err(|e| settings(format!("[console] client_key: {e}")))?;
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(settings)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| settings(format!("client certificate and key do not match: {e}")))
}

/// The TLS settings for `bundle_url`: public CA roots and the console CA, no client
/// certificate (a web server or CDN does not ask for one; the signature is trusted).
pub(crate) fn bundle_url_tls(cfg: &ConsoleConfig) -> Result<rustls::ClientConfig, ConsoleError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(ca) = cfg.ca.as_deref() {
        for cert in CertificateDer::pem_slice_iter(&read_file(ca, "ca")?).flatten() {
            let _ = roots.add(cert);
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(settings)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The name in the client certificate (its subject CN): the name the console's
/// `station add` / `gateway add` issued it for, and the one the console knows this
/// client by. `None` when no certificate is configured.
pub fn client_name(cfg: &ConsoleConfig) -> Result<Option<String>, ConsoleError> {
    if cfg.client_cert.is_none() {
        return Ok(None);
    }
    let pem = read(&cfg.client_cert, "client_cert")?;
    let der = CertificateDer::pem_slice_iter(&pem)
        .next()
        .ok_or_else(|| settings("[console] client_cert holds no certificate"))?
        .map_err(|e| settings(format!("[console] client_cert: {e}")))?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| settings(format!("[console] client_cert: {e}")))?;
    let name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    Ok(name)
}
