//! The rules a device certificate must meet, shared by the station's spot check
//! and the console's upload check, so a certificate the console accepts is one a
//! spot check would not fail for the certificate itself.

use p256::pkcs8::DecodePublicKey;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::certificate::{fingerprint, format_unix};

/// Bounds on what a device certificate may carry (a card's certificate is small).
pub const MAX_CERTIFICATE_BYTES: usize = 8 * 1024;
pub const MAX_SUBJECT_BYTES: usize = 1024;
pub const MAX_NAMES: usize = 32;
pub const MAX_NAME_BYTES: usize = 256;
/// The longest lifetime the station can give (100 years), unless configured lower.
pub const DEFAULT_MAX_LIFETIME_DAYS: u32 = 36_525;

/// What a certificate is judged against.
pub struct Rules<'a> {
    /// The issuing CA (DER) for CA-issued certificates; `None` requires card-signed ones.
    pub issuing_ca: Option<&'a [u8]>,
    pub now: i64,
    pub max_lifetime_days: u32,
}

/// One finding, with a stable code for scripts and words for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub code: &'static str,
    pub ok: bool,
    pub message: String,
}

impl Check {
    fn ok(code: &'static str, message: impl Into<String>) -> Self {
        Check {
            code,
            ok: true,
            message: message.into(),
        }
    }
    fn fail(code: &'static str, message: impl Into<String>) -> Self {
        Check {
            code,
            ok: false,
            message: message.into(),
        }
    }
}

/// SHA-256 (hex) of the certificate's SubjectPublicKeyInfo: the key's identity,
/// the same under any certificate made for it.
pub fn public_key_sha256(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(fingerprint(cert.public_key().raw))
}

/// Of `cas` (DER certificates), the one whose subject is the certificate's issuer;
/// the first when none is (the chain check then says whose name it carries).
pub fn issuer_among<'a>(der: &[u8], cas: &'a [Vec<u8>]) -> Option<&'a [u8]> {
    let issuer = x509_parser::parse_x509_certificate(der)
        .ok()
        .map(|(_, c)| c.issuer().as_raw().to_vec());
    cas.iter()
        .find(|ca| {
            issuer.as_deref().is_some_and(|issuer| {
                x509_parser::parse_x509_certificate(ca)
                    .is_ok_and(|(_, ca)| ca.subject().as_raw() == issuer)
            })
        })
        .or(cas.first())
        .map(Vec::as_slice)
}

/// SHA-256 of the SubjectPublicKeyInfo in a PKCS#10 request (DER): the key as
/// [`public_key_sha256`] names it in a certificate.
pub fn request_public_key_sha256(request: &[u8]) -> Option<String> {
    use x509_parser::prelude::FromDer;
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(request).ok()?;
    Some(fingerprint(csr.certification_request_info.subject_pki.raw))
}

/// Every rule, in order; the certificate passes when none failed.
pub fn check_certificate(der: &[u8], rules: &Rules<'_>) -> Vec<Check> {
    let mut out = Vec::new();
    if der.len() > MAX_CERTIFICATE_BYTES {
        out.push(Check::fail(
            "too-large",
            format!(
                "the certificate is {} bytes; a device certificate is at most {MAX_CERTIFICATE_BYTES}",
                der.len()
            ),
        ));
        return out;
    }
    let cert = match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => cert,
        Ok(_) => {
            out.push(Check::fail(
                "bad-certificate",
                "the certificate has trailing data",
            ));
            return out;
        }
        Err(e) => {
            out.push(Check::fail(
                "bad-certificate",
                format!("the certificate cannot be parsed: {e}"),
            ));
            return out;
        }
    };
    if p256::PublicKey::from_public_key_der(cert.public_key().raw).is_err() {
        out.push(Check::fail(
            "not-p256",
            "the certificate's key is not ECDSA P-256",
        ));
    }
    out.extend(validity(&cert, rules));
    out.push(chain(&cert, rules.issuing_ca));
    out.extend(profile(&cert));
    out
}

