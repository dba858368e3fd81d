//! What is on a card: PIV presence, identity, slots, certificates, PIN and management-key state.

use serde::Serialize;

use cardstation_card::atr::Atr;
use cardstation_card::trace::ApduTrace;
use cardstation_card::Transport;
use cardstation_piv::Guid;
use cardstation_piv::{
    Algorithm, ManagementKey, PinReference, PinStatus, PivError, PivSession, Slot,
};
use cardstation_pki::CertificateInfo;

use super::attestation::{self, KeyProof};

#[derive(Debug, Clone, Serialize)]
pub struct SlotReport {
    pub slot: Slot,
    /// `None` when the card cannot tell (no metadata support) and there is no certificate.
    pub key_present: Option<bool>,
    pub certificate: Option<CertificateInfo>,
    pub certificate_error: Option<String>,
    /// What the card proves about the key's origin (PIV attestation); `None` when the
    /// slot holds no key or the card was not asked.
    pub key_proof: Option<KeyProof>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ManagementKeyReport {
    pub algorithm: Option<Algorithm>,
    /// Whether the factory default key still works (`None`: not determined).
    pub is_default: Option<bool>,
    /// How it was determined: "metadata" or "test-authentication".
    pub source: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct CardReport {
    pub reader: String,
    #[serde(serialize_with = "cardstation_card::hex_serde::serialize_hex")]
    pub atr: Vec<u8>,
    pub protocols: Vec<String>,
    pub serial: Option<u32>,
    pub version: Option<String>,
    pub chuid_guid: Option<Guid>,
    pub pin: PinStatus,
    pub management_key: ManagementKeyReport,
    pub slots: Vec<SlotReport>,
    /// Whether the card attests the keys it generates (PIV attestation): it holds an
    /// attestation (F9) certificate and knows ATTEST. `None`: the card could not say.
    pub attests: Option<bool>,
}

impl CardReport {
    /// Blank: no certificate in any slot. (Some cards ship with a factory 9E key;
    /// a key without a certificate identifies nobody.)
    pub fn is_blank(&self) -> bool {
        self.slots.iter().all(|s| s.certificate.is_none())
    }
}

/// Read everything an operator needs to know about the card. Changes nothing on it.
pub fn inspect<T: Transport>(transport: T) -> Result<CardReport, PivError> {
    inspect_traced(transport).0
}

/// `inspect`, also returning the APDU exchanges (secrets redacted) for diagnostics.
pub fn inspect_traced<T: Transport>(transport: T) -> (Result<CardReport, PivError>, ApduTrace) {
    let reader = transport.reader().to_string();
    let atr = transport.atr();
    let protocols = Atr::parse(&atr)
        .map(|a| a.protocol_names())
        .unwrap_or_default();
    let mut s = match PivSession::open(transport) {
        Ok(s) => s,
        Err(e) => return (Err(e), ApduTrace::default()),
    };
    let result = read_report(&mut s, reader, atr, protocols);
    (result, s.channel().trace().clone())
}

fn read_report<T: Transport>(
    s: &mut PivSession<T>,
    reader: String,
    atr: Vec<u8>,
    protocols: Vec<String>,
) -> Result<CardReport, PivError> {
    let serial = s.serial()?;
    let version = s.version()?.map(|(a, b, c)| format!("{a}.{b}.{c}"));
    let chuid_guid = s.read_chuid()?.and_then(|c| c.guid);
    let pin = s.pin_status(PinReference::Pin)?;

    let mut slots = Vec::new();
    // A card that cannot attest says so once; it is not asked again for every slot.
    let mut can_attest = true;
    for slot in Slot::ALL {
        let meta = s.metadata(slot.key_reference())?;
        let (certificate, certificate_error) = match s.read_certificate(slot) {
            Ok(Some(obj)) => match CertificateInfo::parse(&obj.der) {
                Ok(info) => (Some(info), None),
                Err(e) => (None, Some(e.to_string())),
            },
            Ok(None) => (None, None),
            Err(PivError::Malformed { detail, .. }) => (None, Some(detail)),
            Err(e) => return Err(e),
        };
        let key_present = match (&meta, &certificate) {
            (Some(_), _) => Some(true),
            (None, Some(_)) => Some(true),
            (None, None) => None,
        };
        let key_proof = if !can_attest {
            // Said once by the card; true of every key on it.
            (key_present == Some(true)).then_some(KeyProof::NotSupported)
        } else {
            let expected = certificate.as_ref().and_then(|c| c.public_key);
            let proof = attestation::read(s, slot, expected.as_ref())?;
            can_attest = proof != KeyProof::NotSupported;
            // A slot that may be empty (no metadata, no certificate) gets a line only
            // when the card spoke of a key in it; what the card can do is the card's
            // (`attests`).
            match (&proof, key_present) {
                (KeyProof::NoKey | KeyProof::NotSupported, None) => None,
                _ => Some(proof),
            }
        };
        slots.push(SlotReport {
            slot,
            key_present,
            certificate,
            certificate_error,
            key_proof,
        });
    }

    // The F9 certificate: the session has it already if a slot's attestation read it.
    let attests = if can_attest {
        attestation::can_attest(s)?
    } else {
        false
    };
    let management_key = management_key_report(s)?;
    Ok(CardReport {
        attests: Some(attests),
        reader,
        atr,
        protocols,
        serial,
        version,
        chuid_guid,
        pin,
        management_key,
        slots,
    })
}

fn management_key_report<T: Transport>(
    s: &mut PivSession<T>,
) -> Result<ManagementKeyReport, PivError> {
    let state = match s.management_key_state() {
        Ok(state) => state,
        Err(PivError::ManagementKeyAlgorithmUnknown) => {
            return Ok(ManagementKeyReport {
                algorithm: None,
                is_default: None,
                source: "unknown",
            })
        }
        Err(e) => return Err(e),
    };
    if state.is_default.is_some() {
        return Ok(ManagementKeyReport {
            algorithm: Some(state.algorithm),
            is_default: state.is_default,
            source: "metadata",
        });
    }
    // No metadata: try the factory key. A failed management-key authentication
    // is not counted against the card by PIV cards in the field (YubiKey, Nitrokey).
    let alg = state.algorithm;
    let is_default = match ManagementKey::factory_default(alg) {
        None => false,
        Some(key) => match s.authenticate(&key) {
            Ok(()) => true,
            Err(PivError::ManagementKeyRejected) => false,
            Err(e) => return Err(e),
        },
    };
    Ok(ManagementKeyReport {
        algorithm: Some(alg),
        is_default: Some(is_default),
        source: "test-authentication",
    })
}

/// The short identity shown in a reader list.
#[derive(Debug, Clone, Serialize)]
pub struct CardSummary {
    pub piv: bool,
    pub serial: Option<u32>,
    pub chuid_guid: Option<Guid>,
    pub error: Option<String>,
}

pub fn summarize<T: Transport>(transport: T) -> CardSummary {
    let mut out = CardSummary {
        piv: false,
        serial: None,
        chuid_guid: None,
        error: None,
    };
    let mut s = match PivSession::open(transport) {
        Ok(s) => s,
        Err(PivError::NotPiv(_)) => return out,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    out.piv = true;
    match s.serial() {
        Ok(serial) => out.serial = serial,
        Err(e) => out.error = Some(e.to_string()),
    }
    match s.read_chuid() {
        Ok(c) => out.chuid_guid = c.and_then(|c| c.guid),
        Err(e) => out.error = Some(e.to_string()),
    }
    out
}
