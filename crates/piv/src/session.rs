//! A PIV session: one method per card command (SP 800-73-4 part 2, section 3),
//! plus the YubiKey extensions (serial, version, metadata, set management key),
//! which are used when the card has them and never required.

use p256::ecdsa::Signature;
use p256::PublicKey;
use rand::RngCore;
use serde::Serialize;

use cardstation_card::apdu::{Command, StatusWord, EXTENDED_MAX_LE};

use super::ins::Ins;
use cardstation_card::tlv;
use cardstation_card::{CardChannel, Transport};

use super::error::PivError;
use super::management_key::{block_length, ManagementKey};
use super::objects::{CertificateObject, Chuid, Discovery, CHUID, DISCOVERY, PIV_AID};
use super::pin::Pin;
use super::slot::{Algorithm, PinReference, Slot, MANAGEMENT_KEY_REFERENCE};

/// What VERIFY without data tells about a PIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "retries")]
pub enum PinStatus {
    Verified,
    Retries(u8),
    Blocked,
}

/// When a key asks for the PIN (GET METADATA tag 02, first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PinPolicy {
    Default,
    Never,
    Once,
    Always,
    MatchOnce,
    MatchAlways,
    Other(u8),
}

impl From<u8> for PinPolicy {
    fn from(b: u8) -> Self {
        match b {
            0 => PinPolicy::Default,
            1 => PinPolicy::Never,
            2 => PinPolicy::Once,
            3 => PinPolicy::Always,
            4 => PinPolicy::MatchOnce,
            5 => PinPolicy::MatchAlways,
            other => PinPolicy::Other(other),
        }
    }
}

/// When a key asks for a touch (GET METADATA tag 02, second byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TouchPolicy {
    Default,
    Never,
    Always,
    Cached,
    Other(u8),
}

impl From<u8> for TouchPolicy {
    fn from(b: u8) -> Self {
        match b {
            0 => TouchPolicy::Default,
            1 => TouchPolicy::Never,
            2 => TouchPolicy::Always,
            3 => TouchPolicy::Cached,
            other => TouchPolicy::Other(other),
        }
    }
}

/// Where a key came from (GET METADATA tag 03).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyOrigin {
    /// Generated on the card: the private key never existed outside it.
    Generated,
    Imported,
    Other(u8),
}

impl From<u8> for KeyOrigin {
    fn from(b: u8) -> Self {
        match b {
            1 => KeyOrigin::Generated,
            2 => KeyOrigin::Imported,
            other => KeyOrigin::Other(other),
        }
    }
}

/// A PIN or PUK try counter (GET METADATA tag 06).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TryCounter {
    pub total: u8,
    pub remaining: u8,
}

/// Key metadata (YubiKey GET METADATA); every field is optional because cards differ
/// in which tags they return (the virtual card, for one, omits the policy).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeyMetadata {
    pub algorithm: Option<Algorithm>,
    pub pin_policy: Option<PinPolicy>,
    pub touch_policy: Option<TouchPolicy>,
    pub origin: Option<KeyOrigin>,
    pub is_default: Option<bool>,
    /// For PIN and PUK.
    pub retries: Option<TryCounter>,
    #[serde(skip)]
    pub public_key: Option<Vec<u8>>,
}

impl KeyMetadata {
    fn parse(data: &[u8]) -> Result<Self, PivError> {
        let mut m = KeyMetadata::default();
        for t in tlv::parse_all(data).map_err(PivError::tlv("GET METADATA"))? {
            match (t.tag, t.value) {
                (0x01, [alg, ..]) => m.algorithm = Algorithm::from_id(*alg),
                (0x02, [pin, touch, ..]) => {
                    m.pin_policy = Some(PinPolicy::from(*pin));
                    m.touch_policy = Some(TouchPolicy::from(*touch));
                }
                (0x02, [pin]) => m.pin_policy = Some(PinPolicy::from(*pin)),
                (0x03, [origin, ..]) => m.origin = Some(KeyOrigin::from(*origin)),
                (0x04, v) => m.public_key = Some(v.to_vec()),
                (0x05, [d, ..]) => m.is_default = Some(*d != 0),
                (0x06, [total, remaining, ..]) => {
                    m.retries = Some(TryCounter {
                        total: *total,
                        remaining: *remaining,
                    })
                }
                _ => {}
            }
        }
        Ok(m)
    }

