//! The site's issuing CA: certificates for card keys, made from a PKCS#10 request the
//! card signed, under a profile the console's settings define. Everything in the
//! request is checked against the profile; the certificate is built from the profile
//! (lifetime, usages) and the holder label, never copied from what the request asks.
//!
//! Files (`cardstation-console ca init`): DATA/device-ca.pem (it travels to gateways in
//! the trust bundle) and DATA/device-ca.key (0600; `issuing_ca_key` may name another
//! path), or, with `[issuing_ca_token]`, the key stays on a PKCS#11 token.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PublicKeyData,
};
use serde::Deserialize;

use cardstation_protocol::messages::{check_label, IssuanceProfile};

use crate::ca_token::{TokenKey, TokenSettings};
use crate::setup::{self, SetupError};

/// Where the CA key signs: a key file, or a PKCS#11 token.
#[derive(Debug)]
pub enum CaKey {
    File(Box<KeyPair>),
    Token(TokenKey),
}

impl CaKey {
    fn public_key(&self) -> Option<p256::PublicKey> {
        match self {
            CaKey::File(k) => p256::PublicKey::from_sec1_bytes(k.public_key_raw()).ok(),
            CaKey::Token(t) => t.public_key(),
        }
    }
}

impl PublicKeyData for CaKey {
    fn der_bytes(&self) -> &[u8] {
        match self {
            CaKey::File(k) => k.der_bytes(),
            CaKey::Token(t) => t.der_bytes(),
        }
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            CaKey::File(k) => k.algorithm(),
            CaKey::Token(t) => t.algorithm(),
        }
    }
}

impl rcgen::SigningKey for CaKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        match self {
            CaKey::File(k) => k.sign(msg),
            CaKey::Token(t) => t.sign(msg),
        }
    }
}

/// The CA key as the settings name it: the token if `[issuing_ca_token]` is set,
/// else the key file.
pub fn ca_key(key_file: &Path, token: Option<&TokenSettings>) -> Result<CaKey, SetupError> {
    match token {
        Some(t) => TokenKey::open(t)
            .map(CaKey::Token)
            .map_err(|e| SetupError::Certificates(format!("[issuing_ca_token]: {e}"))),
        None => {
            let pem = std::fs::read_to_string(key_file).map_err(|source| SetupError::Io {
                path: key_file.to_path_buf(),
                source,
            })?;
            KeyPair::from_pem(&pem)
                .map(|k| CaKey::File(Box::new(k)))
                .map_err(|e| SetupError::Certificates(format!("{}: {e}", key_file.display())))
        }
    }
}

pub const DEVICE_CA_CERT: &str = "device-ca.pem";
pub const DEVICE_CA_KEY: &str = "device-ca.key";

/// A profile as console.toml writes it: `[profiles.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSettings {
    /// How long certificates under it are valid.
    pub days: u32,
    /// The profile a request that names none is issued under.
    #[serde(default)]
    pub default: bool,
    /// The certificate's organisation (O), if any.
    #[serde(default)]
    pub organization: Option<String>,
}

/// The profile used when the settings define none.
/// An issued certificate begins this long before it is signed, so a gateway whose clock
/// is a little slow accepts it at once.
pub const BACKDATE_SECS: i64 = 300;
pub const DEFAULT_PROFILE: &str = "device";
pub const DEFAULT_PROFILE_DAYS: u32 = 365;

/// The profiles of a site, checked: names, one default, lifetimes within `max_days`.
#[derive(Debug, Clone)]
pub struct Profiles {
    by_name: BTreeMap<String, ProfileSettings>,
    default: String,
}

