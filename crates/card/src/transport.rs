//! The seam between card protocols and the thing that carries APDUs.
//!
//! PIV code talks to a `Transport`; PC/SC, the in-process virtual card and the
//! fault-injecting wrapper used in tests all implement it.

use super::error::CardError;

pub trait Transport {
    /// Send one raw command APDU and return the raw response (data + SW1 SW2).
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError>;

    /// The reader name, for messages.
    fn reader(&self) -> &str;

    /// The card's ATR as reported by the reader.
    fn atr(&self) -> Vec<u8>;
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        (**self).transmit(apdu)
    }
    fn reader(&self) -> &str {
        (**self).reader()
    }
    fn atr(&self) -> Vec<u8> {
        (**self).atr()
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        (**self).transmit(apdu)
    }
    fn reader(&self) -> &str {
        (**self).reader()
    }
    fn atr(&self) -> Vec<u8> {
        (**self).atr()
    }
}