    fn is_empty(&self) -> bool {
        *self == KeyMetadata::default()
    }
}

/// What the card answered to ATTEST for a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attestation {
    /// The attestation certificate (DER), signed by the card's F9 key.
    Certificate(Vec<u8>),
    /// The card has no attestation (not a YubiKey, or older than firmware 4.3).
    NotSupported,
    /// The card would not attest this slot's key: imported, not generated on the card,
    /// or no key at all.
    Refused(StatusWord),
}

/// The data object holding the card's attestation (F9) certificate.
pub const ATTESTATION_CERTIFICATE: u32 = 0x5F_FF01;

pub struct PivSession<T: Transport> {
    ch: CardChannel<T>,
    /// A witness obtained while finding the management key's algorithm, kept for the
    /// authentication that normally follows at once (saves one round trip). Any
    /// other command in between discards it, as the card does.
    pending_witness: Option<(Algorithm, Vec<u8>)>,
    /// The card's F9 certificate once read (`Some(None)`: it has none). It does not change
    /// while the station talks to the card, so a card report or an enrollment reads it once.
    attestation_certificate: Option<Option<Vec<u8>>>,
}

/// The management key as far as the card tells without authenticating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ManagementKeyState {
    pub algorithm: Algorithm,
    /// From GET METADATA, where the card has it.
    pub is_default: Option<bool>,
}

impl<T: Transport> PivSession<T> {
    /// Open a session: SELECT the PIV application on the card behind `transport`.
    pub fn open(transport: T) -> Result<Self, PivError> {
        let mut s = PivSession {
            ch: CardChannel::new(transport),
            pending_witness: None,
            attestation_certificate: None,
        };
        s.select()?;
        Ok(s)
    }

    pub fn channel(&self) -> &CardChannel<T> {
        &self.ch
    }

    pub fn into_channel(self) -> CardChannel<T> {
        self.ch
    }

    fn send(&mut self, cmd: &Command) -> Result<cardstation_card::apdu::Response, PivError> {
        self.pending_witness = None;
        Ok(self.ch.send(cmd)?)
    }

    /// SELECT the PIV application; returns the application property template.
    pub fn select(&mut self) -> Result<Vec<u8>, PivError> {
        let rsp = self.send(
            &Ins::Select
                .command(0x04, 0x00)
                .with_data(PIV_AID.to_vec())
                .with_le(256),
        )?;
        if !rsp.sw.is_success() {
            return Err(PivError::NotPiv(rsp.sw));
        }
        // The answer is the application property template (61); anything else means
        // the card is not speaking PIV, whatever its status word says.
        if !rsp.data.is_empty() {
            tlv::expect_outer(&rsp.data, 0x61).map_err(PivError::tlv("SELECT"))?;
        }
        Ok(rsp.data)
    }

    /// GET DATA: the content of the 53 wrapper, or `None` when the object is absent.
    pub fn get_data(&mut self, tag: u32) -> Result<Option<Vec<u8>>, PivError> {
        let rsp = self.send(
            &Ins::GetData
                .command(0x3F, 0xFF)
                .with_data(tag_list(tag))
                .with_le(EXTENDED_MAX_LE),
        )?;
        match rsp.sw {
            StatusWord::SUCCESS => {}
            StatusWord::FILE_NOT_FOUND => return Ok(None),
            sw => return Err(PivError::from_status("GET DATA", sw)),
        }
        if rsp.data.is_empty() {
            return Ok(None);
        }
        // The discovery object comes wrapped in 7E rather than 53.
        let outer = if tag == DISCOVERY { 0x7E } else { 0x53 };
        let content = tlv::expect_outer(&rsp.data, outer).map_err(PivError::tlv("GET DATA"))?;
        if content.is_empty() {
            return Ok(None);
        }
        Ok(Some(content.to_vec()))
    }