impl Profiles {
    pub fn from_settings(
        configured: &BTreeMap<String, ProfileSettings>,
        max_days: u32,
    ) -> Result<Profiles, String> {
        if configured.is_empty() {
            let mut by_name = BTreeMap::new();
            by_name.insert(
                DEFAULT_PROFILE.to_string(),
                ProfileSettings {
                    days: DEFAULT_PROFILE_DAYS.min(max_days),
                    default: true,
                    organization: None,
                },
            );
            return Ok(Profiles {
                by_name,
                default: DEFAULT_PROFILE.into(),
            });
        }
        for (name, p) in configured {
            if name.is_empty()
                || name.len() > 32
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(format!(
                    "profile name {name:?}: use 1 to 32 of a-z, 0-9 and -"
                ));
            }
            if p.days == 0 || p.days > max_days {
                return Err(format!(
                    "profiles.{name}.days must be between 1 and {max_days} (max_certificate_days)"
                ));
            }
            if let Some(o) = &p.organization {
                if o.is_empty() || o.chars().count() > 64 || o.chars().any(char::is_control) {
                    return Err(format!(
                        "profiles.{name}.organization: 1 to 64 characters without control characters"
                    ));
                }
            }
        }
        let defaults: Vec<&String> = configured
            .iter()
            .filter(|(_, p)| p.default)
            .map(|(n, _)| n)
            .collect();
        let default = match (defaults.as_slice(), configured.len()) {
            ([one], _) => (*one).clone(),
            ([], 1) => configured.keys().next().cloned().unwrap_or_default(),
            ([], _) => return Err("several profiles and none is `default = true`: mark one".into()),
            _ => return Err("more than one profile is `default = true`: keep one".into()),
        };
        Ok(Profiles {
            by_name: configured.clone(),
            default,
        })
    }

    /// The profile `name` (the default one for `None`).
    pub fn get(&self, name: Option<&str>) -> Option<(&str, &ProfileSettings)> {
        let name = name.unwrap_or(&self.default);
        self.by_name
            .get_key_value(name)
            .map(|(n, p)| (n.as_str(), p))
    }

    pub fn describe(&self) -> Vec<IssuanceProfile> {
        self.by_name
            .iter()
            .map(|(name, p)| IssuanceProfile {
                name: name.clone(),
                days: p.days,
                default: *name == self.default,
            })
            .collect()
    }
}

/// Why a request is not issued: an error code and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

/// A certificate the CA signed, and the holder it names (its CN).
#[derive(Debug)]
pub struct Issued {
    pub der: Vec<u8>,
    pub holder: String,
}

/// The issuing CA with its key, ready to sign.
pub struct DeviceCa {
    issuer: Issuer<'static, CaKey>,
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    /// The CA's own end: no certificate under it may outlive it.
    not_after: i64,
}

