//! PIV-level failures: what the card refused, and what the operator can do about it.

use cardstation_card::apdu::StatusWord;
use cardstation_card::tlv::TlvError;
use cardstation_card::CardError;

use super::management_key::KeyError;
use super::slot::PinReference;

#[derive(Debug, thiserror::Error)]
pub enum PivError {
    #[error(transparent)]
    Card(#[from] CardError),
    #[error("the card has no PIV application (SELECT answered {0}). Only PIV cards can be enrolled here")]
    NotPiv(StatusWord),
    #[error("wrong {}: {retries} {} left before it is blocked", .which.name(), if *.retries == 1 { "try" } else { "tries" })]
    WrongPin { which: PinReference, retries: u8 },
    #[error("wrong {}; the card does not say how many tries are left", .0.name())]
    WrongPinCountUnknown(PinReference),
    #[error("the {} is blocked. {}", .0.name(), match .0 { PinReference::Pin => "Unblock it with the PUK", PinReference::Puk => "With PIN and PUK both blocked the card can only be reset to blank" })]
    Blocked(PinReference),
    #[error("a {} must be {min} to 8 characters", .which.name())]
    PinFormat { which: PinReference, min: usize },
    #[error("the card refused the management key. The card was probably set up by other software or another site: use that site's key or reset the card")]
    ManagementKeyRejected,
    #[error("the card's management key algorithm could not be determined (it accepted none of 3DES, AES-128, AES-192, AES-256)")]
    ManagementKeyAlgorithmUnknown,
    #[error("the card's answer to the management-key challenge was wrong: this is not the card we authenticated to, or it is faulty")]
    CardNotAuthentic,
    #[error("the card refused {during}: security status not satisfied ({what_needed})")]
    NotAuthorized {
        during: &'static str,
        what_needed: &'static str,
    },
    #[error("the card has no room for {during} ({sw})")]
    NoSpace {
        during: &'static str,
        sw: StatusWord,
    },
    #[error("the card refused {during}: {sw}")]
    Status {
        during: &'static str,
        sw: StatusWord,
    },
    #[error("the card sent a malformed reply to {during}: {detail}")]
    Malformed {
        during: &'static str,
        detail: String,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("this card does not support {0}")]
    Unsupported(&'static str),
    #[error("the card refused to reset: it resets only when both the PIN and the PUK are blocked")]
    ResetRefused,
}

impl PivError {
    pub fn malformed(during: &'static str, detail: impl ToString) -> Self {
        PivError::Malformed {
            during,
            detail: detail.to_string(),
        }
    }

    pub fn tlv(during: &'static str) -> impl Fn(TlvError) -> PivError {
        move |e| PivError::malformed(during, e)
    }

    /// Map a non-success status word of `during` to the error an operator understands.
    pub fn from_status(during: &'static str, sw: StatusWord) -> Self {
        match sw {
            StatusWord::SECURITY_STATUS_NOT_SATISFIED => PivError::NotAuthorized {
                during,
                what_needed: "PIN or management key not verified",
            },
            StatusWord::NOT_ENOUGH_MEMORY => PivError::NoSpace { during, sw },
            _ => PivError::Status { during, sw },
        }
    }

    /// Short stable code for JSON output.
    pub fn code(&self) -> &'static str {
        match self {
            PivError::Card(e) => e.code(),
            PivError::NotPiv(_) => "not-piv",
            PivError::WrongPin { .. } | PivError::WrongPinCountUnknown(_) => "wrong-pin",
            PivError::Blocked(_) => "blocked",
            PivError::PinFormat { .. } => "pin-format",
            PivError::ManagementKeyRejected => "management-key-rejected",
            PivError::ManagementKeyAlgorithmUnknown => "management-key-algorithm-unknown",
            PivError::CardNotAuthentic => "card-not-authentic",
            PivError::NotAuthorized { .. } => "not-authorized",
            PivError::NoSpace { .. } => "no-space",
            PivError::Status { .. } => "card-status",
            PivError::Malformed { .. } => "malformed-response",
            PivError::Key(_) => "management-key",
            PivError::Unsupported(_) => "unsupported",
            PivError::ResetRefused => "reset-refused",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_pin_message_counts_tries() {
        let e = PivError::WrongPin {
            which: PinReference::Pin,
            retries: 2,
        };
        assert_eq!(
            e.to_string(),
            "wrong PIN: 2 tries left before it is blocked"
        );
        let e = PivError::WrongPin {
            which: PinReference::Puk,
            retries: 1,
        };
        assert_eq!(e.to_string(), "wrong PUK: 1 try left before it is blocked");
    }
}
