//! What the station, the console and the gateway agree on: the console's wire
//! messages and the signed trust bundle (signing and verification).

pub mod bundle;
pub mod messages;