impl std::fmt::Debug for DeviceCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCa")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl DeviceCa {
    /// The CA certificate `cert` with its key (see [`ca_key`]).
    pub fn load(cert: &Path, key: CaKey) -> Result<DeviceCa, SetupError> {
        let cert_pem = std::fs::read_to_string(cert).map_err(|source| SetupError::Io {
            path: cert.to_path_buf(),
            source,
        })?;
        let bad = |what: &Path, e: &dyn std::fmt::Display| {
            SetupError::Certificates(format!("{}: {e}", what.display()))
        };
        let cert_der = cardstation_pki::certificate::from_pem_or_der(cert_pem.as_bytes())
            .map_err(|e| bad(cert, &e))?;
        let info = cardstation_pki::certificate::CertificateInfo::parse(&cert_der)
            .map_err(|e| bad(cert, &e))?;
        // The key must be the certificate's: else every certificate would fail to chain.
        let key_public = key.public_key();
        if key_public.is_none() || info.public_key != key_public {
            return Err(bad(
                cert,
                &"the CA key (issuing_ca_key, or the token's) is not this CA's key",
            ));
        }
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| bad(cert, &e))?;
        Ok(DeviceCa {
            issuer,
            cert_pem,
            cert_der,
            not_after: info.not_after,
        })
    }

    /// Sign a certificate for the key in `request` (PKCS#10, DER) under `profile`, for
    /// the holder `label`, valid from `now`.
    pub fn issue(
        &self,
        request: &[u8],
        profile: &ProfileSettings,
        label: Option<&str>,
        now: i64,
        not_before_floor: i64,
    ) -> Result<Issued, Refusal> {
        let csr = CertificateSigningRequestParams::from_der(&request.to_vec().into()).map_err(
            |e| match e {
                rcgen::Error::InvalidCertificationRequestSignature => refuse(
                    "bad-request-signature",
                    "the request's signature does not verify with the key it carries: it was not signed by that key (no proof the card holds it)",
                ),
                rcgen::Error::UnsupportedExtension => refuse(
                    "extension-not-allowed",
                    "the request asks for an extension this console does not issue; request none (the profile sets the usages)",
                ),
                other => refuse("malformed-request", format!("not a PKCS#10 certificate request: {other}")),
            },
        )?;
        if csr.public_key.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256
            || p256::PublicKey::from_sec1_bytes(csr.public_key.der_bytes()).is_err()
        {
            return Err(refuse(
                "not-p256",
                "the request's key is not an ECDSA P-256 key",
            ));
        }
        let requested = &csr.params;
        if !requested.subject_alt_names.is_empty() {
            return Err(refuse(
                "extension-not-allowed",
                "the request asks for subject alternative names; the profile issues none",
            ));
        }
        if !matches!(requested.is_ca, IsCa::NoCa | IsCa::ExplicitNoCa) {
            return Err(refuse(
                "extension-not-allowed",
                "the request asks to be a CA; card certificates never are",
            ));
        }
        if requested
            .key_usages
            .iter()
            .any(|u| *u != KeyUsagePurpose::DigitalSignature)
        {
            return Err(refuse(
                "extension-not-allowed",
                "the request asks for key usages beyond digitalSignature",
            ));
        }
        if requested
            .extended_key_usages
            .iter()
            .any(|u| *u != ExtendedKeyUsagePurpose::ClientAuth)
        {
            return Err(refuse(
                "extension-not-allowed",
                "the request asks for extended key usages beyond clientAuth",
            ));
        }
        let cn = subject_cn(&requested.distinguished_name, label)?;

        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn.as_str());
        if let Some(o) = &profile.organization {
            dn.push(DnType::OrganizationName, o.as_str());
        }
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(cardstation_pki::certificate::random_serial());
        // Never before the attested-since mark while the CA vouches for attestation: a
        // certificate signed in the mark's own second still begins at or after it.
        let start = (now - BACKDATE_SECS).max(not_before_floor);
        let end = (now + i64::from(profile.days) * 86_400).min(self.not_after);
        if end <= now {
            return Err(refuse(
                "ca-expired",
                "the issuing CA has expired: renew it (`cardstation-console ca init --renew`) before issuing",
            ));
        }
        params.not_before = unix(start)?;
        params.not_after = unix(end)?;
        let cert = params
            .signed_by(&csr.public_key, &self.issuer)
            .map_err(|e| refuse("cannot-issue", format!("signing failed: {e}")))?;
        Ok(Issued {
            der: cert.der().to_vec(),
            holder: cn,
        })
    }
}

fn unix(t: i64) -> Result<time::OffsetDateTime, Refusal> {
    time::OffsetDateTime::from_unix_timestamp(t)
        .map_err(|e| refuse("cannot-issue", format!("time {t}: {e}")))
}

/// The certificate's CN: the holder label; a request may name the same CN or none,
/// and nothing else in its subject.
fn subject_cn(requested: &DistinguishedName, label: Option<&str>) -> Result<String, Refusal> {
    let mut cn = None;
    for (kind, value) in requested.iter() {
        let text = match (kind, value) {
            (DnType::CommonName, DnValue::Utf8String(s)) => s.clone(),
            (DnType::CommonName, DnValue::PrintableString(p)) => p.as_str().to_string(),
            _ => {
                return Err(refuse(
                    "subject-not-allowed",
                    "the request's subject may hold one CN (the holder label) and nothing else",
                ))
            }
        };
        if cn.replace(text).is_some() {
            return Err(refuse(
                "subject-not-allowed",
                "the request's subject holds more than one CN",
            ));
        }
    }
    let label = check_label(label.unwrap_or_default()).map_err(|m| refuse("bad-label", m))?;
    let chosen = match (label, cn) {
        (Some(l), Some(c)) if l != c => {
            return Err(refuse(
                "subject-not-allowed",
                format!("the request's CN {c:?} is not the holder label {l:?}"),
            ))
        }
        (Some(l), _) => l,
        (None, Some(c)) => check_label(&c)
            .map_err(|m| refuse("subject-not-allowed", format!("the request's CN: {m}")))?
            .ok_or_else(|| refuse("subject-not-allowed", "the request's CN is empty"))?,
        (None, None) => {
            return Err(refuse(
                "label-required",
                "a CA-issued certificate names its holder: give the card a label",
            ))
        }
    };
    Ok(chosen)
}

