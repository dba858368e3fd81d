//! The management console's HTTPS client, one for the station and the gateway alike
//! (blocking; it runs on worker threads and in command-line tools).
//!
//! - [`ConsoleConfig`]: the `[console]` block both programs read, and its checks.
//! - [`ConsoleClient`]: mutual TLS (rustls on ring; the server certificate is always
//!   verified against the configured CA, there is no switch to turn that off), the
//!   timeouts, the conditional trust-bundle fetch (ETag, `?since=` deltas,
//!   `bundle_url`, read as a stream that stops at a cap) and every request the two
//!   programs make.
//! - [`ConsoleError`]: one error type. Its messages say what happened and what to
//!   check; what that means for the caller ("queued items are kept", "deciding on
//!   the last good bundle") is the caller's to add.

mod body;
mod client;
mod error;
mod settings;
mod tls;

pub use client::{ConsoleClient, Fetched};
pub use error::ConsoleError;
pub use settings::{ConsoleConfig, DEFAULT_MAX_BUNDLE_MIB};
pub use tls::{client_name, tls_config};
