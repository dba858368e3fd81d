//! Certificates: building one for an on-card key, parsing, fingerprints, PEM/DER.

use p256::ecdsa::{signature::hazmat::PrehashVerifier, Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use p256::PublicKey;
use rand::RngCore;
use rcgen::{
    CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, KeyUsagePurpose, SerialNumber,
    SigningKey,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("the data is not an X.509 certificate: {0}")]
    NotACertificate(String),
    #[error("the certificate's key is not an ECDSA P-256 key")]
    NotP256,
    #[error("the file is neither PEM nor DER: {0}")]
    Encoding(String),
    #[error("building the certificate failed: {0}")]
    Build(String),
}

/// What goes into a certificate besides the key.
#[derive(Debug, Clone)]
pub struct CertificateProfile {
    pub subject: DistinguishedName,
    pub valid_days: u32,
}

/// A certificate serial: 128 random bits, positive and exactly 16 bytes long (RFC 5280
/// allows 20 octets; unpredictable serials keep chosen-prefix attacks off a CA).
pub fn random_serial() -> SerialNumber {
    let mut serial = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut serial);
    serial[0] = (serial[0] & 0x7F) | 0x01;
    SerialNumber::from_slice(&serial)
}

/// The parameters of a leaf certificate for a gateway/device client key:
/// random positive 128-bit serial, keyUsage digitalSignature, EKU clientAuth.
pub fn leaf_params(profile: &CertificateProfile, now: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = profile.subject.clone();
    params.serial_number = Some(random_serial());
    // Backdate a few minutes so a gateway with a slightly slow clock accepts it at once.
    params.not_before = now - time::Duration::minutes(5);
    // Validity is bounded by the caller (at most 100 years); saturate rather than overflow.
    params.not_after = now
        .checked_add(time::Duration::days(i64::from(profile.valid_days)))
        .unwrap_or(now);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}

/// Build a certificate self-signed by `signer` (the card: its private key never leaves it).
pub fn self_signed(
    profile: &CertificateProfile,
    signer: &impl SigningKey,
    now: OffsetDateTime,
) -> Result<Vec<u8>, CertError> {
    let params = leaf_params(profile, now);
    let cert = params
        .self_signed(signer)
        .map_err(|e| CertError::Build(e.to_string()))?;
    Ok(cert.der().to_vec())
}

/// A PKCS#10 request for the key behind `signer`, signed by it (the card: proof that
/// it holds the key), naming `subject` and asking for no extensions: the issuing CA's
/// profile sets lifetime and usages. PEM.
pub fn request(subject: &DistinguishedName, signer: &impl SigningKey) -> Result<String, CertError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject.clone();
    let csr = params
        .serialize_request(signer)
        .map_err(|e| CertError::Build(e.to_string()))?;
    csr.pem().map_err(|e| CertError::Build(e.to_string()))
}

/// The facts about a certificate an operator and the station need.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateInfo {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
    pub sha256: String,
    /// SHA-256 of the SubjectPublicKeyInfo: how the trust bundle names a revoked key.
    pub key_sha256: String,
    pub self_signed: bool,
    #[serde(skip)]
    pub public_key: Option<PublicKey>,
}

impl CertificateInfo {
    pub fn parse(der: &[u8]) -> Result<Self, CertError> {
        let (rest, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| CertError::NotACertificate(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CertError::NotACertificate(format!(
                "{} bytes of trailing data",
                rest.len()
            )));
        }
        let public_key = PublicKey::from_public_key_der(cert.public_key().raw).ok();
        Ok(CertificateInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            serial: hex::encode(cert.raw_serial()),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            sha256: fingerprint(der),
            key_sha256: fingerprint(cert.public_key().raw),
            self_signed: cert.subject() == cert.issuer(),
            public_key,
        })
    }

    pub fn p256_key(&self) -> Result<PublicKey, CertError> {
        self.public_key.ok_or(CertError::NotP256)
    }

    pub fn is_valid_at(&self, unix: i64) -> bool {
        self.not_before <= unix && unix <= self.not_after
    }

    pub fn not_after_text(&self) -> String {
        format_unix(self.not_after)
    }
}

/// SHA-256 over the DER encoding, lower-case hex: the identity the console uses.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Verify an ECDSA P-256 signature over a SHA-256 digest.
pub fn verify_prehash(key: &PublicKey, digest: &[u8; 32], sig: &Signature) -> bool {
    VerifyingKey::from(key).verify_prehash(digest, sig).is_ok()
}

pub fn to_pem(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}

/// Read a certificate given as PEM or DER.
pub fn from_pem_or_der(bytes: &[u8]) -> Result<Vec<u8>, CertError> {
    if bytes.windows(10).any(|w| w == b"-----BEGIN") {
        let p = pem::parse(bytes).map_err(|e| CertError::Encoding(e.to_string()))?;
        if p.tag() != "CERTIFICATE" {
            return Err(CertError::Encoding(format!(
                "PEM block is \"{}\", not CERTIFICATE",
                p.tag()
            )));
        }
        return Ok(p.into_contents());
    }
    if bytes.first() == Some(&0x30) {
        return Ok(bytes.to_vec());
    }
    Err(CertError::Encoding(
        "expected a PEM block or DER starting with a SEQUENCE".into(),
    ))
}

/// A duration in seconds as people say it: "40 s", "12 min", "5 h", "3 days".
pub fn format_age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

/// Unix time as "YYYY-MM-DD HH:MM:SS UTC".
pub fn format_unix(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_else(|_| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subject::parse_subject;

    fn profile() -> CertificateProfile {
        CertificateProfile {
            subject: parse_subject("CN=test-gw,O=Acme").unwrap(),
            valid_days: 30,
        }
    }

    #[test]
    fn builds_and_parses_a_leaf_certificate() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let now = OffsetDateTime::now_utc();
        let der = self_signed(&profile(), &key, now).unwrap();
        let info = CertificateInfo::parse(&der).unwrap();
        assert_eq!(info.subject, "CN=test-gw, O=Acme");
        assert!(info.self_signed);
        assert_eq!(info.serial.len(), 32);
        assert!(info.is_valid_at(now.unix_timestamp()));
        assert!(!info.is_valid_at(now.unix_timestamp() + 31 * 86_400));
        assert_eq!(info.sha256.len(), 64);
        assert!(info.p256_key().is_ok());

        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth);
    }

    #[test]
    fn serials_are_random() {
        let now = OffsetDateTime::now_utc();
        let a = leaf_params(&profile(), now).serial_number;
        let b = leaf_params(&profile(), now).serial_number;
        assert_ne!(a, b);
    }

    #[test]
    fn pem_and_der_import() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let der = self_signed(&profile(), &key, OffsetDateTime::now_utc()).unwrap();
        let pem = to_pem(&der);
        assert_eq!(from_pem_or_der(pem.as_bytes()).unwrap(), der);
        assert_eq!(from_pem_or_der(&der).unwrap(), der);
        assert!(from_pem_or_der(b"hello").is_err());
        assert!(
            from_pem_or_der(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .is_err()
        );
        assert!(CertificateInfo::parse(&[0x30, 0x03, 1, 2, 3]).is_err());
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(CertificateInfo::parse(&trailing).is_err());
    }
}
