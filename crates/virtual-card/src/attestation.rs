//! PIV attestation the way a YubiKey does it, which piv-authenticator does not: every
//! card has its own attestation key and certificate (slot F9, GET DATA 5FFF01), issued by
//! an attestation root, and INS F9 returns a certificate for the key in a slot, signed by
//! the F9 key, but only for a key this card generated (never an imported one).
//!
//! The attestation certificate carries Yubico's extensions (1.3.6.1.4.1.41482.3): firmware
//! .3 (3 bytes), serial .7 (DER INTEGER), PIN and touch policy .8 (2 bytes), form factor
//! .9 (1 byte). The policies are the ones this card enforces per slot (FIELD-NOTES.md):
//! 9A, 9D and the retired slots once per session, 9C always, 9E never; no touch.
//!
//! The runner learns where a slot's key came from by watching the commands that put keys
//! there: GENERATE ASYMMETRIC KEY PAIR (47) records the public key it answered; IMPORT
//! (FE, the YubiKey extension) and RESET (FB) forget it. A key the runner did not see
//! generated is not attested.
//!
//! The attestation root of virtual cards is a fixed, published test key ([`TestRoot`]):
//! `cardstation virtual-card attestation-root` prints its certificate. It proves nothing
//! outside tests and demos, and must never be among a production site's roots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cardstation_card::tlv;
use cardstation_piv::attestation::{
    extension_oid, EXT_FIRMWARE, EXT_FORM_FACTOR, EXT_POLICY, EXT_SERIAL,
};
use cardstation_piv::session::ATTESTATION_CERTIFICATE;
use iso7816::command::CommandView;
use iso7816::Status;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey as EcdsaKey};
use rand::rngs::OsRng;
use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, Issuer,
    KeyUsagePurpose, PublicKeyData, SerialNumber, SignatureAlgorithm, PKCS_ECDSA_P256_SHA256,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// What the firmware reports (piv-authenticator answers GET VERSION 6.6.6 and GET SERIAL
/// 0052F743): the attestation says the same.
pub const FIRMWARE: (u8, u8, u8) = (6, 6, 6);
pub const SERIAL: u32 = 0x0052_F743;
/// Form factor 0: unspecified (no USB shape).
const FORM_FACTOR: u8 = 0x00;
/// Touch policy 1: never (a virtual card has nothing to touch).
const TOUCH_NEVER: u8 = 0x01;

const INS_ATTEST: u8 = 0xF9;
const INS_GET_DATA: u8 = 0xCB;
const INS_GENERATE: u8 = 0x47;
const INS_IMPORT: u8 = 0xFE;
const INS_RESET: u8 = 0xFB;
const INS_GET_METADATA: u8 = 0xF7;
const ATTESTATION_KEY_REFERENCE: u8 = 0xF9;
/// Where a Directory card keeps its attestation key, certificate and slot origins.
pub const STATE_FILE: &str = "attestation.json";

const TEST_ROOT_SEED: &[u8] = b"Cardstation virtual PIV card attestation root, test only, v1";
const TEST_ROOT_NAME: &str = "Cardstation Virtual Card Attestation Root (TEST ONLY)";
const F9_NAME: &str = "Cardstation Virtual PIV Attestation";

/// Errors making attestation keys and certificates.
#[derive(Debug, thiserror::Error)]
pub enum AttestationError {
    #[error("building an attestation certificate failed: {0}")]
    Build(String),
    #[error("virtual card attestation state {path}: {message}")]
    State { path: PathBuf, message: String },
}

fn build_err(e: impl std::fmt::Display) -> AttestationError {
    AttestationError::Build(e.to_string())
}

/// A P-256 key that signs certificates through rcgen (RFC 6979: the same input gives the
/// same signature, so the test root's certificate is the same bytes everywhere).
#[derive(Clone)]
struct P256Signer {
    key: EcdsaKey,
    point: Vec<u8>,
}

impl P256Signer {
    fn new(key: EcdsaKey) -> Self {
        let point = key
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        P256Signer { key, point }
    }

    fn random() -> Self {
        Self::new(EcdsaKey::random(&mut OsRng))
    }
}

impl PublicKeyData for P256Signer {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for P256Signer {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let signature: Signature = self.key.sign(msg);
        Ok(signature.to_der().as_bytes().to_vec())
    }
}

/// A public key in a slot, as the card saw it generated (uncompressed SEC1 point).
struct SlotKey<'a>(&'a [u8]);

impl PublicKeyData for SlotKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn random_serial() -> SerialNumber {
    let mut serial = [0u8; 16];
    OsRng.fill_bytes(&mut serial);
    serial[0] = (serial[0] & 0x7F) | 0x01;
    SerialNumber::from_slice(&serial)
}

