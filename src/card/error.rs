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
    #[error("PC/SC error on \"{reader}\": {source}")]
    Pcsc {
        reader: String,
        #[source]
        source: pcsc::Error,
    },
    #[error("virtual card: {0}")]
    Virtual(String),
}

impl CardError {
    /// Map a PC/SC error for `reader` to the error an operator can act on.
    pub fn from_pcsc(reader: &str, err: pcsc::Error) -> Self {
        let reader = reader.to_string();
        match err {
            pcsc::Error::NoService | pcsc::Error::ServiceStopped => CardError::ServiceUnavailable,
            pcsc::Error::NoReadersAvailable => CardError::NoReaders,
            pcsc::Error::NoSmartcard => CardError::NoCard { reader },
            pcsc::Error::SharingViolation => CardError::ReaderBusy { reader },
            pcsc::Error::RemovedCard => CardError::CardRemoved { reader },
            pcsc::Error::ResetCard => CardError::CardReset { reader },
            pcsc::Error::UnresponsiveCard | pcsc::Error::UnpoweredCard => {
                CardError::CardMute { reader }
            }
            pcsc::Error::ReaderUnavailable | pcsc::Error::UnknownReader => {
                CardError::ReaderRemoved { reader }
            }
            source => CardError::Pcsc { reader, source },
        }
    }

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
            CardError::Pcsc { .. } => "pcsc",
            CardError::Virtual(_) => "virtual-card",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcsc_errors_map_to_actionable_errors() {
        let cases = [
            (pcsc::Error::NoService, "pcsc-service-unavailable"),
            (pcsc::Error::NoReadersAvailable, "no-readers"),
            (pcsc::Error::SharingViolation, "reader-busy"),
            (pcsc::Error::RemovedCard, "card-removed"),
            (pcsc::Error::NoSmartcard, "no-card"),
            (pcsc::Error::UnresponsiveCard, "card-mute"),
            (pcsc::Error::ReaderUnavailable, "reader-removed"),
        ];
        for (err, code) in cases {
            let mapped = CardError::from_pcsc("R", err);
            assert_eq!(mapped.code(), code);
            // Every message tells the operator something to do, not a bare code.
            assert!(mapped.to_string().len() > 40, "{mapped}");
        }
    }
}
