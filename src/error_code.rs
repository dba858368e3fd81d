//! One error vocabulary for the station: every failure an operator can meet has an
//! [`ErrorCode`] (stable, kebab-case in JSON and scripts; the window branches on the enum)
//! and a [`Failure`] carries it with the message that says what to do. The CLI and the
//! window report the same `Failure` for the same problem.
//!
//! It sits below every layer of the station (`app`, `console`, `store` name their
//! errors' codes with it), so no layer reaches up to another for it. Each error type
//! implements [`Coded`] beside its definition; the types of other crates (card, PIV,
//! console client) here or in the module that uses them.

use std::fmt;

use serde::Serialize;

use cardstation_card::CardError;
use cardstation_piv::PivError;

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $text:literal,)*) => {
        /// What went wrong, as a stable code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, for documentation and tests.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The stable text of the code (JSON output, audit rows, exit reports).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $text,)*
                }
            }
        }
    };
}

error_codes! {
    // The reader and the card (card layer, PC/SC).
    PcscServiceUnavailable = "pcsc-service-unavailable",
    NoReaders = "no-readers",
    ReaderNotFound = "reader-not-found",
    ReaderAmbiguous = "reader-ambiguous",
    NoCard = "no-card",
    ReaderBusy = "reader-busy",
    CardRemoved = "card-removed",
    CardReset = "card-reset",
    CardMute = "card-mute",
    ReaderRemoved = "reader-removed",
    MalformedResponse = "malformed-response",
    Encoding = "encoding",
    ReaderError = "reader-error",
    /// A card job ran past its time limit.
    CardTimeout = "card-timeout",
    // The PIV application.
    NotPiv = "not-piv",
    WrongPin = "wrong-pin",
    Blocked = "blocked",
    PinFormat = "pin-format",
    ManagementKeyRejected = "management-key-rejected",
    ManagementKeyAlgorithmUnknown = "management-key-algorithm-unknown",
    CardNotAuthentic = "card-not-authentic",
    NotAuthorized = "not-authorized",
    NoSpace = "no-space",
    CardStatus = "card-status",
    ManagementKey = "management-key",
    Unsupported = "unsupported",
    ResetRefused = "reset-refused",
    // Enrollment, replacement, PIN care.
    Certificate = "certificate",
    NoCertificate = "no-certificate",
    BadFingerprint = "bad-fingerprint",
    Subject = "subject",
    SlotInUse = "slot-in-use",
    /// The site accepts only attested keys and the card cannot attest.
    AttestationRequired = "attestation-required",
    PinRequired = "pin-required",
    CertificateTooBig = "certificate-too-big",
    ManagementKeyUnknown = "management-key-unknown",
    SelfTestFailed = "self-test-failed",
    Cancelled = "cancelled",
    InvalidRequest = "invalid-request",
    BadReason = "bad-reason",
    UnknownCertificate = "unknown-certificate",
    /// A search for the card to replace matched several active cards.
    CardAmbiguous = "card-ambiguous",
    /// A search for the card to replace matched no active card.
    NoMatchingCard = "no-matching-card",
    /// A PIN or PUK could not be read or has the wrong form.
    Pin = "pin",
    LastTry = "last-try",
    Confirmation = "confirmation",
    NotBlocked = "not-blocked",
    /// The spot check could not be set up (trust bundle key, issuing CA).
    VerifySetup = "verify-setup",
    // The console and the trust bundle.
    ConsoleNotConfigured = "console-not-configured",
    ConsoleSettings = "console-settings",
    ConsoleUnreachable = "console-unreachable",
    ConsoleTls = "console-tls",
    ConsoleTimeout = "console-timeout",
    ConsoleRejected = "console-rejected",
    ConsoleServerError = "console-server-error",
    ConsoleMalformed = "console-malformed",
    BundleBadSignature = "bundle-bad-signature",
    BundleMalformed = "bundle-malformed",
    BundleKeyNotSet = "bundle-key-not-set",
    BundleRollback = "bundle-rollback",
    /// The console's bundle history differs from the one held (a restored backup).
    BundleFork = "bundle-fork",
    /// The console started a new chain; an operator must confirm it.
    BundleResetOffered = "bundle-reset-offered",
    /// The stored trust bundle fails its signature or was edited or deleted: run trust sync.
    BundleDamaged = "bundle-damaged",
    Outbox = "outbox",
    // The station itself.
    Config = "config",
    Station = "station",
    StationDatabase = "station-database",
    /// The station database is missing or empty although the station was used.
    StationDatabaseLost = "station-database-lost",
    /// `--reinit` was asked for while the database is there.
    StationDatabasePresent = "station-database-present",
    SiteSecret = "site-secret",
    WriteFile = "write-file",
    FileExists = "file-exists",
    ReadFile = "read-file",
    Usage = "usage",
    VirtualCard = "virtual-card",
    Window = "window",
    AuditBroken = "audit-broken",
    /// The local audit trail no longer holds the head the console anchored.
    AuditAnchorMismatch = "audit-anchor-mismatch",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Errors that know their code. Every error type an operator can meet implements it.
pub trait Coded: fmt::Display {
    fn code(&self) -> ErrorCode;
}

/// A failed action: its code and the message that says what happened and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
    /// The command already told the user (its output carries the failure): only the
    /// exit status is left to give.
    #[serde(skip)]
    pub reported: bool,
}

