//! The station's side of the management console: the HTTPS client, the outbox
//! that delivers uploads and revocations exactly once, and the trust bundle cache.

pub mod client;
pub mod outbox;
pub mod trust;

pub use client::{ConsoleClient, ConsoleError};