fn date(year: i32) -> OffsetDateTime {
    // January 1st of `year`, midnight UTC; the years used here are all representable.
    time::Date::from_calendar_date(year, time::Month::January, 1)
        .map(|d| d.midnight().assume_utc())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// An attestation root: the authority that certifies cards' F9 keys. Virtual cards use
/// [`TestRoot::fixed`]; tests make others with [`TestRoot::generate`] (an attacker's).
#[derive(Clone)]
pub struct TestRoot {
    signer: P256Signer,
    params: CertificateParams,
    certificate: Vec<u8>,
}

impl TestRoot {
    /// The published test root of every virtual card: a key derived from a fixed string
    /// and a certificate that is the same bytes on every machine.
    pub fn fixed() -> Result<Self, AttestationError> {
        let seed: [u8; 32] = Sha256::digest(TEST_ROOT_SEED).into();
        let key = EcdsaKey::from_bytes(&seed.into()).map_err(build_err)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(TEST_ROOT_NAME);
        params.serial_number = Some(SerialNumber::from_slice(&[0x01]));
        params.not_before = date(2026);
        params.not_after = date(2100);
        Self::with(P256Signer::new(key), params)
    }

    /// A fresh root named `common_name` with a random key.
    pub fn generate(common_name: &str) -> Result<Self, AttestationError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name);
        params.serial_number = Some(random_serial());
        params.not_before = date(2026);
        params.not_after = date(2100);
        Self::with(P256Signer::random(), params)
    }

    fn with(signer: P256Signer, mut params: CertificateParams) -> Result<Self, AttestationError> {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let certificate = params
            .self_signed(&signer)
            .map_err(build_err)?
            .der()
            .to_vec();
        Ok(TestRoot {
            signer,
            params,
            certificate,
        })
    }

    /// The root certificate (DER).
    pub fn certificate(&self) -> &[u8] {
        &self.certificate
    }

    /// The root certificate, PEM.
    pub fn certificate_pem(&self) -> String {
        pem_certificate(&self.certificate)
    }

    /// A new card's attestation key, certified by this root.
    pub fn new_card_key(
        &self,
        now: OffsetDateTime,
    ) -> Result<CardAttestationKey, AttestationError> {
        let signer = P256Signer::random();
        let mut params = CertificateParams::default();
        params.distinguished_name = name(F9_NAME);
        params.serial_number = Some(random_serial());
        params.not_before = now - time::Duration::days(1);
        params.not_after = date(2100);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let issuer = Issuer::from_params(&self.params, &self.signer);
        let certificate = params
            .signed_by(&signer, &issuer)
            .map_err(build_err)?
            .der()
            .to_vec();
        Ok(CardAttestationKey {
            signer,
            certificate,
            validity: (params.not_before, params.not_after),
        })
    }
}

pub(crate) fn pem_certificate(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}

/// What an attestation says about a key besides the key itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttestedFacts {
    pub serial: u32,
    pub firmware: (u8, u8, u8),
    pub pin_policy: u8,
    pub touch_policy: u8,
    pub form_factor: u8,
}

/// A card's attestation key (slot F9) and its certificate.
#[derive(Clone)]
pub struct CardAttestationKey {
    signer: P256Signer,
    certificate: Vec<u8>,
    /// The F9 certificate's validity, which its attestations copy (as a YubiKey's do).
    validity: (OffsetDateTime, OffsetDateTime),
}

impl CardAttestationKey {
    /// The F9 certificate (DER).
    pub fn certificate(&self) -> &[u8] {
        &self.certificate
    }

    /// The attestation certificate for the P-256 key `point` (uncompressed SEC1) in
    /// `slot`, signed by this card's attestation key, valid as long as the F9 certificate.
    pub fn attest(
        &self,
        slot: u8,
        point: &[u8],
        facts: &AttestedFacts,
    ) -> Result<Vec<u8>, AttestationError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&format!("YubiKey PIV Attestation {slot:02x}"));
        params.serial_number = Some(random_serial());
        (params.not_before, params.not_after) = self.validity;
        let oid = extension_oid;
        let (a, b, c) = facts.firmware;
        params.custom_extensions = vec![
            CustomExtension::from_oid_content(&oid(EXT_FIRMWARE), vec![a, b, c]),
            CustomExtension::from_oid_content(&oid(EXT_SERIAL), der_integer(facts.serial)),
            CustomExtension::from_oid_content(
                &oid(EXT_POLICY),
                vec![facts.pin_policy, facts.touch_policy],
            ),
            CustomExtension::from_oid_content(&oid(EXT_FORM_FACTOR), vec![facts.form_factor]),
        ];
        let issuer = Issuer::from_ca_cert_der(&self.certificate.clone().into(), &self.signer)
            .map_err(build_err)?;
        Ok(params
            .signed_by(&SlotKey(point), &issuer)
            .map_err(build_err)?
            .der()
            .to_vec())
    }
}

