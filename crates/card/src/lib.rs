//! The card layer: command and response APDUs, a channel that handles chaining,
//! 61xx/6Cxx and extended length, BER-TLV, ATR decoding, the redacted APDU trace and
//! the `Transport` seam that backends (PC/SC, the virtual card, test doubles) implement.
//!
//! Nothing here knows which backend carries the APDUs or which card application
//! answers them: PC/SC lives in `cardstation-pcsc`, PIV in `cardstation-piv`.

pub mod apdu;
pub mod atr;
pub mod channel;
pub mod error;
pub mod hex_serde;
pub mod tlv;
pub mod trace;
pub mod transport;

pub use channel::CardChannel;
pub use error::CardError;
pub use transport::Transport;
