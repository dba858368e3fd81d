//! Card transport: APDUs, channels, PC/SC readers, the reader watcher, traces
//! and the virtual card. Nothing here knows about PIV.

pub mod apdu;
pub mod atr;
pub mod channel;
pub mod error;
pub mod pcsc_reader;
pub mod tlv;
pub mod trace;
pub mod transport;
pub mod virtual_card;
pub mod virtual_reader;
pub mod watcher;

pub use channel::CardChannel;
pub use error::CardError;
pub use transport::Transport;
