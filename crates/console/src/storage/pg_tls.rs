//! TLS to PostgreSQL with rustls: the server's certificate must chain to the CA
//! given as `sslrootcert` and name the host in the URL (libpq's verify-full).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use super::StoreError;

/// Makes one verified TLS connection per new database connection.
#[derive(Clone)]
pub struct RustlsConnector(Arc<rustls::ClientConfig>);

impl RustlsConnector {
    /// Trust only the CA certificates in the PEM file `ca`.
    pub fn from_ca_file(ca: &str) -> Result<Self, StoreError> {
        let settings = |m: String| StoreError::Settings(format!("sslrootcert {ca}: {m}"));
        let pem = std::fs::read(ca).map_err(|e| settings(e.to_string()))?;
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&pem) {
            roots
                .add(c.map_err(|e| settings(e.to_string()))?)
                .map_err(|e| settings(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(settings("holds no certificate".into()));
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| settings(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(RustlsConnector(Arc::new(config)))
    }
}

impl<S> MakeTlsConnect<S> for RustlsConnector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, Self::Error> {
        Ok(RustlsConnect {
            config: self.0.clone(),
            name: ServerName::try_from(domain.to_string())?,
        })
    }
}

pub struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let tls = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(RustlsStream(tls))
        })
    }
}

pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // No SCRAM channel binding: the certificate check above is what binds.
        ChannelBinding::none()
    }
}

/// A `postgres://` URL with libpq's `sslmode` and `sslrootcert`: the URL for the
/// driver (without `sslrootcert`) and, when TLS is asked for, the CA file.
/// `require`, `verify-ca` and `verify-full` all verify the chain and the host
/// name here; asking for TLS without a CA is refused rather than trusting any
/// certificate.
pub fn split_tls(url: &str) -> Result<(String, Option<String>), StoreError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), None));
    };
    let mut kept = Vec::new();
    let (mut mode, mut ca) = (None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", v)) => mode = Some(v.to_string()),
            Some(("sslrootcert", v)) => ca = Some(v.to_string()),
            _ => kept.push(pair.to_string()),
        }
    }
    let tls = match mode.as_deref() {
        None if ca.is_some() => true,
        None | Some("disable") => false,
        Some("require" | "verify-ca" | "verify-full") => true,
        Some(other) => {
            let hint = "use disable, or verify-full with sslrootcert=PATH";
            return Err(StoreError::Settings(format!(
                "sslmode={other} is not supported: {hint}"
            )));
        }
    };
    if tls && ca.is_none() {
        return Err(StoreError::Settings(
            "TLS to PostgreSQL needs sslrootcert=PATH (the CA of the server's certificate)".into(),
        ));
    }
    kept.push(format!(
        "sslmode={}",
        if tls { "require" } else { "disable" }
    ));
    Ok((
        format!("{base}?{}", kept.join("&")),
        if tls { ca } else { None },
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tls_options_are_read_like_libpq_and_never_fall_back() {
        assert_eq!(
            split_tls("postgres://u@h/db").unwrap(),
            ("postgres://u@h/db".into(), None)
        );
        assert_eq!(
            split_tls(
                "postgres://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem&connect_timeout=3"
            )
            .unwrap(),
            (
                "postgres://u@h/db?connect_timeout=3&sslmode=require".into(),
                Some("/ca.pem".into())
            )
        );
        assert_eq!(
            split_tls("postgres://u@h/db?sslmode=disable").unwrap().1,
            None
        );
        assert!(split_tls("postgres://u@h/db?sslmode=require").is_err());
        assert!(split_tls("postgres://u@h/db?sslmode=prefer").is_err());
    }
}