    /// PUT DATA: write `content` (without the 53 wrapper) to object `tag`.
    pub fn put_data(&mut self, tag: u32, content: &[u8]) -> Result<(), PivError> {
        let mut data = tag_list(tag);
        data.extend(tlv::encode(0x53, content));
        let rsp = self.send(&Ins::PutData.command(0x3F, 0xFF).with_data(data))?;
        if !rsp.sw.is_success() {
            return Err(PivError::from_status("PUT DATA", rsp.sw));
        }
        Ok(())
    }

    pub fn read_chuid(&mut self) -> Result<Option<Chuid>, PivError> {
        self.get_data(CHUID)?
            .map(|c| Chuid::parse(&c).map_err(PivError::tlv("reading the CHUID")))
            .transpose()
    }

    pub fn write_chuid(&mut self, chuid: &Chuid) -> Result<(), PivError> {
        self.put_data(CHUID, &chuid.encode())
    }

    pub fn read_discovery(&mut self) -> Result<Option<Discovery>, PivError> {
        self.get_data(DISCOVERY)?
            .map(|c| Discovery::parse(&c).map_err(PivError::tlv("reading the discovery object")))
            .transpose()
    }

    pub fn read_certificate(&mut self, slot: Slot) -> Result<Option<CertificateObject>, PivError> {
        self.get_data(slot.certificate_object())?
            .map(|c| {
                CertificateObject::parse(&c).map_err(PivError::tlv("reading a certificate object"))
            })
            .transpose()
    }

    pub fn write_certificate(&mut self, slot: Slot, der: &[u8]) -> Result<(), PivError> {
        self.put_data(
            slot.certificate_object(),
            &CertificateObject::new(der.to_vec()).encode(),
        )
    }

    /// Empty a slot's certificate object.
    pub fn delete_certificate(&mut self, slot: Slot) -> Result<(), PivError> {
        self.put_data(slot.certificate_object(), &[])
    }

    /// VERIFY without data: is the PIN verified, and how many tries are left.
    pub fn pin_status(&mut self, which: PinReference) -> Result<PinStatus, PivError> {
        let rsp = self.send(&Ins::Verify.command(0x00, which.reference()))?;
        pin_status_from(rsp.sw, "reading the PIN status")
    }

    /// VERIFY the PIN.
    pub fn verify_pin(&mut self, pin: &Pin) -> Result<(), PivError> {
        let rsp = self.send(
            &Ins::Verify
                .command(0x00, pin.which().reference())
                .with_secret_data(secret_bytes(&[pin.padded()])),
        )?;
        self.pin_answer(rsp.sw, pin.which(), "VERIFY")
    }

    /// CHANGE REFERENCE DATA: change the PIN or the PUK.
    pub fn change_reference(&mut self, old: &Pin, new: &Pin) -> Result<(), PivError> {
        let rsp = self.send(
            &Ins::ChangeReferenceData
                .command(0x00, old.which().reference())
                .with_secret_data(secret_bytes(&[old.padded(), new.padded()])),
        )?;
        self.pin_answer(rsp.sw, old.which(), "CHANGE REFERENCE DATA")
    }

    /// RESET RETRY COUNTER: unblock the PIN with the PUK and set a new PIN.
    pub fn reset_retry_counter(&mut self, puk: &Pin, new_pin: &Pin) -> Result<(), PivError> {
        let rsp = self.send(
            &Ins::ResetRetryCounter
                .command(0x00, PinReference::Pin.reference())
                .with_secret_data(secret_bytes(&[puk.padded(), new_pin.padded()])),
        )?;
        self.pin_answer(rsp.sw, PinReference::Puk, "RESET RETRY COUNTER")
    }

