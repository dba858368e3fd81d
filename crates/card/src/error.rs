//! Transport-level failures, each with a message that tells the operator what to do.

use super::apdu::ApduError;

#[derive(Debug, thiserror::Error)]
pub enum CardError {
    #[error(
        "the PC/SC service is not running or not installed. \
         Install and start it: `sudo apt-get install pcscd && sudo systemctl start pcscd` \
         (or run `pcscd` by hand), then try again"
    )]
    ServiceUnavailable,
    #[error("no smart-card reader is connected. Plug in a reader (or start the virtual card with `cardstation virtual-card`) and try again")]
    NoReaders,
    #[error("no reader matches \"{wanted}\". Readers connected: {available}. Use `cardstation readers` to list them")]
    ReaderNotFound { wanted: String, available: String },
    #[error("\"{wanted}\" matches more than one reader ({matches}). Give more of the reader name")]
    ReaderAmbiguous { wanted: String, matches: String },
    #[error("there is no card in reader \"{reader}\". Insert a card and try again")]
    NoCard { reader: String },
    #[error("reader \"{reader}\" is in use by another program. Close the other program (e.g. a browser or middleware holding the card) and try again")]
    ReaderBusy { reader: String },
    #[error("the card was removed from \"{reader}\" during the operation. Reinsert it and start again; nothing was reported as done")]
    CardRemoved { reader: String },
    #[error(
        "the card in \"{reader}\" was reset by another program during the operation. Start again"
    )]
    CardReset { reader: String },
    #[error("the card in \"{reader}\" does not answer (mute or inserted the wrong way round). Reinsert it; if it stays mute the card is faulty")]
    CardMute { reader: String },
    #[error("reader \"{reader}\" was unplugged. Plug it back in and try again")]
    ReaderRemoved { reader: String },
    #[error("the card sent a malformed response: {0}")]
    Malformed(String),
    #[error("could not encode the command: {0}")]
    Encoding(#[from] ApduError),
    /// Any other failure the backend reports (a PC/SC code, a virtual card fault),
    /// kept as words: the card layer does not depend on any backend's types.
    #[error("reader \"{reader}\": {detail}")]
    Backend { reader: String, detail: String },
}

impl CardError {
    /// A short stable code for JSON output and scripts.
    pub fn code(&self) -> &'static str {
        match self {
            CardError::ServiceUnavailable => "pcsc-service-unavailable",
            CardError::NoReaders => "no-readers",
            CardError::ReaderNotFound { .. } => "reader-not-found",
            CardError::ReaderAmbiguous { .. } => "reader-ambiguous",
            CardError::NoCard { .. } => "no-card",
            CardError::ReaderBusy { .. } => "reader-busy",
            CardError::CardRemoved { .. } => "card-removed",
            CardError::CardReset { .. } => "card-reset",
            CardError::CardMute { .. } => "card-mute",
            CardError::ReaderRemoved { .. } => "reader-removed",
            CardError::Malformed(_) => "malformed-response",
            CardError::Encoding(_) => "encoding",
            CardError::Backend { .. } => "reader-error",
        }
    }
}
