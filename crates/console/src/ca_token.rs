//! The issuing CA's key on a PKCS#11 token (an HSM, a smart card; SoftHSM in the
//! tests): the key never leaves the token, which signs each certificate's digest.
//! Settings: `[issuing_ca_token]` in console.toml (module, token label, key label,
//! a file holding the user PIN).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use rcgen::{PublicKeyData, SignatureAlgorithm, SigningKey, PKCS_ECDSA_P256_SHA256};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// `[issuing_ca_token]`: where the CA key lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    /// The token's PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so.
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// The label (CKA_LABEL) of the CA's P-256 private key on it.
    pub key: String,
    /// A file whose first line is the token's user PIN (kept out of console.toml).
    pub pin_file: PathBuf,
}

/// A P-256 private key on a token, signing for rcgen.
pub struct TokenKey {
    session: Mutex<Session>,
    key: ObjectHandle,
    /// The uncompressed public point (what rcgen calls the key's DER bytes).
    public: Vec<u8>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey").finish_non_exhaustive()
    }
}

impl TokenKey {
    /// Log in to the token and find the key and its public half.
    pub fn open(s: &TokenSettings) -> Result<TokenKey, String> {
        let ctx = Pkcs11::new(&s.module)
            .map_err(|e| format!("cannot load the PKCS#11 module {}: {e}", s.module.display()))?;
        ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .map_err(|e| format!("the PKCS#11 module did not start: {e}"))?;
        let slots = ctx
            .get_slots_with_token()
            .map_err(|e| format!("cannot list the tokens: {e}"))?;
        let slot = slots
            .into_iter()
            .find(|slot| {
                ctx.get_token_info(*slot)
                    .is_ok_and(|t| t.label().trim_end() == s.token)
            })
            .ok_or_else(|| {
                format!(
                    "no token labelled {:?} is present under {}",
                    s.token,
                    s.module.display()
                )
            })?;
        let pin = read_pin(&s.pin_file)?;
        let session = ctx
            .open_ro_session(slot)
            .map_err(|e| format!("cannot open a session on token {:?}: {e}", s.token))?;
        session
            .login(UserType::User, Some(&pin))
            .map_err(|e| format!("the token refused the PIN in {}: {e}", s.pin_file.display()))?;
        let find = |class: ObjectClass| {
            session
                .find_objects(&[
                    Attribute::Class(class),
                    Attribute::Label(s.key.as_bytes().to_vec()),
                ])
                .map_err(|e| format!("cannot search token {:?}: {e}", s.token))
        };
        let key = *find(ObjectClass::PRIVATE_KEY)?.first().ok_or_else(|| {
            format!(
                "token {:?} holds no private key labelled {:?}",
                s.token, s.key
            )
        })?;
        let public_object = *find(ObjectClass::PUBLIC_KEY)?.first().ok_or_else(|| {
            format!(
                "token {:?} holds no public key labelled {:?} (the CA key's other half)",
                s.token, s.key
            )
        })?;
        let point = session
            .get_attributes(public_object, &[AttributeType::EcPoint])
            .map_err(|e| format!("cannot read the CA key's public point: {e}"))?
            .into_iter()
            .find_map(|a| match a {
                Attribute::EcPoint(p) => Some(p),
                _ => None,
            })
            .ok_or("the CA key on the token has no EC point: is it a P-256 key?")?;
        let public = uncompressed_point(&point)
            .ok_or("the CA key on the token is not a P-256 key (its point is not 65 bytes)")?;
        Ok(TokenKey {
            session: Mutex::new(session),
            key,
            public,
        })
    }

    /// The public key, to compare with the CA certificate's.
    pub fn public_key(&self) -> Option<p256::PublicKey> {
        p256::PublicKey::from_sec1_bytes(&self.public).ok()
    }
}

fn read_pin(path: &Path) -> Result<AuthPin, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the token PIN file {}: {e}", path.display()))?;
    let pin = text.lines().next().unwrap_or("").trim().to_string();
    if pin.is_empty() {
        return Err(format!("the token PIN file {} is empty", path.display()));
    }
    Ok(AuthPin::from(pin))
}

/// CKA_EC_POINT is a DER OCTET STRING around the point (some tokens give it bare).
fn uncompressed_point(attr: &[u8]) -> Option<Vec<u8>> {
    let point = match attr {
        [0x04, 0x41, rest @ ..] if rest.len() == 65 => rest,
        bare if bare.len() == 65 => bare,
        _ => return None,
    };
    (point[0] == 0x04).then(|| point.to_vec())
}

impl PublicKeyData for TokenKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

impl SigningKey for TokenKey {
    /// CKM_ECDSA signs a digest and answers r‖s; X.509 wants DER.
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let digest = Sha256::digest(msg);
        let session = self
            .session
            .lock()
            .map_err(|_| rcgen::Error::RemoteKeyError)?;
        let raw = session
            .sign(&Mechanism::Ecdsa, self.key, &digest)
            .map_err(|e| {
                tracing::error!("the CA token did not sign: {e}");
                rcgen::Error::RemoteKeyError
            })?;
        let sig =
            p256::ecdsa::Signature::from_slice(&raw).map_err(|_| rcgen::Error::RemoteKeyError)?;
        Ok(sig.to_der().as_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_point_is_read_wrapped_or_bare() {
        let mut point = vec![0x04];
        point.extend([7u8; 64]);
        let mut wrapped = vec![0x04, 0x41];
        wrapped.extend(&point);
        assert_eq!(uncompressed_point(&wrapped), Some(point.clone()));
        assert_eq!(uncompressed_point(&point), Some(point.clone()));
        assert_eq!(uncompressed_point(&point[..33]), None);
    }
}