    /// Interpret the answer to a PIN/PUK command. Some cards answer a wrong value with
    /// a bare 6300 (no counter): then ask the card how many tries are left.
    fn pin_answer(
        &mut self,
        sw: StatusWord,
        which: PinReference,
        during: &'static str,
    ) -> Result<(), PivError> {
        if sw != StatusWord(0x6300) {
            return check_pin_answer(sw, which, during);
        }
        let left = match which {
            PinReference::Pin => match self.pin_status(PinReference::Pin)? {
                PinStatus::Retries(n) => Some(n),
                PinStatus::Blocked => Some(0),
                PinStatus::Verified => None,
            },
            PinReference::Puk => self
                .metadata(PinReference::Puk.reference())?
                .and_then(|m| m.retries)
                .map(|c| c.remaining)
                .or_else(|| match self.pin_status(PinReference::Puk) {
                    Ok(PinStatus::Retries(n)) => Some(n),
                    Ok(PinStatus::Blocked) => Some(0),
                    _ => None,
                }),
        };
        match left {
            Some(0) => Err(PivError::Blocked(which)),
            Some(retries) => Err(PivError::WrongPin { which, retries }),
            None => Err(PivError::WrongPinCountUnknown(which)),
        }
    }

    /// GET METADATA (YubiKey 5.3+). `None` when the card does not support it or
    /// returns nothing for this key.
    pub fn metadata(&mut self, key_reference: u8) -> Result<Option<KeyMetadata>, PivError> {
        let rsp = self.send(&Ins::GetMetadata.command(0x00, key_reference).with_le(256))?;
        if !rsp.sw.is_success() {
            return Ok(None);
        }
        let m = KeyMetadata::parse(&rsp.data)?;
        Ok((!m.is_empty()).then_some(m))
    }

    /// Card serial (YubiKey extension), if the card has one.
    pub fn serial(&mut self) -> Result<Option<u32>, PivError> {
        let rsp = self.send(&Ins::GetSerial.command(0x00, 0x00).with_le(256))?;
        if !rsp.sw.is_success() {
            return Ok(None);
        }
        // A serial of the wrong size is a faulty answer, not "no serial": the serial
        // feeds the management-key derivation and must never silently change.
        match rsp.data.as_slice() {
            [a, b, c, d] => Ok(Some(u32::from_be_bytes([*a, *b, *c, *d]))),
            _ => Err(PivError::malformed(
                "GET SERIAL",
                "the serial is not 4 bytes",
            )),
        }
    }

    /// Firmware version (YubiKey extension), if the card reports one.
    pub fn version(&mut self) -> Result<Option<(u8, u8, u8)>, PivError> {
        let rsp = self.send(&Ins::GetVersion.command(0x00, 0x00).with_le(256))?;
        if !rsp.sw.is_success() {
            return Ok(None);
        }
        match rsp.data.as_slice() {
            [a, b, c] => Ok(Some((*a, *b, *c))),
            _ => Err(PivError::malformed(
                "GET VERSION",
                "the version is not 3 bytes",
            )),
        }
    }

    /// The management key's algorithm (and default flag): from GET METADATA where the
    /// card has it, otherwise by asking for a witness with each algorithm in turn.
    /// Asking for a witness is not an authentication attempt: nothing is counted or locked.
    pub fn management_key_state(&mut self) -> Result<ManagementKeyState, PivError> {
        let meta = self.metadata(MANAGEMENT_KEY_REFERENCE)?;
        let is_default = meta.as_ref().and_then(|m| m.is_default);
        if let Some(algorithm) = meta.and_then(|m| m.algorithm) {
            return Ok(ManagementKeyState {
                algorithm,
                is_default,
            });
        }
        for alg in [
            Algorithm::TripleDes,
            Algorithm::Aes192,
            Algorithm::Aes128,
            Algorithm::Aes256,
        ] {
            if let Some(witness) = self.request_witness(alg)? {
                self.pending_witness = Some((alg, witness));
                return Ok(ManagementKeyState {
                    algorithm: alg,
                    is_default,
                });
            }
        }
        Err(PivError::ManagementKeyAlgorithmUnknown)
    }

