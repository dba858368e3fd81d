//! PC/SC readers and card connections through the `pcsc` crate.

use std::ffi::CString;
use std::time::Duration;

use serde::Serialize;

use cardstation_card::{CardError, Transport};

/// Largest response we accept in one transmit (extended APDU maximum + SW).
const RECEIVE_BUFFER: usize = 65_538;

/// What a reader reports about its slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CardPresence {
    Absent,
    Present,
    /// A card is there but another program holds it exclusively.
    InUse,
    /// A card is there but does not answer to reset.
    Mute,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReaderStatus {
    pub name: String,
    #[serde(rename = "presence")]
    pub card: CardPresence,
    #[serde(serialize_with = "cardstation_card::hex_serde::serialize_hex")]
    pub atr: Vec<u8>,
}

/// Map a PC/SC error for `reader` to the card layer's error an operator can act on.
pub fn card_error(reader: &str, err: pcsc::Error) -> CardError {
    let reader = reader.to_string();
    match err {
        pcsc::Error::NoService | pcsc::Error::ServiceStopped => CardError::ServiceUnavailable,
        pcsc::Error::NoReadersAvailable => CardError::NoReaders,
        pcsc::Error::NoSmartcard => CardError::NoCard { reader },
        pcsc::Error::SharingViolation => CardError::ReaderBusy { reader },
        pcsc::Error::RemovedCard => CardError::CardRemoved { reader },
        pcsc::Error::ResetCard => CardError::CardReset { reader },
        pcsc::Error::UnresponsiveCard | pcsc::Error::UnpoweredCard => {
            CardError::CardMute { reader }
        }
        pcsc::Error::ReaderUnavailable | pcsc::Error::UnknownReader => {
            CardError::ReaderRemoved { reader }
        }
        other => CardError::Backend {
            reader,
            detail: format!("PC/SC error 0x{:08X}: {other}", other as u32),
        },
    }
}

/// An established PC/SC context, with errors mapped to operator messages.
pub struct Pcsc {
    ctx: pcsc::Context,
}

impl Pcsc {
    pub fn establish() -> Result<Self, CardError> {
        let ctx = pcsc::Context::establish(pcsc::Scope::User).map_err(|e| card_error("", e))?;
        Ok(Pcsc { ctx })
    }

    pub fn context(&self) -> &pcsc::Context {
        &self.ctx
    }

    /// Reader names; an empty list when none is connected.
    pub fn reader_names(&self) -> Result<Vec<String>, CardError> {
        match self.ctx.list_readers_owned() {
            Ok(names) => Ok(names
                .into_iter()
                .map(|n| n.to_string_lossy().into_owned())
                .collect()),
            Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
            Err(e) => Err(card_error("", e)),
        }
    }

    /// Every reader with the state of its slot, read without connecting to the cards.
    pub fn readers(&self) -> Result<Vec<ReaderStatus>, CardError> {
        let names = self.reader_names()?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut states: Vec<pcsc::ReaderState> = names
            .iter()
            .filter_map(|n| CString::new(n.as_str()).ok())
            .map(|n| pcsc::ReaderState::new(n, pcsc::State::UNAWARE))
            .collect();
        self.ctx
            .get_status_change(Duration::ZERO, &mut states)
            .map_err(|e| card_error("", e))?;
        Ok(states.iter().map(reader_status).collect())
    }

    /// Find a reader by exact name, or by a substring that matches exactly one reader.
    pub fn resolve(&self, wanted: &str) -> Result<String, CardError> {
        let names = self.reader_names()?;
        resolve_name(&names, wanted)
    }

