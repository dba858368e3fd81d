//! The one error type of console requests.

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConsoleError {
    #[error("no console is configured. Set [console] url, ca, client_cert and client_key in the config file")]
    NotConfigured,
    #[error("console settings: {0}")]
    Settings(String),
    #[error("the console at {url} cannot be reached ({detail}). Check the network and that the console is running")]
    Unreachable { url: String, detail: String },
    #[error("the TLS connection to the console failed: {detail}. Check that [console] ca is the console's CA and that this client's certificate ([console] client_cert) was issued by it")]
    Tls { detail: String },
    #[error("the console did not answer in time ({0})")]
    Timeout(String),
    #[error("the console refused the request ({status} {code}): {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the console failed ({status}): {message}. It will be tried again")]
    ServerError { status: u16, message: String },
    #[error("the console sent an answer that cannot be read: {0}")]
    Malformed(String),
}

impl ConsoleError {
    /// Worth retrying later (network, timeouts, server trouble), as opposed to a
    /// refusal or a settings problem that needs a person.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ConsoleError::Unreachable { .. }
                | ConsoleError::Timeout(_)
                | ConsoleError::ServerError { .. }
        )
    }

    /// The caller's own settings are at fault (its credential, its CA, its files):
    /// nothing the console will take until they change.
    pub fn is_settings(&self) -> bool {
        matches!(
            self,
            ConsoleError::NotConfigured | ConsoleError::Settings(_) | ConsoleError::Tls { .. }
        )
    }
}
