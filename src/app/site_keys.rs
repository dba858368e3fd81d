//! Per-card management keys derived from the site secret (HKDF-SHA256).
//!
//! Any station holding the same site secret derives the same key for a card from
//! the card's own identity (serial where it has one, and its CHUID GUID), so no
//! per-card key is ever stored and none is shared between cards.

use cardstation_piv::Guid;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use cardstation_piv::management_key::{key_length, KeyError};
use cardstation_piv::{Algorithm, ManagementKey};

const SECRET_LEN: usize = 32;
const SALT: &[u8] = b"cardstation/piv-management-key/v1";

#[derive(Debug, thiserror::Error)]
pub enum SiteSecretError {
    #[error("cannot read the site secret {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot create the site secret {path}: {source}. Check the data directory is writable"
    )]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the site secret {path} must hold exactly {SECRET_LEN} bytes (64 hex digits); it holds something else")]
    Invalid { path: PathBuf },
    #[error("the site secret {path} can be read by other users (mode {mode:o}). Run `chmod 600 {path}`", path = .path.display())]
    TooOpen { path: PathBuf, mode: u32 },
}

pub struct SiteSecret {
    bytes: Zeroizing<[u8; SECRET_LEN]>,
}

impl fmt::Debug for SiteSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SiteSecret(<redacted>)")
    }
}

/// What identifies a card for key derivation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardIdentity {
    pub serial: Option<u32>,
    pub guid: Option<Guid>,
}

impl SiteSecret {
    /// Load the secret at `path`, creating a new random one (mode 0600) if there is none.
    pub fn load_or_create(path: &Path) -> Result<Self, SiteSecretError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                check_permissions(path)?;
                Self::parse(&text, path)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = Zeroizing::new([0u8; SECRET_LEN]);
                rand::rngs::OsRng.fill_bytes(bytes.as_mut());
                let secret = SiteSecret { bytes };
                secret.save(path)?;
                Ok(secret)
            }
            Err(source) => Err(SiteSecretError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Load a secret that must exist (e.g. the site-wide one from the config).
    pub fn load(path: &Path) -> Result<Self, SiteSecretError> {
        let text = std::fs::read_to_string(path).map_err(|source| SiteSecretError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        check_permissions(path)?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<Self, SiteSecretError> {
        let raw =
            Zeroizing::new(
                hex::decode(text.trim()).map_err(|_| SiteSecretError::Invalid {
                    path: path.to_path_buf(),
                })?,
            );
        let mut bytes = Zeroizing::new([0u8; SECRET_LEN]);
        if raw.len() != SECRET_LEN {
            return Err(SiteSecretError::Invalid {
                path: path.to_path_buf(),
            });
        }
        bytes.copy_from_slice(&raw);
        Ok(SiteSecret { bytes })
    }

    /// Write the secret with owner-only permissions.
    pub fn save(&self, path: &Path) -> Result<(), SiteSecretError> {
        let err = |source| SiteSecretError::Write {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(err)?;
        let text = Zeroizing::new(hex::encode(self.bytes.as_ref()));
        f.write_all(text.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        Ok(())
    }

    /// The management key for `card` with `algorithm`.
    pub fn management_key(
        &self,
        card: &CardIdentity,
        algorithm: Algorithm,
    ) -> Result<ManagementKey, KeyError> {
        let len = key_length(algorithm)?;
        let mut info = vec![algorithm.id()];
        info.extend(card.serial.map(u32::to_be_bytes).unwrap_or_default());
        // No GUID: nothing (the derivation of every key made so far depends on this).
        if let Some(guid) = &card.guid {
            info.extend_from_slice(guid.as_bytes());
        }
        let hk = Hkdf::<Sha256>::new(Some(SALT), self.bytes.as_ref());
        let mut okm = Zeroizing::new(vec![0u8; len]);
        // HKDF-SHA256 can expand up to 8160 bytes; 32 is always fine.
        hk.expand(&info, &mut okm)
            .map_err(|_| KeyError::WrongLength {
                alg: algorithm,
                expected: len,
                got: 0,
            })?;
        ManagementKey::new(algorithm, &okm)
    }
}

#[cfg(unix)]
fn check_permissions(path: &Path) -> Result<(), SiteSecretError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|source| SiteSecretError::Read {
            path: path.to_path_buf(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(SiteSecretError::TooOpen {
            path: path.to_path_buf(),
            mode: mode & 0o777,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_: &Path) -> Result<(), SiteSecretError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_owner_only_permissions_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("site-secret");
        let a = SiteSecret::load_or_create(&p).unwrap();
        let b = SiteSecret::load_or_create(&p).unwrap();
        assert_eq!(a.bytes.as_ref(), b.bytes.as_ref());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                SiteSecret::load(&p),
                Err(SiteSecretError::TooOpen { .. })
            ));
        }
    }

    #[test]
    fn keys_differ_per_card_and_algorithm_and_are_stable() {
        let dir = tempfile::tempdir().unwrap();
        let s = SiteSecret::load_or_create(&dir.path().join("s")).unwrap();
        let c1 = CardIdentity {
            serial: Some(1),
            guid: Some(Guid::from_bytes([1; 16])),
        };
        let c2 = CardIdentity {
            serial: Some(1),
            guid: Some(Guid::from_bytes([2; 16])),
        };
        let k1 = s.management_key(&c1, Algorithm::Aes256).unwrap();
        assert_eq!(k1.bytes().len(), 32);
        assert_eq!(
            k1.bytes(),
            s.management_key(&c1, Algorithm::Aes256).unwrap().bytes()
        );
        assert_ne!(
            k1.bytes(),
            s.management_key(&c2, Algorithm::Aes256).unwrap().bytes()
        );
        let k3 = s.management_key(&c1, Algorithm::TripleDes).unwrap();
        assert_eq!(k3.bytes().len(), 24);
        assert_ne!(&k1.bytes()[..24], k3.bytes());
        assert!(format!("{s:?}").contains("redacted"));
    }

    #[test]
    fn malformed_secret_files_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, "not hex").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert!(matches!(
            SiteSecret::load(&p),
            Err(SiteSecretError::Invalid { .. })
        ));
    }
}
