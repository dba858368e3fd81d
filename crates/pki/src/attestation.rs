//! PIV key attestation as YubiKeys do it: the card's own attestation key (slot F9,
//! certified by the vendor) signs a certificate for a key generated on the card, never
//! for an imported one. The facts about the key ride in extensions under
//! 1.3.6.1.4.1.41482.3 (Yubico's arc):
//!
//! | OID suffix | content (the extension's OCTET STRING) |
//! |---|---|
//! | .3 | firmware version, 3 bytes (major, minor, patch) |
//! | .7 | the card's serial number, a DER INTEGER |
//! | .8 | PIN policy, touch policy: 2 bytes |
//! | .9 | form factor: 1 byte |
//!
//! [`AttestedKey::parse`] reads an attestation certificate as untrusted bytes; [`verify`]
//! checks the evidence a station sends: the attestation signed by the F9 certificate,
//! the F9 certificate issued by one of the site's attestation roots, the attested key
//! being the device certificate's key, and the serial and slot being the ones claimed.

use p256::pkcs8::DecodePublicKey;
use serde::Serialize;
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::oid::Oid;
use x509_parser::prelude::FromDer;

use cardstation_piv::attestation::{
    extension_oid, EXT_FIRMWARE, EXT_FORM_FACTOR, EXT_POLICY, EXT_SERIAL,
};
use cardstation_piv::{PinPolicy, TouchPolicy};
use cardstation_protocol::messages::KeyAttestation;

use crate::certificate::{fingerprint, format_unix};

/// Largest attestation or F9 certificate taken (a YubiKey's are about 700 bytes).
pub const MAX_ATTESTATION_BYTES: usize = 4096;

/// A card's form factor (extension .9): the low bits name the shape, 0x80 marks FIPS
/// and 0x40 CSPN editions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormFactor(pub u8);

/// In JSON as in words ("USB-C keychain, FIPS"), as the console's records give it.
impl Serialize for FormFactor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.describe())
    }
}

/// "5.7.1", as the console's records give it.
fn firmware_text<S: serde::Serializer>(
    firmware: &Option<(u8, u8, u8)>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match firmware {
        Some((a, b, c)) => s.serialize_some(&format!("{a}.{b}.{c}")),
        None => s.serialize_none(),
    }
}

impl FormFactor {
    pub fn describe(self) -> String {
        let shape = match self.0 & 0x3F {
            0x00 => "form factor unspecified".to_string(),
            0x01 => "USB-A keychain".to_string(),
            0x02 => "USB-A nano".to_string(),
            0x03 => "USB-C keychain".to_string(),
            0x04 => "USB-C nano".to_string(),
            0x05 => "USB-C and Lightning".to_string(),
            0x06 => "USB-A biometric".to_string(),
            0x07 => "USB-C biometric".to_string(),
            other => format!("form factor {other:#04x}"),
        };
        let mut out = shape;
        if self.0 & 0x80 != 0 {
            out.push_str(", FIPS");
        }
        if self.0 & 0x40 != 0 {
            out.push_str(", CSPN");
        }
        out
    }
}

/// The name a policy goes by in settings, records and output.
pub fn pin_policy_name(p: PinPolicy) -> String {
    match p {
        PinPolicy::Default => "default".into(),
        PinPolicy::Never => "never".into(),
        PinPolicy::Once => "once".into(),
        PinPolicy::Always => "always".into(),
        PinPolicy::MatchOnce => "match-once".into(),
        PinPolicy::MatchAlways => "match-always".into(),
        PinPolicy::Other(b) => format!("unknown ({b:#04x})"),
    }
}

pub fn touch_policy_name(p: TouchPolicy) -> String {
    match p {
        TouchPolicy::Default => "default".into(),
        TouchPolicy::Never => "never".into(),
        TouchPolicy::Always => "always".into(),
        TouchPolicy::Cached => "cached".into(),
        TouchPolicy::Other(b) => format!("unknown ({b:#04x})"),
    }
}

/// What an attestation certificate says about a key. Every extension is optional:
/// older firmware leaves some out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttestedKey {
    /// The slot named in the subject ("YubiKey PIV Attestation 9a"), lower-case hex.
    pub slot: Option<String>,
    pub card_serial: Option<u32>,
    #[serde(serialize_with = "firmware_text")]
    pub firmware: Option<(u8, u8, u8)>,
    pub pin_policy: Option<PinPolicy>,
    pub touch_policy: Option<TouchPolicy>,
    pub form_factor: Option<FormFactor>,
    /// SHA-256 of the attested SubjectPublicKeyInfo (as a device certificate's key is named).
    pub key_sha256: String,
    /// The attested key, when it is P-256.
    #[serde(skip)]
    pub public_key: Option<p256::PublicKey>,
}

