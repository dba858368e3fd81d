//! PIN and PUK values: validated, padded as PIV wants, zeroized, never printed.

use std::fmt;

use zeroize::Zeroizing;

use super::error::PivError;
use super::slot::PinReference;

pub const DEFAULT_PIN: &str = "123456";
pub const DEFAULT_PUK: &str = "12345678";

#[derive(Clone)]
pub struct Pin {
    which: PinReference,
    padded: Zeroizing<[u8; 8]>,
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(<redacted>)", self.which.name())
    }
}

impl Pin {
    /// A PIN (6–8 characters) or PUK (6–8 characters; most cards use 8).
    pub fn new(which: PinReference, value: &str) -> Result<Self, PivError> {
        let bytes = value.as_bytes();
        let min = 6;
        if bytes.len() < min || bytes.len() > 8 || bytes.contains(&0xFF) {
            return Err(PivError::PinFormat { which, min });
        }
        let mut padded = Zeroizing::new([0xFFu8; 8]);
        padded[..bytes.len()].copy_from_slice(bytes);
        Ok(Pin { which, padded })
    }

    pub fn card_pin(value: &str) -> Result<Self, PivError> {
        Pin::new(PinReference::Pin, value)
    }

    pub fn puk(value: &str) -> Result<Self, PivError> {
        Pin::new(PinReference::Puk, value)
    }

    pub fn which(&self) -> PinReference {
        self.which
    }

    /// The 8-byte field sent to the card (0xFF padded).
    pub fn padded(&self) -> &[u8; 8] {
        &self.padded
    }

    pub fn is_factory_default(&self) -> bool {
        let default = match self.which {
            PinReference::Pin => DEFAULT_PIN,
            PinReference::Puk => DEFAULT_PUK,
        };
        Pin::new(self.which, default).is_ok_and(|d| d.padded[..] == self.padded[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_padded_and_checked() {
        let p = Pin::card_pin("123456").unwrap();
        assert_eq!(p.padded(), b"123456\xFF\xFF");
        assert!(p.is_factory_default());
        assert!(Pin::card_pin("12345").is_err());
        assert!(Pin::card_pin("123456789").is_err());
        assert!(!Pin::card_pin("654321").unwrap().is_factory_default());
        assert_eq!(format!("{p:?}"), "PIN(<redacted>)");
    }
}
