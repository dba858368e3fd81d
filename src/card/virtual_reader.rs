//! The in-process virtual card as a `Transport`: the built-in demo reader and fast tests.

use std::sync::Arc;

use super::error::CardError;
use super::transport::Transport;
use super::virtual_card::VirtualCard;

/// Name under which the built-in demo card appears when no real reader is attached.
pub const DEMO_READER_NAME: &str = "Cardstation demo card (virtual)";

#[derive(Clone)]
pub struct VirtualReader {
    card: Arc<VirtualCard>,
    name: String,
}

impl VirtualReader {
    pub fn new(card: Arc<VirtualCard>, name: impl Into<String>) -> Self {
        VirtualReader {
            card,
            name: name.into(),
        }
    }

    pub fn card(&self) -> &Arc<VirtualCard> {
        &self.card
    }
}

impl Transport for VirtualReader {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        self.card
            .transmit(apdu)
            .map_err(|e| CardError::Virtual(e.to_string()))
    }
    fn reader(&self) -> &str {
        &self.name
    }
    fn atr(&self) -> Vec<u8> {
        self.card.atr()
    }
}
