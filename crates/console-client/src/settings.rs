//! The `[console]` block of the station's `cardstation.toml` and the gateway's
//! `gateway.toml`, key for key the same.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ConsoleError;

/// The default of `max_bundle_mib`.
pub const DEFAULT_MAX_BUNDLE_MIB: u64 = 512;

/// The management console. Without `url` the program works offline only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// e.g. "https://console.example:8443"
    pub url: Option<String>,
    /// CA certificate (PEM) the console's server certificate must chain to.
    pub ca: Option<PathBuf>,
    /// This client's certificate and key (PEM), issued by the console's CA. The key
    /// must be readable by its owner only.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// The console's trust-bundle public key (PEM): bundles must verify with it.
    pub bundle_key: Option<PathBuf>,
    /// Where `cardstation-console publish` files are served (a web server or CDN),
    /// if bundles are not fetched from the console itself. http or https (public CA
    /// roots or `ca`); the bundle's signature, not the transport, is what is trusted.
    pub bundle_url: Option<String>,
    pub connect_timeout_secs: u64,
    pub request_timeout_secs: u64,
    /// The largest trust bundle or delta downloaded, in MiB. A full bundle is also
    /// cut off at the size its own header allows (a million cards take ~35 MB).
    pub max_bundle_mib: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            url: None,
            ca: None,
            client_cert: None,
            client_key: None,
            bundle_key: None,
            bundle_url: None,
            connect_timeout_secs: 5,
            request_timeout_secs: 15,
            max_bundle_mib: DEFAULT_MAX_BUNDLE_MIB,
        }
    }
}

impl ConsoleConfig {
    /// Check what can be checked without reading a file: a console is configured,
    /// over https, and the other values are usable.
    pub fn validate(&self) -> Result<&str, ConsoleError> {
        let url = self.url.as_deref().ok_or(ConsoleError::NotConfigured)?;
        if !url.starts_with("https://") {
            return Err(ConsoleError::Settings(format!(
                "[console] url must start with https:// (got {url})"
            )));
        }
        if let Some(u) = self.bundle_url.as_deref() {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                return Err(ConsoleError::Settings(format!(
                    "[console] bundle_url must start with https:// or http:// (got {u})"
                )));
            }
        }
        if self.max_bundle_mib == 0 {
            return Err(ConsoleError::Settings(
                "[console] max_bundle_mib must be at least 1".into(),
            ));
        }
        Ok(url)
    }

    /// The download cap in bytes.
    pub fn max_bundle_bytes(&self) -> u64 {
        self.max_bundle_mib.saturating_mul(1024 * 1024)
    }

    /// What identifies these settings for the console: a change here may cure a
    /// refusal (another credential, another URL), so items refused under one set of
    /// settings are worth sending again under another. The certificate's contents
    /// count, not only its path, so a renewed credential in the same place counts.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut field = |bytes: Option<&[u8]>| {
            match bytes {
                Some(b) => {
                    h.update([1]);
                    h.update((b.len() as u64).to_be_bytes());
                    h.update(b);
                }
                None => h.update([0]),
            };
        };
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.to_string_lossy().into_owned());
        field(self.url.as_deref().map(str::as_bytes));
        for p in [&self.ca, &self.client_cert, &self.client_key] {
            field(path(p).as_deref().map(str::as_bytes));
        }
        for p in [&self.ca, &self.client_cert] {
            field(p.as_ref().and_then(|p| std::fs::read(p).ok()).as_deref());
        }
        let digest = h.finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_setting() {
        assert_eq!(
            ConsoleConfig::default().validate(),
            Err(ConsoleError::NotConfigured)
        );
        let mut c = ConsoleConfig {
            url: Some("http://c".into()),
            ..Default::default()
        };
        assert!(matches!(c.validate(), Err(ConsoleError::Settings(m)) if m.contains("url")));
        c.url = Some("https://c:8443".into());
        assert_eq!(c.validate().unwrap(), "https://c:8443");
        c.bundle_url = Some("ftp://x".into());
        assert!(matches!(c.validate(), Err(ConsoleError::Settings(m)) if m.contains("bundle_url")));
        c.bundle_url = None;
        c.max_bundle_mib = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn the_fingerprint_follows_the_credential() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        std::fs::write(&cert, "one").unwrap();
        let c = ConsoleConfig {
            url: Some("https://c".into()),
            client_cert: Some(cert.clone()),
            ..Default::default()
        };
        let before = c.fingerprint();
        assert_eq!(before, c.fingerprint());
        std::fs::write(&cert, "two").unwrap();
        assert_ne!(before, c.fingerprint());
        let other = ConsoleConfig {
            url: Some("https://d".into()),
            ..c.clone()
        };
        assert_ne!(other.fingerprint(), c.fingerprint());
    }
}