    /// Connect to the card in `reader` (shared; multi-step work takes a transaction).
    pub fn connect(&self, reader: &str) -> Result<PcscCard, CardError> {
        let cname = CString::new(reader).map_err(|_| CardError::ReaderNotFound {
            wanted: reader.to_string(),
            available: String::new(),
        })?;
        let card = self
            .ctx
            .connect(&cname, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
            .map_err(|e| card_error(reader, e))?;
        let atr = card
            .status2_owned()
            .map(|s| s.atr().to_vec())
            .map_err(|e| card_error(reader, e))?;
        Ok(PcscCard {
            card,
            reader: reader.to_string(),
            atr,
        })
    }
}

pub(crate) fn reader_status(state: &pcsc::ReaderState) -> ReaderStatus {
    let ev = state.event_state();
    let card = if ev.contains(pcsc::State::MUTE) {
        CardPresence::Mute
    } else if ev.contains(pcsc::State::PRESENT) {
        if ev.contains(pcsc::State::EXCLUSIVE) {
            CardPresence::InUse
        } else {
            CardPresence::Present
        }
    } else {
        CardPresence::Absent
    };
    let atr = if card == CardPresence::Absent {
        Vec::new()
    } else {
        state.atr().to_vec()
    };
    ReaderStatus {
        name: state.name().to_string_lossy().into_owned(),
        card,
        atr,
    }
}

/// Reader selection rule shared by every command: exact name, else a unique substring.
pub fn resolve_name(names: &[String], wanted: &str) -> Result<String, CardError> {
    if names.is_empty() {
        return Err(CardError::NoReaders);
    }
    if let Some(exact) = names.iter().find(|n| n.as_str() == wanted) {
        return Ok(exact.clone());
    }
    let wanted_lower = wanted.to_lowercase();
    let matches: Vec<&String> = names
        .iter()
        .filter(|n| n.to_lowercase().contains(&wanted_lower))
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(CardError::ReaderNotFound {
            wanted: wanted.to_string(),
            available: names.join(", "),
        }),
        many => Err(CardError::ReaderAmbiguous {
            wanted: wanted.to_string(),
            matches: many
                .iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// A connected card.
pub struct PcscCard {
    card: pcsc::Card,
    reader: String,
    atr: Vec<u8>,
}

impl PcscCard {
    /// Reset the card (a fresh power-up: PIN verification and selections forgotten).
    pub fn reset(&mut self) -> Result<(), CardError> {
        self.card
            .reconnect(
                pcsc::ShareMode::Shared,
                pcsc::Protocols::ANY,
                pcsc::Disposition::ResetCard,
            )
            .map_err(|e| card_error(&self.reader, e))
    }

    /// Begin an exclusive transaction: no other program can interleave commands
    /// until it is dropped (SCardEndTransaction with "leave card").
    ///
    /// When another program reset the card since we connected, PC/SC refuses the
    /// transaction once with "card reset"; we then reconnect (keeping the card as it
    /// is) and begin again, as a fresh connection would. The caller selects its
    /// application inside the transaction, so nothing from before the reset is assumed.
    pub fn transaction(&mut self) -> Result<PcscTransaction<'_>, CardError> {
        if let Err(pcsc::Error::ResetCard) = self.card.transaction().map(drop) {
            tracing::debug!(reader = %self.reader, "card was reset by another program: reconnecting");
            self.card
                .reconnect(
                    pcsc::ShareMode::Shared,
                    pcsc::Protocols::ANY,
                    pcsc::Disposition::LeaveCard,
                )
                .map_err(|e| card_error(&self.reader, e))?;
            if let Ok(status) = self.card.status2_owned() {
                self.atr = status.atr().to_vec();
            }
        }
        let reader = self.reader.clone();
        let atr = self.atr.clone();
        let tx = self
            .card
            .transaction()
            .map_err(|e| card_error(&reader, e))?;
        Ok(PcscTransaction { tx, reader, atr })
    }

    /// Reconnect after the card was reset under us (keeps the card as it is).
    pub fn reconnect(&mut self) -> Result<(), CardError> {
        self.card
            .reconnect(
                pcsc::ShareMode::Shared,
                pcsc::Protocols::ANY,
                pcsc::Disposition::LeaveCard,
            )
            .map_err(|e| card_error(&self.reader, e))
    }
}

fn transmit(card: &pcsc::Card, reader: &str, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
    let mut buf = vec![0u8; RECEIVE_BUFFER];
    card.transmit(apdu, &mut buf)
        .map(|rsp| rsp.to_vec())
        .map_err(|e| card_error(reader, e))
}

impl Transport for PcscCard {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        transmit(&self.card, &self.reader, apdu)
    }
    fn reader(&self) -> &str {
        &self.reader
    }
    fn atr(&self) -> Vec<u8> {
        self.atr.clone()
    }
}

pub struct PcscTransaction<'a> {
    tx: pcsc::Transaction<'a>,
    reader: String,
    atr: Vec<u8>,
}

impl Transport for PcscTransaction<'_> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        transmit(&self.tx, &self.reader, apdu)
    }
    fn reader(&self) -> &str {
        &self.reader
    }
    fn atr(&self) -> Vec<u8> {
        self.atr.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec![
            "Virtual PCD 00 00".to_string(),
            "Virtual PCD 00 01".to_string(),
            "Yubico YubiKey OTP+FIDO+CCID 01 00".to_string(),
        ]
    }

    #[test]
    fn pcsc_errors_map_to_actionable_errors() {
        let cases = [
            (pcsc::Error::NoService, "pcsc-service-unavailable"),
            (pcsc::Error::NoReadersAvailable, "no-readers"),
            (pcsc::Error::SharingViolation, "reader-busy"),
            (pcsc::Error::RemovedCard, "card-removed"),
            (pcsc::Error::NoSmartcard, "no-card"),
            (pcsc::Error::UnresponsiveCard, "card-mute"),
            (pcsc::Error::ReaderUnavailable, "reader-removed"),
            (pcsc::Error::InternalError, "reader-error"),
        ];
        for (err, code) in cases {
            let mapped = card_error("R", err);
            assert_eq!(mapped.code(), code);
            // Every message tells the operator something to do, not a bare code.
            assert!(mapped.to_string().len() > 20, "{mapped}");
        }
    }

    #[test]
    fn exact_name_wins() {
        assert_eq!(
            resolve_name(&names(), "Virtual PCD 00 01").unwrap(),
            "Virtual PCD 00 01"
        );
    }

    #[test]
    fn unique_substring_matches_case_insensitively() {
        assert_eq!(
            resolve_name(&names(), "yubikey").unwrap(),
            "Yubico YubiKey OTP+FIDO+CCID 01 00"
        );
    }

    #[test]
    fn ambiguous_and_missing_names_are_distinct_errors() {
        assert_eq!(
            resolve_name(&names(), "Virtual").unwrap_err().code(),
            "reader-ambiguous"
        );
        assert_eq!(
            resolve_name(&names(), "Gemalto").unwrap_err().code(),
            "reader-not-found"
        );
        assert_eq!(resolve_name(&[], "x").unwrap_err().code(), "no-readers");
    }
}