impl Failure {
    pub fn new(code: ErrorCode, message: impl fmt::Display) -> Self {
        Failure {
            code,
            message: message.to_string(),
            reported: false,
        }
    }

    /// A failure the command's own output has already shown.
    pub fn reported(mut self) -> Self {
        self.reported = true;
        self
    }

    /// This failure is `code`.
    pub fn is(&self, code: ErrorCode) -> bool {
        self.code == code
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: Coded> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::new(e.code(), &e)
    }
}

impl Coded for CardError {
    fn code(&self) -> ErrorCode {
        match self {
            CardError::ServiceUnavailable => ErrorCode::PcscServiceUnavailable,
            CardError::NoReaders => ErrorCode::NoReaders,
            CardError::ReaderNotFound { .. } => ErrorCode::ReaderNotFound,
            CardError::ReaderAmbiguous { .. } => ErrorCode::ReaderAmbiguous,
            CardError::NoCard { .. } => ErrorCode::NoCard,
            CardError::ReaderBusy { .. } => ErrorCode::ReaderBusy,
            CardError::CardRemoved { .. } => ErrorCode::CardRemoved,
            CardError::CardReset { .. } => ErrorCode::CardReset,
            CardError::CardMute { .. } => ErrorCode::CardMute,
            CardError::ReaderRemoved { .. } => ErrorCode::ReaderRemoved,
            CardError::Malformed(_) => ErrorCode::MalformedResponse,
            CardError::Encoding(_) => ErrorCode::Encoding,
            CardError::Backend { .. } => ErrorCode::ReaderError,
        }
    }
}

impl Coded for PivError {
    fn code(&self) -> ErrorCode {
        match self {
            PivError::Card(e) => Coded::code(e),
            PivError::NotPiv(_) => ErrorCode::NotPiv,
            PivError::WrongPin { .. } | PivError::WrongPinCountUnknown(_) => ErrorCode::WrongPin,
            PivError::Blocked(_) => ErrorCode::Blocked,
            PivError::PinFormat { .. } => ErrorCode::PinFormat,
            PivError::ManagementKeyRejected => ErrorCode::ManagementKeyRejected,
            PivError::ManagementKeyAlgorithmUnknown => ErrorCode::ManagementKeyAlgorithmUnknown,
            PivError::CardNotAuthentic => ErrorCode::CardNotAuthentic,
            PivError::NotAuthorized { .. } => ErrorCode::NotAuthorized,
            PivError::NoSpace { .. } => ErrorCode::NoSpace,
            PivError::Status { .. } => ErrorCode::CardStatus,
            PivError::Malformed { .. } => ErrorCode::MalformedResponse,
            PivError::Key(_) => ErrorCode::ManagementKey,
            PivError::Unsupported(_) => ErrorCode::Unsupported,
            PivError::ResetRefused => ErrorCode::ResetRefused,
        }
    }
}

impl Coded for crate::store::StoreError {
    fn code(&self) -> ErrorCode {
        use crate::store::StoreError;
        match self {
            StoreError::Lost { .. } => ErrorCode::StationDatabaseLost,
            StoreError::NotLost { .. } => ErrorCode::StationDatabasePresent,
            _ => ErrorCode::StationDatabase,
        }
    }
}

impl Coded for crate::config::ConfigError {
    fn code(&self) -> ErrorCode {
        ErrorCode::Config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cardstation_card::apdu::StatusWord;
    use cardstation_piv::PinReference;

    #[test]
    fn codes_are_unique_and_kebab_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} twice");
            assert!(
                text.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{text}"
            );
        }
    }

    /// The card and PIV crates name their errors for their own users (the gateway);
    /// the station's vocabulary must say the same words for them.
    #[test]
    fn lower_layers_use_the_same_words() {
        let card = [
            CardError::ServiceUnavailable,
            CardError::NoReaders,
            CardError::NoCard { reader: "R".into() },
            CardError::CardRemoved { reader: "R".into() },
            CardError::Malformed("x".into()),
            CardError::Backend {
                reader: "R".into(),
                detail: "x".into(),
            },
        ];
        for e in &card {
            assert_eq!(Coded::code(e).as_str(), e.code());
        }
        let piv = [
            PivError::WrongPin {
                which: PinReference::Pin,
                retries: 2,
            },
            PivError::Blocked(PinReference::Puk),
            PivError::NotPiv(StatusWord(0x6A82)),
            PivError::ManagementKeyRejected,
            PivError::ResetRefused,
            PivError::Card(CardError::CardReset { reader: "R".into() }),
        ];
        for e in &piv {
            assert_eq!(Coded::code(e).as_str(), e.code());
        }
    }

    #[test]
    fn failures_serialize_their_code_as_text() {
        let f = Failure::from(CardError::CardRemoved { reader: "R".into() });
        assert!(f.is(ErrorCode::CardRemoved));
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["code"], "card-removed");
    }
}