/// A DER INTEGER for a non-negative 32-bit value (minimal, with a leading zero when the
/// top bit is set).
fn der_integer(value: u32) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(3);
    let mut content = bytes[first..].to_vec();
    if content[0] & 0x80 != 0 {
        content.insert(0, 0);
    }
    let mut out = vec![0x02, content.len() as u8];
    out.extend(content);
    out
}

/// The PIN policy this card enforces for a key slot (GET METADATA's encoding):
/// 1 never, 2 once, 3 always.
fn pin_policy(slot: u8) -> u8 {
    match slot {
        0x9C => 3,
        0x9E => 1,
        _ => 2,
    }
}

/// Where a slot's key came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "origin", rename_all = "kebab-case")]
enum Origin {
    /// Generated on this card: its public point, as GENERATE answered.
    Generated {
        #[serde(with = "hex_bytes")]
        point: Vec<u8>,
    },
    /// Put there from outside (IMPORT), or generated with an algorithm not attested.
    NotAttestable,
}

/// What a card remembers for attestation; kept in [`STATE_FILE`] for Directory cards.
#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(with = "hex_bytes")]
    f9_key: Vec<u8>,
    #[serde(with = "hex_bytes")]
    f9_certificate: Vec<u8>,
    /// The F9 certificate's validity, Unix seconds.
    f9_not_before: i64,
    f9_not_after: i64,
    /// Slot (hex) → origin.
    slots: BTreeMap<String, Origin>,
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

/// The attestation layer of one card: its F9 key and what it knows of each slot.
pub(crate) struct Attestor {
    key: CardAttestationKey,
    slots: BTreeMap<u8, Origin>,
    /// `None` for a Memory card.
    file: Option<PathBuf>,
}

impl Attestor {
    /// The card's attestation state: loaded from `dir` when it has one, else a new F9 key
    /// certified by the test root (and saved to `dir`).
    pub(crate) fn open(dir: Option<&Path>) -> Result<Self, AttestationError> {
        let file = dir.map(|d| d.join(STATE_FILE));
        if let Some(path) = &file {
            match std::fs::read(path) {
                Ok(bytes) => return Self::load(path, &bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(AttestationError::State {
                        path: path.clone(),
                        message: e.to_string(),
                    })
                }
            }
        }
        let key = TestRoot::fixed()?.new_card_key(OffsetDateTime::now_utc())?;
        let attestor = Attestor {
            key,
            slots: BTreeMap::new(),
            file,
        };
        attestor.save()?;
        Ok(attestor)
    }

    fn load(path: &Path, bytes: &[u8]) -> Result<Self, AttestationError> {
        let bad = |message: String| AttestationError::State {
            path: path.to_path_buf(),
            message,
        };
        let stored: Stored = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let key = EcdsaKey::from_slice(&stored.f9_key)
            .map_err(|_| bad("the F9 key is not a P-256 private key".into()))?;
        let mut slots = BTreeMap::new();
        for (slot, origin) in stored.slots {
            let slot = u8::from_str_radix(&slot, 16).map_err(|_| bad(format!("slot {slot:?}")))?;
            slots.insert(slot, origin);
        }
        let time = |t: i64| {
            OffsetDateTime::from_unix_timestamp(t).map_err(|e| bad(format!("F9 validity: {e}")))
        };
        Ok(Attestor {
            key: CardAttestationKey {
                signer: P256Signer::new(key),
                certificate: stored.f9_certificate,
                validity: (time(stored.f9_not_before)?, time(stored.f9_not_after)?),
            },
            slots,
            file: Some(path.to_path_buf()),
        })
    }

