//! Trust bundles: signing (console side) and verification (station and gateways).

use base64::Engine as _;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::messages::{BundlePayload, SignedBundle};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("the trust bundle is not valid base64/JSON: {0}")]
    Malformed(String),
    #[error("the trust bundle's signature does not verify with the pinned console key: it was altered or signed by someone else. It was refused")]
    BadSignature,
    #[error("the pinned console key cannot be read: {0}")]
    Key(String),
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Sign `payload` (its JSON bytes are what is signed).
pub fn sign(payload: &BundlePayload, key: &SigningKey) -> Result<SignedBundle, BundleError> {
    let bytes = serde_json::to_vec(payload).map_err(|e| BundleError::Malformed(e.to_string()))?;
    let sig: Signature = key.sign(&bytes);
    Ok(SignedBundle {
        payload: B64.encode(&bytes),
        signature: B64.encode(sig.to_der().as_bytes()),
        key_id: key_id(key.verifying_key())?,
    })
}

/// Verify the signature over the payload bytes, then parse them.
pub fn verify(
    bundle: &SignedBundle,
    key: &VerifyingKey,
) -> Result<(BundlePayload, Vec<u8>), BundleError> {
    let bytes = B64
        .decode(&bundle.payload)
        .map_err(|e| BundleError::Malformed(format!("payload: {e}")))?;
    let sig_der = B64
        .decode(&bundle.signature)
        .map_err(|e| BundleError::Malformed(format!("signature: {e}")))?;
    let sig = Signature::from_der(&sig_der).map_err(|_| BundleError::BadSignature)?;
    key.verify(&bytes, &sig)
        .map_err(|_| BundleError::BadSignature)?;
    let payload: BundlePayload = serde_json::from_slice(&bytes)
        .map_err(|e| BundleError::Malformed(format!("payload: {e}")))?;
    Ok((payload, bytes))
}

/// SHA-256 (hex) of the key's SubjectPublicKeyInfo.
pub fn key_id(key: &VerifyingKey) -> Result<String, BundleError> {
    let der = key
        .to_public_key_der()
        .map_err(|e| BundleError::Key(e.to_string()))?;
    Ok(hex::encode(Sha256::digest(der.as_bytes())))
}

/// Read a PEM public key ("PUBLIC KEY") such as bundle-signing.pub.pem.
pub fn verifying_key_from_pem(pem: &str) -> Result<VerifyingKey, BundleError> {
    VerifyingKey::from_public_key_pem(pem).map_err(|e| BundleError::Key(e.to_string()))
}

/// A held trust bundle as an operator (or a gateway's status) sees it.
#[derive(Debug, Clone, Serialize)]
pub struct TrustStatus {
    pub version: u64,
    pub issued_at: i64,
    pub expires_at: i64,
    pub fetched_at: i64,
    pub age_secs: i64,
    pub expired: bool,
    pub allowed: usize,
    pub revoked: usize,
    pub key_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(version: u64) -> BundlePayload {
        BundlePayload {
            revoked_keys: vec!["ab".repeat(32)],
            version,
            issued_at: 1,
            expires_at: 2,
            allowed: vec!["ab".repeat(32)],
            revoked: vec![],
        }
    }

    #[test]
    fn signed_bundles_verify_and_tampering_is_detected() {
        let key = SigningKey::random(&mut rand::rngs::OsRng);
        let signed = sign(&payload(3), &key).unwrap();
        let (p, _) = verify(&signed, key.verifying_key()).unwrap();
        assert_eq!(p, payload(3));

        // Change one allowed fingerprint inside the signed bytes.
        let mut bytes = B64.decode(&signed.payload).unwrap();
        let pos = bytes.iter().position(|&b| b == b'a').unwrap();
        bytes[pos] = b'c';
        let tampered = SignedBundle {
            payload: B64.encode(&bytes),
            ..signed.clone()
        };
        assert_eq!(
            verify(&tampered, key.verifying_key()),
            Err(BundleError::BadSignature)
        );

        let other = SigningKey::random(&mut rand::rngs::OsRng);
        assert_eq!(
            verify(&signed, other.verifying_key()),
            Err(BundleError::BadSignature)
        );
        let garbage = SignedBundle {
            payload: "***".into(),
            ..signed
        };
        assert!(matches!(
            verify(&garbage, key.verifying_key()),
            Err(BundleError::Malformed(_))
        ));
    }
}
