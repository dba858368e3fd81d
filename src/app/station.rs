//! The station's opened resources: settings, database, site secret.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{Config, ConfigError, Paths};
use crate::store::{Store, StoreError};

use super::site_keys::{SiteSecret, SiteSecretError};

#[derive(Debug, thiserror::Error)]
pub enum StationError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    SiteSecret(#[from] SiteSecretError),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub struct Station {
    pub paths: Paths,
    pub config: Config,
    pub store: Store,
    pub operator: String,
    pub station_id: String,
    /// When the console last failed to tell the site's rules: not asked again at once.
    site_rules_failed_at: Mutex<Option<Instant>>,
}

/// How long a learned site rule is used before the console is asked again (a desk
/// enrolling a queue of cards asks once, not once per card).
const SITE_RULE_MAX_AGE_SECS: i64 = 600;
/// After the console did not answer, how long the last known rule is used without asking.
const SITE_RULE_RETRY: Duration = Duration::from_secs(60);

impl Station {
    /// Who delivers the outbox: this station's name and a fingerprint of what the
    /// console judges it by (its name and its `[console]` settings). An item refused
    /// for a settings reason is sent again once this differs.
    pub fn delivery_settings(&self) -> String {
        format!(
            "{}/{}",
            self.config.console.fingerprint(),
            cardstation_pki::fingerprint(self.station_id.as_bytes())
                .get(..16)
                .unwrap_or_default()
        )
    }

    pub fn open(paths: Paths) -> Result<Self, StationError> {
        let config = Config::load(&paths.config_file, paths.config_explicit)?;
        Self::with_config(paths, config)
    }

    /// Open with settings already loaded (the window loads them once at start).
    pub fn with_config(paths: Paths, config: Config) -> Result<Self, StationError> {
        create_private_dir(&paths.data_dir)?;
        // The station's own site secret shows it was used: an empty database then is lost, not new.
        let store = Store::open_guarded(&paths.database(), &[paths.site_secret()])?;
        let operator = config.operator();
        let station_id = config.station_id();
        Ok(Station {
            paths,
            config,
            store,
            operator,
            station_id,
            site_rules_failed_at: Mutex::new(None),
        })
    }

