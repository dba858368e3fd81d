//! The station's error vocabulary as the workflows use it: [`ErrorCode`], [`Coded`]
//! and [`Failure`] live in [`crate::error_code`] (below every layer); the codes of the
//! workflows' own errors are given here or beside the error (`StationError`).

pub use crate::error_code::{Coded, ErrorCode, Failure};

impl Coded for crate::app::site_keys::SiteSecretError {
    fn code(&self) -> ErrorCode {
        ErrorCode::SiteSecret
    }
}
