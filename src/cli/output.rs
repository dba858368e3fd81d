//! How the CLI reports success and failure: words for people, JSON for scripts.

use serde::Serialize;

pub use cardstation::app::failure::{ErrorCode, Failure};

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
