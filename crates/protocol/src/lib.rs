//! What the station, the console and the gateway agree on: the console's wire
//! messages, the trust lists and the signed, chained trust bundle.

pub mod bundle;
pub mod messages;
pub mod trust_lists;