    /// Step 1 of mutual authentication: the card's encrypted witness, or `None`
    /// if the card does not use `alg` for its management key.
    fn request_witness(&mut self, alg: Algorithm) -> Result<Option<Vec<u8>>, PivError> {
        let rsp = self.send(
            &Ins::GeneralAuthenticate
                .command(alg.id(), MANAGEMENT_KEY_REFERENCE)
                .with_data(tlv::encode(0x7C, &tlv::encode(0x80, &[])))
                .with_le(256),
        )?;
        match rsp.sw {
            StatusWord::SUCCESS => {}
            StatusWord::INCORRECT_P1P2
            | StatusWord::WRONG_DATA
            | StatusWord::REFERENCE_NOT_FOUND => return Ok(None),
            sw => return Err(PivError::from_status("GENERAL AUTHENTICATE (witness)", sw)),
        }
        let during = "GENERAL AUTHENTICATE (witness)";
        let inner = tlv::expect_outer(&rsp.data, 0x7C).map_err(PivError::tlv(during))?;
        let witness = tlv::find(inner, 0x80)
            .map_err(PivError::tlv(during))?
            .ok_or_else(|| PivError::malformed(during, "no witness (80) in the reply"))?;
        if witness.len() != block_length(alg)? {
            return Err(PivError::malformed(during, "witness has the wrong length"));
        }
        Ok(Some(witness.to_vec()))
    }

