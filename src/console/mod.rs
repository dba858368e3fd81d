//! The station's side of the management console: the outbox that delivers uploads
//! and revocations exactly once, and the trust bundle cache. The HTTPS client is the
//! one the gateway uses too (`cardstation-console-client`).

pub mod outbox;
pub mod trust;

/// The console client, as `cardstation::console::client` (the path it always had).
pub use cardstation_console_client as client;
pub use cardstation_console_client::{ConsoleClient, ConsoleError};

use crate::error_code::{Coded, ErrorCode};

impl Coded for ConsoleError {
    fn code(&self) -> ErrorCode {
        match self {
            ConsoleError::NotConfigured => ErrorCode::ConsoleNotConfigured,
            ConsoleError::Settings(_) => ErrorCode::ConsoleSettings,
            ConsoleError::Unreachable { .. } => ErrorCode::ConsoleUnreachable,
            ConsoleError::Tls { .. } => ErrorCode::ConsoleTls,
            ConsoleError::Timeout(_) => ErrorCode::ConsoleTimeout,
            ConsoleError::Rejected { .. } => ErrorCode::ConsoleRejected,
            ConsoleError::ServerError { .. } => ErrorCode::ConsoleServerError,
            ConsoleError::Malformed(_) => ErrorCode::ConsoleMalformed,
        }
    }
}