fn validity(cert: &X509Certificate<'_>, rules: &Rules<'_>) -> Vec<Check> {
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    let mut out = Vec::new();
    if not_before >= not_after {
        out.push(Check::fail(
            "bad-validity",
            format!(
                "the certificate's validity is empty: from {} to {}",
                format_unix(not_before),
                format_unix(not_after)
            ),
        ));
    } else if not_after - not_before > i64::from(rules.max_lifetime_days) * 86_400 {
        out.push(Check::fail(
            "lifetime-too-long",
            format!(
                "the certificate is valid for {} days; at most {} are allowed",
                (not_after - not_before) / 86_400,
                rules.max_lifetime_days
            ),
        ));
    }
    if not_before > rules.now {
        out.push(Check::fail(
            "not-yet-valid",
            format!(
                "the certificate is valid only from {}",
                format_unix(not_before)
            ),
        ));
    } else if not_after < rules.now {
        out.push(Check::fail(
            "expired",
            format!("the certificate expired on {}", format_unix(not_after)),
        ));
    } else if out.is_empty() {
        out.push(Check::ok(
            "validity",
            format!("valid until {}", format_unix(not_after)),
        ));
    }
    out
}

/// Card-signed certificates must carry a valid self-signature; CA-issued ones must
/// chain to the configured issuing CA.
fn chain(cert: &X509Certificate<'_>, issuing_ca: Option<&[u8]>) -> Check {
    match issuing_ca {
        None => {
            if cert.subject() != cert.issuer() {
                return Check::fail(
                    "unknown-issuer",
                    format!(
                        "issued by \"{}\", but no issuing CA is configured",
                        cert.issuer()
                    ),
                );
            }
            match cert.verify_signature(None) {
                Ok(()) => Check::ok(
                    "chain",
                    "card-signed certificate with a valid self-signature",
                ),
                Err(_) => Check::fail(
                    "bad-self-signature",
                    "the certificate's self-signature is invalid",
                ),
            }
        }
        Some(ca_der) => {
            let Ok((_, ca)) = x509_parser::parse_x509_certificate(ca_der) else {
                return Check::fail(
                    "bad-issuing-ca",
                    "the configured issuing CA cannot be parsed",
                );
            };
            if cert.issuer() != ca.subject() {
                return Check::fail(
                    "wrong-issuer",
                    format!(
                        "issued by \"{}\", not by the configured CA \"{}\"",
                        cert.issuer(),
                        ca.subject()
                    ),
                );
            }
            match cert.verify_signature(Some(ca.public_key())) {
                Ok(()) => Check::ok("chain", format!("issued by \"{}\"", ca.subject())),
                Err(_) => Check::fail(
                    "bad-chain",
                    "the issuing CA's signature on the certificate is invalid",
                ),
            }
        }
    }
}

/// A device's client certificate: not a CA, signs (keyUsage digitalSignature),
/// authenticates clients (EKU clientAuth), with a bounded subject and names.
fn profile(cert: &X509Certificate<'_>) -> Vec<Check> {
    let mut out = Vec::new();
    match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => out.push(Check::fail(
            "is-ca",
            "the certificate is a CA certificate (basicConstraints CA:TRUE), not a device's",
        )),
        Err(_) => out.push(Check::fail(
            "bad-extension",
            "the basicConstraints extension is malformed or repeated",
        )),
        _ => {}
    }
    match cert.key_usage() {
        Ok(Some(ku)) if ku.value.digital_signature() => {}
        Ok(_) => out.push(Check::fail(
            "key-usage",
            "the certificate does not allow digital signatures (keyUsage digitalSignature)",
        )),
        Err(_) => out.push(Check::fail(
            "bad-extension",
            "the keyUsage extension is malformed or repeated",
        )),
    }
    match cert.extended_key_usage() {
        Ok(Some(eku)) if eku.value.client_auth || eku.value.any => {}
        Ok(_) => out.push(Check::fail(
            "extended-key-usage",
            "the certificate is not for client authentication (extendedKeyUsage clientAuth)",
        )),
        Err(_) => out.push(Check::fail(
            "bad-extension",
            "the extendedKeyUsage extension is malformed or repeated",
        )),
    }
    if cert.subject().as_raw().len() > MAX_SUBJECT_BYTES {
        out.push(Check::fail(
            "subject-too-large",
            format!(
                "the subject is {} bytes; at most {MAX_SUBJECT_BYTES} are allowed",
                cert.subject().as_raw().len()
            ),
        ));
    }
    match cert.subject_alternative_name() {
        Ok(Some(san)) => {
            let names = &san.value.general_names;
            if names.len() > MAX_NAMES {
                out.push(Check::fail(
                    "too-many-names",
                    format!(
                        "the certificate carries {} alternative names; at most {MAX_NAMES} are allowed",
                        names.len()
                    ),
                ));
            } else if names.iter().any(|n| name_len(n) > MAX_NAME_BYTES) {
                out.push(Check::fail(
                    "name-too-long",
                    format!("an alternative name is longer than {MAX_NAME_BYTES} bytes"),
                ));
            }
        }
        Ok(None) => {}
        Err(_) => out.push(Check::fail(
            "bad-extension",
            "the subjectAltName extension is malformed or repeated",
        )),
    }
    if out.is_empty() {
        out.push(Check::ok(
            "profile",
            "a device client certificate (not a CA, digitalSignature, clientAuth)",
        ));
    }
    out
}

