//! The gateway's settings (TOML): the same `[console]` block as the station's, and a
//! `[gateway]` block for readers, slot, actions, bundle refresh and failure policy.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use cardstation_piv::Slot;

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
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub console: ConsoleConfig,
    pub gateway: GatewaySettings,
}

/// The `[console]` block, the station's own (`cardstation-console-client`).
pub use cardstation_console_client::ConsoleConfig;
use cardstation_console_client::{ConsoleClient, ConsoleError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    /// Name of this gateway in its log and events (default: host name).
    pub id: Option<String>,
    /// Readers to watch: exact names or unique substrings. Empty: every reader.
    pub readers: Vec<String>,
    /// The key slot a card proves itself with (9e needs no PIN: a tap).
    pub slot: String,
    /// Program and arguments run after a grant / a deny (no shell). The decision
    /// reaches it in environment variables (README: "Gateway actions").
    pub on_grant: Vec<String>,
    pub on_deny: Vec<String>,
    /// Seconds an action may run before it is killed.
    pub action_timeout_secs: u64,
    /// How often the trust bundle is refreshed from the console, in seconds.
    pub refresh_secs: u64,
    /// With no trust bundle, or an expired one: grant a card that proves its key and
    /// holds a valid certificate issued by `issuing_ca` (true), or deny every card
    /// (false, the default). Refused without `issuing_ca`: with card-signed
    /// certificates any card that proves its own key would pass.
    pub fail_open: bool,
    /// Where the trust bundle and the event queue are kept.
    pub data_dir: PathBuf,
    /// The issuing CA for CA-issued card certificates (PEM); unset: card-signed.
    pub issuing_ca: Option<PathBuf>,
    /// Refuse a card whose key the console did not mark attested (proof, at upload,
    /// that the key was generated on the card). Default: false.
    pub require_attestation: bool,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            id: None,
            readers: Vec::new(),
            slot: "9e".into(),
            on_grant: Vec::new(),
            on_deny: Vec::new(),
            action_timeout_secs: 10,
            refresh_secs: 300,
            fail_open: false,
            data_dir: PathBuf::from("/var/lib/cardstation-gateway"),
            issuing_ca: None,
            require_attestation: false,
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        config.slot().map_err(invalid)?;
        config.fail_open_allowed().map_err(invalid)?;
        if config.gateway.refresh_secs == 0 {
            return Err(invalid("[gateway] refresh_secs must be at least 1".into()));
        }
        for (name, argv) in [
            ("on_grant", &config.gateway.on_grant),
            ("on_deny", &config.gateway.on_deny),
        ] {
            if argv.first().is_some_and(|p| p.is_empty()) {
                return Err(invalid(format!(
                    "[gateway] {name}: the first element is the program to run and cannot be empty"
                )));
            }
        }
        Ok(config)
    }

    /// `fail_open` only with an issuing CA. With card-signed certificates the bundle is
    /// the only thing that says which cards belong to the site: overlooking a missing or
    /// expired one would grant any card that proves its own key, enrolled or made at home.
    pub fn fail_open_allowed(&self) -> Result<(), String> {
        if self.gateway.fail_open && self.gateway.require_attestation {
            return Err(
                "[gateway] fail_open and require_attestation exclude each other: which keys were attested is known only from the trust bundle, which fail_open does without"
                    .into(),
            );
        }
        if self.gateway.fail_open && self.gateway.issuing_ca.is_none() {
            return Err(
                "[gateway] fail_open needs [gateway] issuing_ca: with card-signed certificates a missing or expired trust bundle would let any card that proves its own key in (docs/GATEWAY.md, \"Decisions and the failure policy\")"
                    .into(),
            );
        }
        Ok(())
    }

    /// The gateway's client of its console (user agent `cardstation-gateway/VERSION`).
    pub fn console_client(&self) -> Result<ConsoleClient, ConsoleError> {
        ConsoleClient::for_agent(
            &self.console,
            concat!("cardstation-gateway/", env!("CARGO_PKG_VERSION")),
        )
    }

    pub fn slot(&self) -> Result<Slot, String> {
        Slot::from_str(&self.gateway.slot)
            .map_err(|e| format!("[gateway] slot {:?}: {e}", self.gateway.slot))
    }

    pub fn gateway_id(&self) -> String {
        self.gateway.id.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "gateway".into())
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gateway.toml");
        std::fs::write(&p, text).unwrap();
        Config::load(&p)
    }

    #[test]
    fn defaults_are_fail_closed_on_slot_9e() {
        let c = load("").unwrap();
        assert!(!c.gateway.fail_open);
        assert_eq!(c.slot().unwrap(), Slot::CardAuthentication);
        assert_eq!(c.gateway.refresh_secs, 300);
    }

    #[test]
    fn the_station_console_block_is_accepted_and_typos_are_not() {
        let c = load(
            "[console]\nurl = \"https://c:8443\"\nca = \"/ca.pem\"\nclient_cert = \"/g.pem\"\n\
             client_key = \"/g.key\"\nbundle_key = \"/b.pem\"\n\
             [gateway]\nreaders = [\"Virtual PCD 00 00\"]\nslot = \"9a\"\non_grant = [\"/bin/true\"]\n\
             on_deny = [\"/bin/false\", \"x\"]\nrefresh_secs = 60\nfail_open = true\ndata_dir = \"/tmp/g\"\n\
             issuing_ca = \"/ca.pem\"\n",
        )
        .unwrap();
        assert_eq!(c.console.url.as_deref(), Some("https://c:8443"));
        assert_eq!(c.gateway.on_deny, ["/bin/false", "x"]);
        assert!(c.gateway.fail_open);
        let err = load("[gateway]\nfail_opn = true\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("fail_opn"), "{err}");
        // fail_open without an issuing CA would grant any self-made card.
        let err = load("[gateway]\nfail_open = true\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("issuing_ca"), "{err}");
        let err = load("[gateway]\nslot = \"zz\"\n").unwrap_err().to_string();
        assert!(err.contains("slot"), "{err}");
        let err = load("[gateway]\non_grant = [\"\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("on_grant"), "{err}");
    }
}
