//! The PC/SC backend: readers and card connections through the `pcsc` crate, PC/SC
//! errors mapped to the card layer's operator errors, and the reader watcher
//! (SCardGetStatusChange with the PnP pseudo reader: no timer polling).

mod reader;
pub mod watcher;

pub use reader::*;
