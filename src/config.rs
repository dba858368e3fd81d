//! Station settings (TOML) and the station's directories.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("no home directory to keep station data in; pass --data-dir")]
    NoHome,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub station: StationConfig,
    pub enroll: EnrollConfig,
    pub card: CardConfig,
    pub console: ConsoleConfig,
    pub verify: VerifyConfig,
}

/// Spot checks.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerifyConfig {
    /// The CA that issues the site's card certificates (PEM). Unset: card-signed
    /// (self-signed) certificates are expected.
    pub issuing_ca: Option<PathBuf>,
    /// Fail a card whose key the console did not mark attested, as a gateway with
    /// `require_attestation` does.
    pub require_attestation: bool,
}

/// The `[console]` block, shared with the gateway (`cardstation-console-client`).
pub use cardstation_console_client::ConsoleConfig;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StationConfig {
    /// Name of this station in records and the console (default: host name).
    pub id: Option<String>,
    /// Operator name recorded with every action (default: the login name).
    pub operator: Option<String>,
    /// A site secret shared by every station of a site (default: one per station,
    /// created in the data directory).
    pub site_secret_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnrollConfig {
    pub slot: String,
    /// Subject template; `{serial}` and `{guid}` are replaced by the card's values.
    pub subject: String,
    pub days: u32,
    /// Who signs the card's certificate: the card itself, or the site's issuing CA at
    /// the console (the kit `identity add` writes says which the site chose).
    pub issuer: IssuerChoice,
    /// The console profile to be issued under (`issuer = "console"`); unset: its default.
    pub profile: Option<String>,
}

/// `[enroll] issuer`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssuerChoice {
    /// Self-signed by the card's new key (the gateway holds the allow-list).
    #[default]
    Card,
    /// From a PKCS#10 request the card signs, by the console's issuing CA.
    Console,
}

impl Default for EnrollConfig {
    fn default() -> Self {
        EnrollConfig {
            slot: "9e".into(),
            subject: "CN=Cardstation device {guid}".into(),
            days: 365,
            issuer: IssuerChoice::Card,
            profile: None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CardConfig {
    /// Largest certificate object the cards of this site accept, in bytes.
    /// Default: known per card type (YubiKey 3052), else the PIV minimum of 1856.
    pub max_object_size: Option<usize>,
}

impl Config {
    /// Load `path`; a missing default config file is an empty config, a missing
    /// explicit one is an error.
    pub fn load(path: &Path, explicit: bool) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                return Ok(Config::default())
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// The station's name in records and at the console: `[station] id`, else the
    /// name its console credential was issued for (the client certificate's CN, as
    /// `cardstation-console station add NAME` writes it), else the host name.
    pub fn station_id(&self) -> String {
        if let Some(id) = &self.station.id {
            return id.clone();
        }
        // An unreadable certificate is reported when the console is used.
        if let Ok(Some(name)) = cardstation_console_client::client_name(&self.console) {
            return name;
        }
        std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "station".into())
    }

    pub fn operator(&self) -> String {
        self.station.operator.clone().unwrap_or_else(|| {
            std::env::var("USER")
                .or_else(|_| std::env::var("USERNAME"))
                .unwrap_or_else(|_| "operator".into())
        })
    }
}

/// Where the station keeps its database and state, and its settings.
#[derive(Debug, Clone)]
pub struct Paths {
    pub data_dir: PathBuf,
    pub config_file: PathBuf,
    pub config_explicit: bool,
}

impl Paths {
    pub fn resolve(
        data_dir: Option<PathBuf>,
        config: Option<PathBuf>,
    ) -> Result<Self, ConfigError> {
        let dirs = directories::ProjectDirs::from("org", "Cardstation", "cardstation");
        let data_dir = match data_dir {
            Some(d) => d,
            None => dirs
                .as_ref()
                .map(|d| d.data_dir().to_path_buf())
                .ok_or(ConfigError::NoHome)?,
        };
        let config_explicit = config.is_some();
        let config_file = match config {
            Some(c) => c,
            None => dirs
                .as_ref()
                .map(|d| d.config_dir().join("cardstation.toml"))
                .ok_or(ConfigError::NoHome)?,
        };
        Ok(Paths {
            data_dir,
            config_file,
            config_explicit,
        })
    }

    pub fn database(&self) -> PathBuf {
        self.data_dir.join("station.db")
    }

    pub fn site_secret(&self) -> PathBuf {
        self.data_dir.join("site-secret")
    }

    pub fn demo_card_state(&self) -> PathBuf {
        self.data_dir.join("demo-card")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_default_config_is_empty_but_explicit_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("none.toml");
        assert!(Config::load(&p, false).is_ok());
        assert!(Config::load(&p, true).is_err());
    }

    #[test]
    fn config_parses_and_rejects_typos() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[station]\nid = \"desk-1\"\n[enroll]\ndays = 30\n").unwrap();
        let c = Config::load(&p, true).unwrap();
        assert_eq!(c.station_id(), "desk-1");
        assert_eq!(c.enroll.days, 30);
        assert_eq!(c.enroll.slot, "9e");
        std::fs::write(&p, "[enrol]\ndays = 30\n").unwrap();
        let err = Config::load(&p, true).unwrap_err().to_string();
        assert!(err.contains("enrol"), "{err}");
    }

    /// Without `[station] id` the station is the one its console credential names
    /// (the certificate's CN, as `cardstation-console station add` issues it).
    #[test]
    fn without_an_id_the_name_comes_from_the_client_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "desk-7");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationalUnitName, "Cardstation station");
        let cert = params.self_signed(&key).unwrap();
        let pem = dir.path().join("station.pem");
        std::fs::write(&pem, cert.pem()).unwrap();
        let mut c = Config::default();
        c.console.client_cert = Some(pem);
        assert_eq!(c.station_id(), "desk-7");
        c.station.id = Some("typed".into());
        assert_eq!(c.station_id(), "typed");
    }
}