    /// Mutual authentication with the management key (SP 800-73-4 part 2, appendix A.1):
    /// the card proves it holds the key too, so a swapped card is detected.
    pub fn authenticate(&mut self, key: &ManagementKey) -> Result<(), PivError> {
        let alg = key.algorithm();
        let witness = match self.pending_witness.take() {
            Some((pending_alg, witness)) if pending_alg == alg => witness,
            _ => self
                .request_witness(alg)?
                .ok_or(PivError::ManagementKeyRejected)?,
        };
        let decrypted = zeroize::Zeroizing::new(key.decrypt_block(&witness)?);
        let mut challenge = vec![0u8; key.block_length()];
        rand::rngs::OsRng.fill_bytes(&mut challenge);
        let mut inner = tlv::encode(0x80, &decrypted);
        inner.extend(tlv::encode(0x81, &challenge));
        let rsp = self.send(
            &Ins::GeneralAuthenticate
                .command(alg.id(), MANAGEMENT_KEY_REFERENCE)
                .with_data(tlv::encode(0x7C, &inner))
                .with_le(256)
                .secret(),
        )?;
        match rsp.sw {
            StatusWord::SUCCESS => {}
            StatusWord::WRONG_DATA
            | StatusWord::SECURITY_STATUS_NOT_SATISFIED
            | StatusWord::CONDITIONS_NOT_SATISFIED => return Err(PivError::ManagementKeyRejected),
            StatusWord::AUTH_METHOD_BLOCKED => {
                return Err(PivError::Status {
                    during: "management key authentication (blocked)",
                    sw: rsp.sw,
                })
            }
            sw => {
                return Err(PivError::from_status(
                    "GENERAL AUTHENTICATE (management key)",
                    sw,
                ))
            }
        }
        let during = "GENERAL AUTHENTICATE (management key)";
        let outer = tlv::expect_outer(&rsp.data, 0x7C).map_err(PivError::tlv(during))?;
        let answer = tlv::find(outer, 0x82)
            .map_err(PivError::tlv(during))?
            .ok_or_else(|| PivError::malformed(during, "no response (82) in the reply"))?;
        // Constant time: how many leading bytes of a forged answer were right must not
        // show in how long the refusal took.
        let expected = zeroize::Zeroizing::new(key.encrypt_block(&challenge)?);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(answer, expected.as_slice())) {
            return Err(PivError::CardNotAuthentic);
        }
        Ok(())
    }

    /// GENERATE ASYMMETRIC KEY PAIR: a new P-256 key in `slot`; returns its public key.
    pub fn generate_p256(&mut self, slot: Slot) -> Result<PublicKey, PivError> {
        let template = tlv::encode(0xAC, &tlv::encode(0x80, &[Algorithm::EccP256.id()]));
        let rsp = self.send(
            &Ins::GenerateAsymmetricKeyPair
                .command(0x00, slot.key_reference())
                .with_data(template)
                .with_le(256),
        )?;
        if !rsp.sw.is_success() {
            return Err(PivError::from_status(
                "GENERATE ASYMMETRIC KEY PAIR",
                rsp.sw,
            ));
        }
        let during = "GENERATE ASYMMETRIC KEY PAIR";
        let outer = tlv::expect_outer(&rsp.data, 0x7F49).map_err(PivError::tlv(during))?;
        let point = tlv::find(outer, 0x86)
            .map_err(PivError::tlv(during))?
            .ok_or_else(|| PivError::malformed(during, "no EC point (86) in the reply"))?;
        PublicKey::from_sec1_bytes(point)
            .map_err(|_| PivError::malformed(during, "the EC point is not on P-256"))
    }

    /// GENERAL AUTHENTICATE: ECDSA P-256 signature over a SHA-256 `digest`.
    pub fn sign_p256(&mut self, slot: Slot, digest: &[u8; 32]) -> Result<Signature, PivError> {
        let mut inner = tlv::encode(0x82, &[]);
        inner.extend(tlv::encode(0x81, digest));
        let rsp = self.send(
            &Ins::GeneralAuthenticate
                .command(Algorithm::EccP256.id(), slot.key_reference())
                .with_data(tlv::encode(0x7C, &inner))
                .with_le(256),
        )?;
        match rsp.sw {
            StatusWord::SUCCESS => {}
            StatusWord::SECURITY_STATUS_NOT_SATISFIED => {
                return Err(PivError::NotAuthorized {
                    during: "signing",
                    what_needed: "this slot needs the PIN",
                })
            }
            sw => return Err(PivError::from_status("GENERAL AUTHENTICATE (sign)", sw)),
        }
        let during = "GENERAL AUTHENTICATE (sign)";
        let outer = tlv::expect_outer(&rsp.data, 0x7C).map_err(PivError::tlv(during))?;
        let der = tlv::find(outer, 0x82)
            .map_err(PivError::tlv(during))?
            .ok_or_else(|| PivError::malformed(during, "no signature (82) in the reply"))?;
        Signature::from_der(der)
            .map_err(|_| PivError::malformed(during, "the signature is not a DER ECDSA signature"))
    }

    /// ATTEST (YubiKey extension): the card's certificate for the key in `slot`, which it
    /// gives only for a key it generated itself.
    pub fn attest(&mut self, slot: Slot) -> Result<Attestation, PivError> {
        let rsp = self.send(
            &Ins::Attest
                .command(slot.key_reference(), 0x00)
                .with_le(EXTENDED_MAX_LE),
        )?;
        match rsp.sw {
            StatusWord::SUCCESS if rsp.data.first() == Some(&0x30) => {
                Ok(Attestation::Certificate(rsp.data))
            }
            StatusWord::SUCCESS => Err(PivError::malformed(
                "ATTEST",
                "the reply is not a DER certificate",
            )),
            StatusWord::INS_NOT_SUPPORTED
            | StatusWord::FUNCTION_NOT_SUPPORTED
            | StatusWord::CLA_NOT_SUPPORTED => Ok(Attestation::NotSupported),
            sw => Ok(Attestation::Refused(sw)),
        }
    }

    /// The card's attestation certificate (slot F9, object 5FFF01), DER; `None` when the
    /// card holds none.
    pub fn read_attestation_certificate(&mut self) -> Result<Option<Vec<u8>>, PivError> {
        if let Some(held) = &self.attestation_certificate {
            return Ok(held.clone());
        }
        let object = match self.get_data(ATTESTATION_CERTIFICATE) {
            // A card without attestation may not know the object's tag at all
            // (piv-authenticator answers "incorrect data").
            Err(PivError::Status {
                sw: StatusWord::WRONG_DATA,
                ..
            }) => None,
            other => other?,
        };
        let der = match object {
            Some(content) => Some(
                CertificateObject::parse(&content)
                    .map_err(PivError::tlv("GET DATA (attestation certificate)"))?
                    .der,
            ),
            None => None,
        };
        self.attestation_certificate = Some(der.clone());
        Ok(der)
    }

    /// SET PIN RETRIES (YubiKey extension): PIN and PUK try counters. Needs the
    /// management key and the PIN in this session; resets both to their defaults.
    pub fn set_pin_retries(&mut self, pin_tries: u8, puk_tries: u8) -> Result<(), PivError> {
        let rsp = self.send(&Ins::SetPinRetries.command(pin_tries, puk_tries))?;
        match rsp.sw {
            StatusWord::SUCCESS => Ok(()),
            StatusWord::INS_NOT_SUPPORTED | StatusWord::FUNCTION_NOT_SUPPORTED => Err(
                PivError::Unsupported("setting the PIN and PUK try counters"),
            ),
            sw => Err(PivError::from_status("SET PIN RETRIES", sw)),
        }
    }

    /// RESET (YubiKey extension): back to a blank card — every key and certificate
    /// gone, PIN, PUK and management key back to the factory values. Cards allow it
    /// only once PIN and PUK are both blocked.
    pub fn reset_card(&mut self) -> Result<(), PivError> {
        let rsp = self.send(&Ins::Reset.command(0x00, 0x00))?;
        match rsp.sw {
            StatusWord::SUCCESS => Ok(()),
            StatusWord::CONDITIONS_NOT_SATISFIED | StatusWord::SECURITY_STATUS_NOT_SATISFIED => {
                Err(PivError::ResetRefused)
            }
            StatusWord::INS_NOT_SUPPORTED | StatusWord::FUNCTION_NOT_SUPPORTED => {
                Err(PivError::Unsupported("resetting the card"))
            }
            sw => Err(PivError::from_status("RESET", sw)),
        }
    }

    /// SET MANAGEMENT KEY (YubiKey extension, widely implemented): replace the 9B key.
    /// Requires a prior `authenticate` in this session.
    pub fn set_management_key(&mut self, key: &ManagementKey) -> Result<(), PivError> {
        let header = [
            key.algorithm().id(),
            MANAGEMENT_KEY_REFERENCE,
            key.bytes().len() as u8,
        ];
        let rsp = self.send(
            &Ins::SetManagementKey
                .command(0xFF, 0xFF)
                .with_secret_data(secret_bytes(&[&header, key.bytes()])),
        )?;
        if !rsp.sw.is_success() {
            return Err(PivError::from_status("SET MANAGEMENT KEY", rsp.sw));
        }
        Ok(())
    }
}

