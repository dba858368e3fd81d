//! The console's settings file, `console.toml` in its data directory. Optional;
//! a command-line option wins over the file, the file over the default.
//!
//! ```toml
//! # PostgreSQL instead of the default SQLite file (data directory/console.db)
//! database = "postgres://console@db.example:5432/cardstation"
//! # Revocations one station may make per hour (the damage a stolen laptop can do)
//! revocations_per_hour = 30
//! # Longest certificate lifetime accepted, in days
//! max_certificate_days = 36525
//! # Accept device certificates issued by this CA (PEM) instead of card-signed ones
//! issuing_ca = "/etc/cardstation/device-ca.pem"
//! # How cards get their certificates: "card-signed" (the default: each card signs
//! # its own) or "ca" (the console's issuing CA signs the card's request;
//! # `cardstation-console ca init` makes DATA/device-ca.pem and .key)
//! issuance = "ca"
//! # The issuing CA's key, if not DATA/device-ca.key
//! issuing_ca_key = "/etc/cardstation/device-ca.key"
//!
//! # ... or on a PKCS#11 token instead of in a file (`ca init` then certifies it)
//! [issuing_ca_token]
//! module = "/usr/lib/softhsm/libsofthsm2.so"
//! token = "Plant B CA"
//! key = "device-ca"
//! pin_file = "/etc/cardstation/ca-token.pin"
//!
//! # Under "ca": what each kind of card is issued (default: one profile, "device",
//! # 365 days). A request names its profile; one is the default.
//! [profiles.device]
//! days = 365
//! default = true
//! organization = "Example Plant B"
//!
//! # Keys proven to be generated on the card (PIV attestation; crates/console/src/attestation.rs)
//! [attestation]
//! require_attestation = true
//! roots = "/etc/cardstation/attestation-roots"
//! [attestation.refuse."9a"]
//! pin = ["never"]
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const SETTINGS_FILE: &str = "console.toml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `sqlite:PATH` or `postgres://…`.
    pub database: Option<String>,
    pub revocations_per_hour: Option<u32>,
    pub max_certificate_days: Option<u32>,
    pub issuing_ca: Option<PathBuf>,
    pub issuance: Option<cardstation_protocol::messages::IssuanceMode>,
    pub issuing_ca_key: Option<PathBuf>,
    pub issuing_ca_token: Option<crate::ca_token::TokenSettings>,
    #[serde(default)]
    pub profiles: std::collections::BTreeMap<String, crate::issuance::ProfileSettings>,
    /// Key attestation: roots, whether it is required, refused PIN/touch policies.
    #[serde(default)]
    pub attestation: crate::attestation::AttestationSettings,
}

/// Revocations one station may make in an hour unless configured.
pub const DEFAULT_REVOCATIONS_PER_HOUR: u32 = 30;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The settings in `data`, or the defaults when there is no file.
pub fn load(data: &Path) -> Result<Settings, SettingsError> {
    let path = data.join(SETTINGS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
        Err(source) => return Err(SettingsError::Read { path, source }),
    };
    toml::from_str(&text).map_err(|e| SettingsError::Invalid {
        path,
        message: e.to_string(),
    })
}
