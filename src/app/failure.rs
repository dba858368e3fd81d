//! The station's error vocabulary as the workflows use it: [`ErrorCode`], [`Coded`]
//! and [`Failure`] live in [`crate::error_code`] (below every layer); the codes of the
//! workflows' own errors are given here.

pub use crate::error_code::{Coded, ErrorCode, Failure};

impl Coded for crate::app::site_keys::SiteSecretError {
    fn code(&self) -> ErrorCode {
        ErrorCode::SiteSecret
    }
}

impl Coded for crate::app::station::StationError {
    fn code(&self) -> ErrorCode {
        use crate::app::station::StationError;
        match self {
            StationError::Config(e) => e.code(),
            StationError::Store(e) => e.code(),
            StationError::SiteSecret(e) => e.code(),
            StationError::DataDir { .. } => ErrorCode::Station,
        }
    }
}
