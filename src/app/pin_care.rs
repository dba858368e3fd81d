//! PIN care: change PIN and PUK, unblock the PIN with the PUK, set try counters,
//! and — when PIN and PUK are both blocked — reset the card to blank. Tries left
//! are always read first, and the last try is never spent without the operator
//! saying so. Nothing secret is recorded; the audit row says what was done.

use crate::app::failure::{Coded, ErrorCode};
use crate::store::AuditAction;
use serde::Serialize;

use crate::store::Store;
use cardstation_card::Transport;
use cardstation_piv::{Pin, PinReference, PinStatus, PivError, PivSession};

use super::management_keys::authenticate_for_station;
use super::site_keys::SiteSecret;

#[derive(Debug, thiserror::Error)]
pub enum PinCareError {
    #[error(transparent)]
    Piv(#[from] PivError),
    #[error("only one {0} try is left: a wrong value now blocks it. Repeat with the last-try confirmation if you are sure")]
    LastTry(&'static str),
    #[error("the PIN is blocked: unblock it with the PUK first")]
    PinBlocked,
    #[error("the confirmation does not match: type exactly \"{expected}\"")]
    Confirmation { expected: String },
    #[error(
        "the card's PIN is not blocked: it can only be reset once PIN and PUK are both blocked"
    )]
    NotBlocked,
    /// The station could not authenticate to the card (its management key).
    #[error(transparent)]
    Enroll(Box<crate::app::enroll::EnrollError>),
}

impl Coded for PinCareError {
    fn code(&self) -> ErrorCode {
        match self {
            PinCareError::Piv(e) => Coded::code(e),
            PinCareError::LastTry(_) => ErrorCode::LastTry,
            PinCareError::PinBlocked => ErrorCode::Blocked,
            PinCareError::Confirmation { .. } => ErrorCode::Confirmation,
            PinCareError::NotBlocked => ErrorCode::NotBlocked,
            PinCareError::Enroll(e) => e.code(),
        }
    }
}

/// PIN state as the operator sees it.
#[derive(Debug, Clone, Serialize)]
pub struct PinReport {
    pub pin: PinStatus,
    /// PUK tries left where the card tells (GET METADATA), else `None`.
    pub puk_retries: Option<u8>,
}

pub fn status<T: Transport>(transport: T) -> Result<PinReport, PivError> {
    let mut s = PivSession::open(transport)?;
    pin_report(&mut s)
}

fn pin_report<T: Transport>(s: &mut PivSession<T>) -> Result<PinReport, PivError> {
    let pin = s.pin_status(PinReference::Pin)?;
    let puk_retries = s
        .metadata(PinReference::Puk.reference())?
        .and_then(|m| m.retries)
        .map(|c| c.remaining);
    Ok(PinReport { pin, puk_retries })
}

/// Refuse to spend the last PIN try unless the operator confirmed it.
fn guard_pin<T: Transport>(s: &mut PivSession<T>, last_try_ok: bool) -> Result<(), PinCareError> {
    match s.pin_status(PinReference::Pin)? {
        PinStatus::Blocked => Err(PinCareError::PinBlocked),
        PinStatus::Retries(1) if !last_try_ok => Err(PinCareError::LastTry("PIN")),
        _ => Ok(()),
    }
}

fn guard_puk<T: Transport>(s: &mut PivSession<T>, last_try_ok: bool) -> Result<(), PinCareError> {
    match pin_report(s)?.puk_retries {
        Some(0) => Err(PivError::Blocked(PinReference::Puk).into()),
        Some(1) if !last_try_ok => Err(PinCareError::LastTry("PUK")),
        _ => Ok(()),
    }
}

/// Change the PIN or the PUK (which one: `old.which()`), guarding that code's last try.
pub fn change<T: Transport>(
    transport: T,
    old: &Pin,
    new: &Pin,
    last_try_ok: bool,
) -> Result<(), PinCareError> {
    let mut s = PivSession::open(transport)?;
    match old.which() {
        PinReference::Pin => guard_pin(&mut s, last_try_ok)?,
        PinReference::Puk => guard_puk(&mut s, last_try_ok)?,
    }
    s.change_reference(old, new)?;
    Ok(())
}

pub fn unblock_pin<T: Transport>(
    transport: T,
    puk: &Pin,
    new_pin: &Pin,
    last_try_ok: bool,
) -> Result<(), PinCareError> {
    let mut s = PivSession::open(transport)?;
    guard_puk(&mut s, last_try_ok)?;
    s.reset_retry_counter(puk, new_pin)?;
    Ok(())
}

/// Set the PIN and PUK try counters (where the card supports it). Both codes go
/// back to their factory values, as the card resets them.
pub fn set_retries<T: Transport>(
    transport: T,
    pin: &Pin,
    pin_tries: u8,
    puk_tries: u8,
    store: &Store,
    secret: &SiteSecret,
) -> Result<(), PinCareError> {
    let mut s = PivSession::open(transport)?;
    guard_pin(&mut s, false)?;
    authenticate_for_station(&mut s, store, secret)
        .map_err(|e| PinCareError::Enroll(Box::new(e.into())))?;
    s.verify_pin(pin)?;
    s.set_pin_retries(pin_tries, puk_tries)?;
    Ok(())
}

/// What the operator is told after a PIN care action succeeded (CLI and window alike).
pub fn done_message(action: AuditAction) -> &'static str {
    match action {
        AuditAction::PinChange => "PIN changed.",
        AuditAction::PukChange => "PUK changed.",
        AuditAction::PinUnblock => "PIN unblocked and set.",
        AuditAction::PinSetRetries => {
            "Try counters set; PIN and PUK are back to the factory values — change them now."
        }
        AuditAction::CardReset => {
            "The card is blank again: PIN 123456, PUK 12345678, factory management key. Enrol it again."
        }
        other => other.as_str(),
    }
}

/// What a reset destroys, said plainly before the operator confirms it.
pub const RESET_WARNING: &str = "Resetting deletes every key and certificate on the card, sets the PIN, PUK \
     and management key back to the factory values and gives the card a new identity. Gateways will no longer \
     accept it until it is enrolled again. This cannot be undone.";

/// The text the operator must type to reset the card in `reader`.
pub fn reset_confirmation(reader: &str) -> String {
    format!("RESET {reader}")
}

/// Reset a card whose PIN and PUK are both blocked, after the typed confirmation.
pub fn reset<T: Transport>(transport: T, confirmation: &str) -> Result<(), PinCareError> {
    let expected = reset_confirmation(transport.reader());
    if confirmation.trim() != expected {
        return Err(PinCareError::Confirmation { expected });
    }
    let mut s = PivSession::open(transport)?;
    if s.pin_status(PinReference::Pin)? != PinStatus::Blocked {
        return Err(PinCareError::NotBlocked);
    }
    s.reset_card()?;
    Ok(())
}