fn name_len(n: &GeneralName<'_>) -> usize {
    match n {
        GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => s.len(),
        GeneralName::IPAddress(b) => b.len(),
        GeneralName::DirectoryName(d) => d.as_raw().len(),
        _ => 0,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};

    fn rules() -> Rules<'static> {
        Rules {
            issuing_ca: None,
            now: time::OffsetDateTime::now_utc().unix_timestamp(),
            max_lifetime_days: DEFAULT_MAX_LIFETIME_DAYS,
        }
    }

    fn device(edit: impl FnOnce(&mut CertificateParams)) -> Vec<u8> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = CertificateParams::new(vec!["gw.example".into()]).unwrap();
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::minutes(5);
        p.not_after = now + time::Duration::days(3650);
        edit(&mut p);
        p.self_signed(&key).unwrap().der().to_vec()
    }

    fn failed(der: &[u8]) -> Vec<&'static str> {
        check_certificate(der, &rules())
            .into_iter()
            .filter(|c| !c.ok)
            .map(|c| c.code)
            .collect()
    }

    #[test]
    fn a_device_certificate_passes_and_each_flaw_is_named() {
        assert_eq!(failed(&device(|_| {})), Vec::<&str>::new());
        assert_eq!(
            failed(&device(
                |p| p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained)
            )),
            ["is-ca"]
        );
        assert_eq!(failed(&device(|p| p.key_usages.clear())), ["key-usage"]);
        assert_eq!(
            failed(&device(
                |p| p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth]
            )),
            ["extended-key-usage"]
        );
        let old = time::OffsetDateTime::from_unix_timestamp(946_684_800).unwrap();
        assert_eq!(
            failed(&device(|p| {
                p.not_before = old;
                p.not_after = old + time::Duration::days(30);
            })),
            ["expired"]
        );
        let soon = time::OffsetDateTime::now_utc() + time::Duration::days(10);
        assert!(failed(&device(|p| {
            p.not_before = soon;
            p.not_after = soon - time::Duration::days(5);
        }))
        .contains(&"bad-validity"));
        assert_eq!(
            failed(&device(|p| p
                .distinguished_name
                .push(rcgen::DnType::CommonName, "x".repeat(2000)))),
            ["subject-too-large"]
        );
        assert_eq!(
            failed(&device(|p| p.subject_alt_names = (0..40)
                .map(|i| rcgen::SanType::DnsName(format!("n{i}.example").try_into().unwrap()))
                .collect())),
            ["too-many-names"]
        );
        // A flipped bit in the signature: the self-signature no longer verifies.
        let mut der = device(|_| {});
        let n = der.len();
        der[n - 3] ^= 0x01;
        assert!(
            failed(&der).contains(&"bad-self-signature"),
            "{:?}",
            failed(&der)
        );
    }

    #[test]
    fn the_key_hash_is_the_same_under_a_new_certificate() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let a = CertificateParams::new(vec!["a".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let b = CertificateParams::new(vec!["b".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_ne!(a.der(), b.der());
        assert_eq!(public_key_sha256(a.der()), public_key_sha256(b.der()));
        assert!(public_key_sha256(a.der()).is_some());
    }
}