/// Data field of GET/PUT DATA: tag list 5C with the object's tag.
/// Join secret parts into one zeroizing buffer, allocated once at its final size so that
/// no reallocation leaves a copy behind in freed memory.
fn secret_bytes(parts: &[&[u8]]) -> zeroize::Zeroizing<Vec<u8>> {
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(parts.iter().map(|p| p.len()).sum()));
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

fn tag_list(tag: u32) -> Vec<u8> {
    let bytes: Vec<u8> = tag
        .to_be_bytes()
        .into_iter()
        .skip_while(|&b| b == 0)
        .collect();
    tlv::encode(0x5C, &bytes)
}

fn pin_status_from(sw: StatusWord, during: &'static str) -> Result<PinStatus, PivError> {
    if sw.is_success() {
        return Ok(PinStatus::Verified);
    }
    match sw.retries_left() {
        Some(0) => Ok(PinStatus::Blocked),
        Some(n) => Ok(PinStatus::Retries(n)),
        None if sw == StatusWord::AUTH_METHOD_BLOCKED => Ok(PinStatus::Blocked),
        None => Err(PivError::from_status(during, sw)),
    }
}

fn check_pin_answer(
    sw: StatusWord,
    which: PinReference,
    during: &'static str,
) -> Result<(), PivError> {
    match pin_status_from(sw, during)? {
        PinStatus::Verified => Ok(()),
        PinStatus::Retries(retries) => Err(PivError::WrongPin { which, retries }),
        PinStatus::Blocked => Err(PivError::Blocked(which)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A card that knows `key` and answers mutual authentication, correctly or with one
    /// bit of its answer flipped.
    struct MutualCard {
        key: ManagementKey,
        witness: Vec<u8>,
        forge: bool,
    }

    impl Transport for MutualCard {
        fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, cardstation_card::CardError> {
            let ok = |mut data: Vec<u8>| {
                data.extend([0x90, 0x00]);
                Ok(data)
            };
            if apdu[1] != 0x87 {
                return ok(vec![]); // SELECT
            }
            let data = &apdu[5..5 + usize::from(apdu[4])];
            if data == [0x7C, 0x02, 0x80, 0x00] {
                let w = self.key.encrypt_block(&self.witness).unwrap();
                return ok([vec![0x7C, 0x0A, 0x80, 0x08], w].concat());
            }
            // 7C 14 80 08 <decrypted witness> 81 08 <challenge>
            assert_eq!(&data[4..12], self.witness.as_slice());
            let mut answer = self.key.encrypt_block(&data[14..22]).unwrap();
            if self.forge {
                answer[7] ^= 1;
            }
            ok([vec![0x7C, 0x0A, 0x82, 0x08], answer].concat())
        }
        fn reader(&self) -> &str {
            "mock"
        }
        fn atr(&self) -> Vec<u8> {
            vec![]
        }
    }

    #[test]
    fn a_card_that_does_not_know_the_management_key_is_not_authentic() {
        let key = ManagementKey::factory_default(Algorithm::TripleDes).unwrap();
        for forge in [false, true] {
            let card = MutualCard {
                key: key.clone(),
                witness: vec![7; 8],
                forge,
            };
            let mut s = PivSession::open(card).unwrap();
            let r = s.authenticate(&key);
            if forge {
                assert!(matches!(r, Err(PivError::CardNotAuthentic)), "{r:?}");
            } else {
                assert!(r.is_ok(), "{r:?}");
            }
        }
    }

    #[test]
    fn tag_lists() {
        assert_eq!(tag_list(0x5FC102), [0x5C, 0x03, 0x5F, 0xC1, 0x02]);
        assert_eq!(tag_list(0x7E), [0x5C, 0x01, 0x7E]);
    }

    #[test]
    fn pin_answers() {
        assert!(check_pin_answer(StatusWord(0x9000), PinReference::Pin, "x").is_ok());
        assert!(matches!(
            check_pin_answer(StatusWord(0x63C2), PinReference::Pin, "x"),
            Err(PivError::WrongPin { retries: 2, .. })
        ));
        assert!(matches!(
            check_pin_answer(StatusWord(0x6983), PinReference::Puk, "x"),
            Err(PivError::Blocked(PinReference::Puk))
        ));
        assert!(matches!(
            check_pin_answer(StatusWord(0x63C0), PinReference::Pin, "x"),
            Err(PivError::Blocked(PinReference::Pin))
        ));
    }

    #[test]
    fn metadata_tolerates_missing_and_odd_tags() {
        let m = KeyMetadata::parse(&[0x02, 0x02, 0x01, 0x00]).unwrap();
        assert_eq!(m.pin_policy, Some(PinPolicy::Never));
        assert_eq!(m.touch_policy, Some(TouchPolicy::Default));
        assert_eq!(m.algorithm, None);
        let m = KeyMetadata::parse(&hex::decode("01010305010106020302").unwrap()).unwrap();
        assert_eq!(m.algorithm, Some(Algorithm::TripleDes));
        assert_eq!(m.is_default, Some(true));
        assert_eq!(
            m.retries,
            Some(TryCounter {
                total: 3,
                remaining: 2
            })
        );
        // A truncated tag value is ignored rather than misread.
        let m = KeyMetadata::parse(&[0x06, 0x01, 0x03]).unwrap();
        assert_eq!(m.retries, None);
        assert!(KeyMetadata::parse(&[0x01, 0x05, 0x03]).is_err());
    }
}
