//! Where a slot's key came from, as the card proves it: PIV attestation (YubiKey style).
//! Read at enrollment for the key just generated (the evidence travels with the upload
//! or the certificate request) and for each slot in a card report. The station shows
//! what the card claims; the console verifies it against the site's attestation roots.

use p256::PublicKey;
use serde::Serialize;

use cardstation_card::apdu::StatusWord;
use cardstation_card::Transport;
use cardstation_piv::{Attestation, PivError, PivSession, Slot};
use cardstation_pki::attestation::AttestedKey;
use cardstation_pki::certificate::to_pem;
use cardstation_protocol::messages::AttestationEvidence;

/// What the card says about the key in a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum KeyProof {
    /// The card attested the key: generated on this card.
    Attested {
        facts: AttestedKey,
        #[serde(skip)]
        evidence: AttestationEvidence,
    },
    /// The card cannot attest keys (not a YubiKey, or firmware before 4.3).
    NotSupported,
    /// The card holds no key in the slot.
    NoKey,
    /// The card would not attest this key, or its attestation is unfit; the reason.
    NotAttested { reason: String },
}

impl KeyProof {
    /// The evidence to send to the console, if the card gave one.
    pub fn evidence(&self) -> Option<&AttestationEvidence> {
        match self {
            KeyProof::Attested { evidence, .. } => Some(evidence),
            _ => None,
        }
    }

    /// The evidence as the station database keeps it with the enrollment (JSON).
    pub fn evidence_json(&self) -> Option<String> {
        self.evidence().and_then(|e| serde_json::to_string(e).ok())
    }

    /// One line for an operator.
    pub fn describe(&self) -> String {
        match self {
            KeyProof::Attested { facts, .. } => {
                // The card's own claim: the console checks it against the vendor's root.
                format!(
                    "the card attests it generated this key ({}); the console verifies the proof",
                    facts.describe()
                )
            }
            KeyProof::NotSupported => "not attested: this card cannot attest its keys".into(),
            KeyProof::NoKey => "not attested: no key in the slot".into(),
            KeyProof::NotAttested { reason } => format!("not attested: {reason}"),
        }
    }
}

/// Whether the card attests keys at all, asked before anything on it changes (a site
/// that requires attested keys refuses the others at upload). A card that attests holds
/// the certificate of its attestation key (slot F9, put there at the factory on a
/// YubiKey); ATTEST itself cannot tell before a key exists, as an empty slot and a card
/// without attestation (piv-authenticator, so Nitrokeys) both answer "not found". The
/// session keeps what it read, so a later attestation does not read it again.
pub fn can_attest<T: Transport>(session: &mut PivSession<T>) -> Result<bool, PivError> {
    match session.read_attestation_certificate() {
        Ok(held) => Ok(held.is_some()),
        // There is one, but unusable: attestation will say so for the key.
        Err(PivError::Malformed { .. }) => Ok(true),
        Err(e) => Err(e),
    }
}

/// Asks the card to attest the key in `slot`. `expected`: the key that must be the attested
/// one (the key just generated, or the slot's certificate's). Only a card that cannot be
/// talked to is an error; whatever the card answers becomes a [`KeyProof`].
pub fn read<T: Transport>(
    session: &mut PivSession<T>,
    slot: Slot,
    expected: Option<&PublicKey>,
) -> Result<KeyProof, PivError> {
    let not = |reason: String| Ok(KeyProof::NotAttested { reason });
    let der = match session.attest(slot) {
        Ok(Attestation::Certificate(der)) => der,
        Ok(Attestation::NotSupported) => return Ok(KeyProof::NotSupported),
        Ok(Attestation::Refused(StatusWord::REFERENCE_NOT_FOUND | StatusWord::FILE_NOT_FOUND)) => {
            // An attesting card says this of an empty slot; a card without attestation
            // says it of every slot. Only the first holds an F9 certificate.
            return Ok(if can_attest(session)? {
                KeyProof::NoKey
            } else {
                KeyProof::NotSupported
            });
        }
        Ok(Attestation::Refused(sw)) => return not(refusal(sw)),
        Err(PivError::Malformed { detail, .. }) => {
            return not(format!("the card's answer: {detail}"))
        }
        Err(e) => return Err(e),
    };
    let facts = match AttestedKey::parse(&der) {
        Ok(f) => f,
        Err(e) => return not(format!("the card's attestation cannot be read: {e}")),
    };
    if let Some(key) = expected {
        if facts.public_key.as_ref() != Some(key) {
            return not("the card's attestation names another key than the one in the slot".into());
        }
    }
    let intermediate = match session.read_attestation_certificate() {
        Ok(Some(held)) => held,
        Ok(None) => return not("the card holds no attestation (F9) certificate".into()),
        Err(PivError::Malformed { detail, .. }) => {
            return not(format!("the card's F9 certificate: {detail}"))
        }
        Err(e) => return Err(e),
    };
    Ok(KeyProof::Attested {
        facts,
        evidence: AttestationEvidence {
            attestation: to_pem(&der),
            intermediate: to_pem(&intermediate),
        },
    })
}

fn refusal(sw: StatusWord) -> String {
    match sw {
        StatusWord::WRONG_DATA => {
            "the card did not generate this key (it was imported or put there before)".into()
        }
        sw => format!("the card refused to attest the key ({sw})"),
    }
}