/// `cardstation-console ca init`: a new issuing CA in `data` (refused over an existing
/// one). Returns the certificate's path.
/// With `token`, the CA key is the token's (made there beforehand, e.g. with
/// pkcs11-tool) and no key file is written.
pub fn init(
    data: &Path,
    name: &str,
    days: u32,
    token: Option<&TokenSettings>,
) -> Result<PathBuf, SetupError> {
    let cert_path = data.join(DEVICE_CA_CERT);
    let key_path = data.join(DEVICE_CA_KEY);
    if cert_path.exists() || key_path.exists() {
        return Err(SetupError::Certificates(format!(
            "{} already holds an issuing CA: every card issued under it would stop chaining if it were replaced",
            data.display()
        )));
    }
    let cert_err = |e: rcgen::Error| SetupError::Certificates(e.to_string());
    let key = match token {
        Some(_) => ca_key(&key_path, token)?,
        None => CaKey::File(Box::new(
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(cert_err)?,
        )),
    };
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(i64::from(days));
    let cert = params.self_signed(&key).map_err(cert_err)?;
    setup::create_private_dir(data)?;
    if let CaKey::File(k) = &key {
        setup::write(&key_path, k.serialize_pem().as_bytes(), true)?;
    }
    setup::write(&cert_path, cert.pem().as_bytes(), false)?;
    Ok(cert_path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn profile(days: u32, default: bool) -> ProfileSettings {
        ProfileSettings {
            days,
            default,
            organization: None,
        }
    }

    #[test]
    fn profiles_name_one_default_and_stay_within_the_longest_lifetime() {
        let none = Profiles::from_settings(&BTreeMap::new(), 36_525).unwrap();
        assert_eq!(none.get(None).unwrap().0, DEFAULT_PROFILE);
        assert_eq!(none.get(None).unwrap().1.days, DEFAULT_PROFILE_DAYS);

        let mut two = BTreeMap::new();
        two.insert("device".to_string(), profile(90, false));
        two.insert("operator".to_string(), profile(30, false));
        let err = Profiles::from_settings(&two, 36_525).unwrap_err();
        assert!(err.contains("none is `default = true`"), "{err}");
        two.insert("operator".to_string(), profile(30, true));
        let p = Profiles::from_settings(&two, 36_525).unwrap();
        assert_eq!(p.get(None).unwrap().0, "operator");
        assert_eq!(p.get(Some("device")).unwrap().1.days, 90);
        assert!(p.get(Some("root")).is_none());
        two.insert("device".to_string(), profile(90, true));
        assert!(Profiles::from_settings(&two, 36_525).is_err());

        let mut long = BTreeMap::new();
        long.insert("device".to_string(), profile(400, true));
        let err = Profiles::from_settings(&long, 365).unwrap_err();
        assert!(err.contains("between 1 and 365"), "{err}");
        let mut bad = BTreeMap::new();
        bad.insert("Dev ice".to_string(), profile(30, true));
        assert!(Profiles::from_settings(&bad, 365).is_err());
    }

    #[test]
    fn a_certificate_never_outlives_its_ca_and_the_ca_refuses_what_the_profile_does_not_give() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), "Test CA", 10, None).unwrap();
        let ca = DeviceCa::load(
            &dir.path().join(DEVICE_CA_CERT),
            ca_key(&dir.path().join(DEVICE_CA_KEY), None).unwrap(),
        )
        .unwrap();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        let request = params.serialize_request(&key).unwrap().der().to_vec();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let issued = ca
            .issue(&request, &profile(365, true), Some("gw-1"), now, 0)
            .unwrap();
        assert_eq!(issued.holder, "gw-1");
        let info = cardstation_pki::certificate::CertificateInfo::parse(&issued.der).unwrap();
        assert!(info.not_after <= ca.not_after, "outlives its CA");
        assert_eq!(info.subject, "CN=gw-1");
        // A CA past its end issues nothing.
        let later = ca.not_after + 1;
        assert_eq!(
            ca.issue(&request, &profile(365, true), Some("gw-1"), later, 0)
                .unwrap_err()
                .code,
            "ca-expired"
        );
        // Another key than the CA's own is refused when loading.
        let other = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        std::fs::write(dir.path().join("other.key"), other.serialize_pem()).unwrap();
        assert!(DeviceCa::load(
            &dir.path().join(DEVICE_CA_CERT),
            ca_key(&dir.path().join("other.key"), None).unwrap()
        )
        .is_err());
    }
}