/// Why an attestation is not accepted. Each reason is a sentence an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AttestationError(pub String, pub Unverified);

/// Whether the evidence could not be checked (its card's vendor root is not among the
/// site's: no claim either way) or was checked and found false.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unverified {
    UnknownRoot,
    False,
}

fn fail<T>(message: impl Into<String>) -> Result<T, AttestationError> {
    Err(AttestationError(message.into(), Unverified::False))
}

/// One DER certificate, whole, within the size bound.
fn parse_cert<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>, AttestationError> {
    if der.len() > MAX_ATTESTATION_BYTES {
        return fail(format!(
            "the {what} is {} bytes; at most {MAX_ATTESTATION_BYTES} are taken",
            der.len()
        ));
    }
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => fail(format!("the {what} has trailing data")),
        Err(e) => fail(format!("the {what} cannot be parsed: {e}")),
    }
}

impl AttestedKey {
    /// Reads an attestation certificate (DER). Checks form only, not who signed it.
    pub fn parse(der: &[u8]) -> Result<Self, AttestationError> {
        let cert = parse_cert(der, "attestation certificate")?;
        Self::from_cert(&cert)
    }

    fn from_cert(cert: &X509Certificate<'_>) -> Result<Self, AttestationError> {
        let mut out = AttestedKey {
            slot: subject_slot(cert),
            card_serial: None,
            firmware: None,
            pin_policy: None,
            touch_policy: None,
            form_factor: None,
            key_sha256: fingerprint(cert.public_key().raw),
            public_key: p256::PublicKey::from_public_key_der(cert.public_key().raw).ok(),
        };
        let oid = |n| Oid::from(&extension_oid(n)).ok();
        let (firmware, serial, policy, form) = (
            oid(EXT_FIRMWARE),
            oid(EXT_SERIAL),
            oid(EXT_POLICY),
            oid(EXT_FORM_FACTOR),
        );
        for ext in cert.extensions() {
            let value = ext.value;
            let is = |o: &Option<Oid<'_>>| o.as_ref() == Some(&ext.oid);
            if is(&firmware) {
                match value {
                    [a, b, c] => out.firmware = Some((*a, *b, *c)),
                    _ => return fail("the attestation's firmware version is not 3 bytes"),
                }
            } else if is(&serial) {
                out.card_serial = Some(match der_u32(value) {
                    Some(serial) => serial,
                    None => {
                        return fail(
                            "the attestation's card serial is not a DER INTEGER of 32 bits",
                        )
                    }
                });
            } else if is(&policy) {
                match value {
                    [pin, touch] => {
                        out.pin_policy = Some(PinPolicy::from(*pin));
                        out.touch_policy = Some(TouchPolicy::from(*touch));
                    }
                    _ => return fail("the attestation's PIN and touch policy is not 2 bytes"),
                }
            } else if is(&form) {
                match value {
                    [f] => out.form_factor = Some(FormFactor(*f)),
                    _ => return fail("the attestation's form factor is not 1 byte"),
                }
            }
        }
        Ok(out)
    }

    /// The facts in the words the console records them, once verified under `root`
    /// at `verified_at`.
    pub fn summary(&self, root: &str, verified_at: i64) -> KeyAttestation {
        KeyAttestation {
            card_serial: self.card_serial,
            firmware: self.firmware.map(|(a, b, c)| format!("{a}.{b}.{c}")),
            pin_policy: self.pin_policy.map(pin_policy_name),
            touch_policy: self.touch_policy.map(touch_policy_name),
            form_factor: self.form_factor.map(|f| f.describe()),
            root: root.to_string(),
            verified_at,
        }
    }

    /// One line for an operator: "card serial 5437251, firmware 6.6.6, PIN policy once,
    /// touch policy never", the same phrase the console's record reads with.
    pub fn describe(&self) -> String {
        self.summary("", 0).describe()
    }
}

/// A DER INTEGER (tag 02) holding a non-negative value of at most 32 bits.
fn der_u32(value: &[u8]) -> Option<u32> {
    let (rest, int) = x509_parser::der_parser::der::parse_der_integer(value).ok()?;
    if !rest.is_empty() {
        return None;
    }
    int.as_u32().ok()
}

/// The slot a YubiKey names at the end of the subject CN ("YubiKey PIV Attestation 9a").
fn subject_slot(cert: &X509Certificate<'_>) -> Option<String> {
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    let last = cn.rsplit(' ').next()?.to_ascii_lowercase();
    (last.len() == 2 && u8::from_str_radix(&last, 16).is_ok()).then_some(last)
}

/// What a station sends: the attestation certificate and the card's F9 certificate (DER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub attestation: Vec<u8>,
    pub intermediate: Vec<u8>,
}