    fn save(&self) -> Result<(), AttestationError> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let bad = |message: String| AttestationError::State {
            path: path.clone(),
            message,
        };
        let stored = Stored {
            f9_key: self.key.signer.key.to_bytes().to_vec(),
            f9_certificate: self.key.certificate.clone(),
            f9_not_before: self.key.validity.0.unix_timestamp(),
            f9_not_after: self.key.validity.1.unix_timestamp(),
            slots: self
                .slots
                .iter()
                .map(|(slot, origin)| (format!("{slot:02x}"), origin.clone()))
                .collect(),
        };
        let text = serde_json::to_vec_pretty(&stored).map_err(|e| bad(e.to_string()))?;
        // Written aside and renamed: a crash leaves the old state or the new, never half.
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).map_err(|e| bad(e.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|e| bad(e.to_string()))
    }

    /// Runs one complete command: the attestation commands are answered here, the rest by
    /// `app` (the PIV application), watching those that change where a slot's key came from.
    pub(crate) fn respond<F>(&mut self, command: CommandView<'_>, app: F) -> Result<Vec<u8>, Status>
    where
        F: FnOnce(CommandView<'_>) -> Result<Vec<u8>, Status>,
    {
        let ins: u8 = command.instruction().into();
        let cla: u8 = command.class().into_inner();
        // CLA 00 (a chain arrives joined, with its chaining bit).
        if cla & !0x10 == 0 {
            match ins {
                INS_ATTEST if command.p2 == 0 => return self.attest(command.p1, app),
                INS_GET_DATA
                    if (command.p1, command.p2) == (0x3F, 0xFF)
                        && command.data() == attestation_object_tag_list().as_slice() =>
                {
                    return Ok(self.attestation_object());
                }
                _ => {}
            }
        }
        let slot = command.p2;
        let reply = app(command)?;
        let changed = match ins {
            INS_GENERATE => {
                let origin = match generated_point(&reply) {
                    Some(point) => Origin::Generated { point },
                    None => Origin::NotAttestable,
                };
                self.slots.insert(slot, origin);
                true
            }
            INS_IMPORT => {
                self.slots.insert(slot, Origin::NotAttestable);
                true
            }
            INS_RESET => {
                self.slots.clear();
                true
            }
            _ => false,
        };
        if changed {
            if let Err(e) = self.save() {
                // The command took effect on the card; a state we cannot save would make
                // the card attest from stale knowledge, so say so loudly.
                tracing::error!("{e}");
                return Err(Status::UnspecifiedPersistentExecutionError);
            }
        }
        Ok(reply)
    }

    /// INS F9: the attestation certificate of the key in `slot`. `app` answers for a
    /// slot this layer never saw written: does it hold a key (one made before, such as
    /// piv-authenticator's factory 9E key)?
    fn attest<F>(&self, slot: u8, app: F) -> Result<Vec<u8>, Status>
    where
        F: FnOnce(CommandView<'_>) -> Result<Vec<u8>, Status>,
    {
        if slot == ATTESTATION_KEY_REFERENCE {
            return Err(Status::IncorrectP1OrP2Parameter);
        }
        match self.slots.get(&slot) {
            Some(Origin::Generated { point }) => {
                let facts = AttestedFacts {
                    serial: SERIAL,
                    firmware: FIRMWARE,
                    pin_policy: pin_policy(slot),
                    touch_policy: TOUCH_NEVER,
                    form_factor: FORM_FACTOR,
                };
                self.key.attest(slot, point, &facts).map_err(|e| {
                    tracing::error!("virtual card: {e}");
                    Status::UnspecifiedNonpersistentExecutionError
                })
            }
            // A key from outside is never attested: that is the point of attestation.
            Some(Origin::NotAttestable) => Err(Status::IncorrectDataParameter),
            // A key this layer did not see generated is one it cannot vouch for either.
            None if holds_key(slot, app) => Err(Status::IncorrectDataParameter),
            None => Err(Status::KeyReferenceNotFound),
        }
    }

    /// GET DATA 5FFF01: the F9 certificate as a PIV certificate object (53 { 70, 71 }).
    fn attestation_object(&self) -> Vec<u8> {
        let mut inner = tlv::encode(0x70, &self.key.certificate);
        inner.extend(tlv::encode(0x71, &[0x00]));
        tlv::encode(0x53, &inner)
    }
}

/// Whether the PIV application reports a key in `slot` (GET METADATA answers with
/// something).
fn holds_key<F>(slot: u8, app: F) -> bool
where
    F: FnOnce(CommandView<'_>) -> Result<Vec<u8>, Status>,
{
    let apdu = [0x00, INS_GET_METADATA, 0x00, slot, 0x00];
    match CommandView::try_from(&apdu[..]) {
        Ok(command) => app(command).is_ok_and(|reply| !reply.is_empty()),
        Err(_) => false,
    }
}

/// GET DATA's tag list (5C) naming the F9 certificate's object, as the station sends it.
fn attestation_object_tag_list() -> Vec<u8> {
    tlv::encode(0x5C, &ATTESTATION_CERTIFICATE.to_be_bytes()[1..])
}

/// The uncompressed P-256 point of a GENERATE reply (7F49 { 86 point }), if it is one.
fn generated_point(reply: &[u8]) -> Option<Vec<u8>> {
    let outer = tlv::expect_outer(reply, 0x7F49).ok()?;
    let point = tlv::find(outer, 0x86).ok()??;
    (point.len() == 65 && point[0] == 0x04).then(|| point.to_vec())
}

#[cfg(test)]
mod tests;
