//! How the CLI reports success and failure: words for people, JSON for scripts.

use serde::Serialize;

/// A failed command: a stable code for scripts and a message for the operator.
#[derive(Debug, Serialize)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

impl Failure {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Failure {
            code: code.into(),
            message: message.into(),
        }
    }
}

macro_rules! failure_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Failure {
            fn from(e: $t) -> Self {
                Failure::new(e.code(), e.to_string())
            }
        }
    )*};
}
failure_from!(
    cardstation_card::CardError,
    cardstation_piv::PivError,
    cardstation::app::enroll::EnrollError
);

impl From<cardstation::app::station::StationError> for Failure {
    fn from(e: cardstation::app::station::StationError) -> Self {
        Failure::new("station", e.to_string())
    }
}

impl From<cardstation::store::StoreError> for Failure {
    fn from(e: cardstation::store::StoreError) -> Self {
        Failure::new("station-database", e.to_string())
    }
}

impl From<cardstation::app::site_keys::SiteSecretError> for Failure {
    fn from(e: cardstation::app::site_keys::SiteSecretError) -> Self {
        Failure::new("site-secret", e.to_string())
    }
}

/// Print the failure (stderr for people, stdout JSON for scripts) and return the exit code.
pub fn report(f: &Failure, json: bool) -> i32 {
    if json {
        print_json(&serde_json::json!({"ok": false, "error": f}));
    } else {
        eprintln!("error: {}", f.message);
    }
    1
}

pub fn print_json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: cannot encode output as JSON: {e}"),
    }
}