/// What the evidence must match: the device certificate's key and the claimed card.
pub struct Expected<'a> {
    /// The device certificate (DER) or request whose key must be the attested one:
    /// its SubjectPublicKeyInfo SHA-256.
    pub key_sha256: &'a str,
    pub card_serial: Option<u32>,
    pub slot: Option<&'a str>,
    pub now: i64,
}

/// An attestation that passed [`verify`]: the facts, and the root it chains to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedAttestation {
    pub key: AttestedKey,
    /// The subject of the attestation root the F9 certificate chains to.
    pub root: String,
    /// SHA-256 of the F9 certificate: which card's attestation key signed.
    pub intermediate_sha256: String,
}

/// Checks `evidence` against the site's attestation `roots` (DER certificates; each
/// is a trust anchor) and what it must match. Nothing in the evidence is trusted before
/// its signature is: the F9 certificate must be signed by a root, the attestation by
/// the F9 certificate's key.
pub fn verify(
    evidence: &Evidence,
    roots: &[Vec<u8>],
    expected: &Expected<'_>,
) -> Result<VerifiedAttestation, AttestationError> {
    let attestation = parse_cert(&evidence.attestation, "attestation certificate")?;
    let intermediate = parse_cert(&evidence.intermediate, "F9 attestation certificate")?;
    let root = issuing_root(&intermediate, roots)?;
    within_validity(
        &intermediate,
        "the card's F9 attestation certificate",
        expected.now,
    )?;
    if attestation.issuer() != intermediate.subject() {
        return fail(format!(
            "the attestation is issued by \"{}\", not by the card's F9 attestation certificate \"{}\"",
            printable(&attestation.issuer().to_string()),
            printable(&intermediate.subject().to_string())
        ));
    }
    if attestation
        .verify_signature(Some(intermediate.public_key()))
        .is_err()
    {
        return fail(
            "the attestation was not signed by the card's F9 attestation key (it comes from another card, or was forged)",
        );
    }
    within_validity(&attestation, "the attestation certificate", expected.now)?;
    let key = AttestedKey::from_cert(&attestation)?;
    if key.key_sha256 != expected.key_sha256 {
        return fail("the attestation is for another key than the certificate's");
    }
    if let (Some(claimed), Some(attested)) = (expected.card_serial, key.card_serial) {
        if claimed != attested {
            return fail(format!(
                "the key was attested by card serial {attested}, but the upload names card serial {claimed}"
            ));
        }
    }
    if let (Some(claimed), Some(attested)) = (expected.slot, key.slot.as_deref()) {
        if !claimed.eq_ignore_ascii_case(attested) {
            return fail(format!(
                "the key was attested in slot {attested}, but the upload names slot {claimed}"
            ));
        }
    }
    Ok(VerifiedAttestation {
        key,
        root,
        intermediate_sha256: fingerprint(&evidence.intermediate),
    })
}

/// The root among `roots` that issued and signed `cert`, by subject.
fn issuing_root(cert: &X509Certificate<'_>, roots: &[Vec<u8>]) -> Result<String, AttestationError> {
    let unknown = |message: String| Err(AttestationError(message, Unverified::UnknownRoot));
    if roots.is_empty() {
        return unknown(
            "this site trusts no attestation root: add the vendor's PIV attestation root certificates to the console's attestation roots directory".into(),
        );
    }
    let mut named = false;
    for der in roots {
        let Ok((_, root)) = X509Certificate::from_der(der) else {
            continue;
        };
        if root.subject() != cert.issuer() {
            continue;
        }
        named = true;
        if cert.verify_signature(Some(root.public_key())).is_ok() {
            return Ok(root.subject().to_string());
        }
    }
    let issuer = printable(&cert.issuer().to_string());
    if named {
        fail(format!(
            "the F9 attestation certificate names \"{issuer}\" as issuer, but that root's key did not sign it (forged)"
        ))
    } else {
        unknown(format!(
            "the F9 attestation certificate is issued by \"{issuer}\", which is not among this site's attestation roots"
        ))
    }
}

fn within_validity(
    cert: &X509Certificate<'_>,
    what: &str,
    now: i64,
) -> Result<(), AttestationError> {
    let (from, to) = (
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
    );
    if now < from {
        return fail(format!("{what} is valid only from {}", format_unix(from)));
    }
    if now > to {
        return fail(format!("{what} expired on {}", format_unix(to)));
    }
    Ok(())
}

/// Names from the evidence go into messages: control characters out, length bounded.
fn printable(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(120)
        .collect();
    if text.chars().count() > 120 {
        format!("{clean}…")
    } else {
        clean
    }
}

#[cfg(test)]
mod tests;