    /// The site's issuing CA at the console, when `[enroll] issuer = "console"`: the
    /// station's client, the profile asked for, and the CA pinned by `[verify]
    /// issuing_ca` if set (else the console's answer names it).
    pub fn certificate_issuer(
        &self,
    ) -> Result<Option<super::issuer::ConsoleIssuer>, crate::error_code::Failure> {
        use crate::error_code::{ErrorCode, Failure};
        if self.config.enroll.issuer != crate::config::IssuerChoice::Console {
            return Ok(None);
        }
        let client = crate::console::ConsoleClient::new(&self.config.console)?;
        let pinned = match &self.config.verify.issuing_ca {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|e| {
                    Failure::new(
                        ErrorCode::Config,
                        format!("[verify] issuing_ca {}: {e}", path.display()),
                    )
                })?;
                Some(
                    cardstation_pki::certificate::from_pem_or_der(&bytes).map_err(|e| {
                        Failure::new(ErrorCode::Config, format!("[verify] issuing_ca: {e}"))
                    })?,
                )
            }
            None => None,
        };
        Ok(Some(super::issuer::ConsoleIssuer::new(
            client,
            self.config.enroll.profile.clone(),
            pinned,
        )))
    }

    /// The context a card-changing workflow (enroll, replace, renew) runs in here: the
    /// records, the site secret, who is working, the site's CA when it issues, and its
    /// attestation rule. That may ask the console (see
    /// [`site_attestation_rule`](Self::site_attestation_rule)), so this belongs on a worker
    /// thread, never the window's.
    pub fn enroll_context<'a>(
        &'a self,
        secret: &'a SiteSecret,
        issuer: Option<&'a super::issuer::ConsoleIssuer>,
    ) -> super::enroll::EnrollContext<'a> {
        super::enroll::EnrollContext {
            store: &self.store,
            site_secret: secret,
            operator: &self.operator,
            station_id: &self.station_id,
            issuer: issuer.map(|i| i as &dyn super::issuer::CertificateIssuer),
            require_attestation: self.site_requires_attestation(),
        }
    }

    /// Whether the site's console accepts only attested keys (see
    /// [`site_attestation_rule`](Self::site_attestation_rule)); unknown counts as no.
    pub fn site_requires_attestation(&self) -> bool {
        self.site_attestation_rule().unwrap_or(false)
    }

    /// Whether the site's console accepts only attested keys, as it publishes them
    /// (`GET /v1/issuance`): asked before a card is changed, so that a card that cannot
    /// attest is refused with the reason rather than enrolled and then refused at upload.
    /// The answer is kept in the station database for ten minutes, and as the last known
    /// rule while the console does not answer. `None`: no console configured, or it has
    /// never answered (logged); the console still judges the upload when it is delivered.
    pub fn site_attestation_rule(&self) -> Option<bool> {
        self.config.console.url.as_ref()?;
        let now = crate::store::now_unix();
        let held = self.store.site_attestation_rule().unwrap_or_else(|e| {
            tracing::warn!("the site's rules kept in the station database: {e}");
            None
        });
        if let Some((required, at)) = held {
            if (0..SITE_RULE_MAX_AGE_SECS).contains(&(now - at)) {
                return Some(required);
            }
        }
        let mut failed_at = match self.site_rules_failed_at.lock() {
            Ok(failed_at) => failed_at,
            Err(poisoned) => poisoned.into_inner(),
        };
        if failed_at.is_some_and(|t| t.elapsed() < SITE_RULE_RETRY) {
            return held.map(|(required, _)| required);
        }
        let asked = crate::console::ConsoleClient::new(&self.config.console)
            .and_then(|client| client.issuance());
        match asked {
            Ok(issuance) => {
                *failed_at = None;
                let required = issuance.attestation.required;
                if let Err(e) = self.store.set_site_attestation_rule(required, now) {
                    tracing::warn!("could not keep the site's rules in the station database: {e}");
                }
                Some(required)
            }
            Err(e) => {
                *failed_at = Some(Instant::now());
                tracing::warn!(
                    "could not learn the site's attestation rule from the console ({e}); \
                     {}",
                    if held.is_some() {
                        "the last one learned is used"
                    } else {
                        "the card is not checked for it here, the console checks the upload"
                    }
                );
                held.map(|(required, _)| required)
            }
        }
    }

    /// The site secret: the shared one named in the config, else this station's own.
    pub fn site_secret(&self) -> Result<SiteSecret, SiteSecretError> {
        match &self.config.station.site_secret_file {
            Some(path) => SiteSecret::load(path),
            None => SiteSecret::load_or_create(&self.paths.site_secret()),
        }
    }
}

fn create_private_dir(dir: &Path) -> Result<(), StationError> {
    let err = |source| StationError::DataDir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    Ok(())
}

/// Its code: what went wrong opening the station.
impl crate::error_code::Coded for StationError {
    fn code(&self) -> crate::error_code::ErrorCode {
        use crate::error_code::ErrorCode;
        match self {
            StationError::Config(e) => e.code(),
            StationError::Store(e) => e.code(),
            StationError::SiteSecret(e) => e.code(),
            StationError::DataDir { .. } => ErrorCode::Station,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A station whose console is configured but away (nothing listens on the port).
    fn station_with_absent_console(dir: &Path) -> Station {
        let mut config = Config::default();
        config.station.operator = Some("op".into());
        config.console.url = Some("https://127.0.0.1:9".into());
        config.console.connect_timeout_secs = 1;
        let paths = Paths {
            data_dir: dir.join("data"),
            config_file: dir.join("unused.toml"),
            config_explicit: false,
        };
        Station::with_config(paths, config).unwrap()
    }

    #[test]
    fn the_site_rule_is_kept_and_used_while_the_console_is_away() {
        let dir = tempfile::tempdir().unwrap();
        let st = station_with_absent_console(dir.path());
        // Never learned and the console is away: no rule known here.
        assert_eq!(st.site_attestation_rule(), None);
        // Learned a moment ago: used as it is.
        let now = crate::store::now_unix();
        st.store.set_site_attestation_rule(true, now).unwrap();
        assert_eq!(st.site_attestation_rule(), Some(true));
        // Learned long ago, the console still away: the last one learned holds.
        st.store
            .set_site_attestation_rule(true, now - 86_400)
            .unwrap();
        *st.site_rules_failed_at.lock().unwrap() = None;
        assert_eq!(st.site_attestation_rule(), Some(true));
        assert!(st.site_rules_failed_at.lock().unwrap().is_some());
        // No console configured: no rule, whatever is kept.
        let mut unconfigured = st;
        unconfigured.config.console.url = None;
        assert_eq!(unconfigured.site_attestation_rule(), None);
    }
}
