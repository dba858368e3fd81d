//! The in-process virtual card as a `Transport`: the built-in demo reader and fast tests.
//! Like a physical reader, its slot can be emptied and filled: with no card in it,
//! every command fails as a removed card does.

use std::sync::{Arc, Mutex};

use cardstation_card::{CardError, Transport};

use crate::VirtualCard;

/// Name under which the built-in demo card appears when no real reader is attached.
pub const DEMO_READER_NAME: &str = "Cardstation demo card (virtual)";

#[derive(Clone)]
pub struct VirtualReader {
    slot: Arc<Mutex<Option<Arc<VirtualCard>>>>,
    name: String,
}

impl VirtualReader {
    pub fn new(card: Arc<VirtualCard>, name: impl Into<String>) -> Self {
        VirtualReader {
            slot: Arc::new(Mutex::new(Some(card))),
            name: name.into(),
        }
    }

    /// The card in the reader, if any.
    pub fn card(&self) -> Option<Arc<VirtualCard>> {
        self.slot.lock().ok().and_then(|s| s.clone())
    }

    /// Take the card out (commands in flight fail with "card removed").
    pub fn remove(&self) -> Option<Arc<VirtualCard>> {
        self.slot.lock().ok().and_then(|mut s| s.take())
    }

    /// Put a card in; the card is reset as on every insertion.
    pub fn insert(&self, card: Arc<VirtualCard>) {
        let _ = card.reset();
        if let Ok(mut s) = self.slot.lock() {
            *s = Some(card);
        }
    }

    /// Reset the card in the reader, as a fresh insertion does.
    pub fn reset(&self) -> Result<(), CardError> {
        match self.card() {
            Some(card) => card.reset().map_err(|e| self.fault(e)),
            None => Err(CardError::CardRemoved {
                reader: self.name.clone(),
            }),
        }
    }

    fn fault(&self, e: crate::VirtualCardError) -> CardError {
        CardError::Backend {
            reader: self.name.clone(),
            detail: format!("virtual card: {e}"),
        }
    }

    pub fn is_present(&self) -> bool {
        self.card().is_some()
    }
}

impl Transport for VirtualReader {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        let card = self.card().ok_or_else(|| CardError::CardRemoved {
            reader: self.name.clone(),
        })?;
        card.transmit(apdu).map_err(|e| self.fault(e))
    }
    fn reader(&self) -> &str {
        &self.name
    }
    fn atr(&self) -> Vec<u8> {
        self.card().map(|c| c.atr()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CardStorage;

    #[test]
    fn removed_card_fails_like_a_physical_one() {
        let card = Arc::new(VirtualCard::start(CardStorage::Memory).unwrap());
        let mut reader = VirtualReader::new(card, "R");
        let select = hex::decode("00A4040005A000000308").unwrap();
        assert!(reader.transmit(&select).is_ok());
        let card = reader.remove().unwrap();
        assert_eq!(reader.transmit(&select).unwrap_err().code(), "card-removed");
        reader.insert(card);
        assert!(reader.transmit(&select).is_ok());
    }
}
