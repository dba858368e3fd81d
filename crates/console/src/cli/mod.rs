//! The console's administration commands, one file per command group; each works
//! on the console's database directly (it takes effect while `serve` runs).

pub mod audit_cmd;
pub mod bundle_cmd;
pub mod ca_cmd;
pub mod cards_cmd;
pub mod events_cmd;
pub mod identity_cmd;
pub mod serve_cmd;

use std::path::{Path, PathBuf};

use cardstation_console::storage::{self, Database, Store};
use cardstation_console::{self as console_server, setup};

/// Which console an administration command works on (the same as `serve`'s).
#[derive(clap::Args)]
pub struct ConsoleAt {
    /// The console's data directory.
    #[arg(long)]
    pub data: PathBuf,
    /// The console's database, if not the one `serve` finds in DATA.
    #[arg(long, value_parser = parse_database)]
    pub database: Option<Database>,
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub fn parse_database(s: &str) -> Result<Database, String> {
    Database::parse(s).map_err(|e| e.to_string())
}

pub async fn open_store(at: &ConsoleAt) -> Result<Store, String> {
    let db = console_server::resolve_database(&at.data, at.database.as_ref())
        .map_err(|e| e.to_string())?;
    if let Database::Sqlite(path) = &db {
        if !path.is_file() {
            return Err(format!(
                "{} does not exist: is {} a console's data directory (start `serve` once)?",
                path.display(),
                at.data.display()
            ));
        }
    }
    storage::open(&db)
        .await
        .map_err(|e| format!("console database {db}: {e}"))
}

pub fn console_files(data: &Path) -> Result<setup::ConsoleFiles, String> {
    if !data.join(setup::CA_CERT).is_file() {
        return Err(format!(
            "{} holds no console (no {}); start `serve` once to create it",
            data.display(),
            setup::CA_CERT
        ));
    }
    setup::ensure(data).map_err(|e| e.to_string())
}

/// Text from a station, a gateway or a card, fit for the administrator's terminal:
/// control characters (escape sequences among them) are shown escaped, never sent.
pub fn shown(s: &str) -> String {
    s.chars()
        .flat_map(|c| -> Box<dyn Iterator<Item = char>> {
            if c.is_control() {
                Box::new(c.escape_unicode())
            } else {
                Box::new(std::iter::once(c))
            }
        })
        .collect()
}

/// [`shown`] of an optional field, `-` when absent.
pub fn shown_or_dash(s: Option<&str>) -> String {
    s.map_or_else(|| "-".to_string(), shown)
}

/// Pretty JSON on standard output (JSON escapes control characters itself).
pub fn print_json<T: serde::Serialize>(v: &T) -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| e.to_string())?
    );
    Ok(())
}

/// A fingerprint as people paste it (upper case, colons) in the console's form.
pub fn fingerprint_arg(fp: &str) -> Result<String, String> {
    let fp = fp.trim().to_ascii_lowercase().replace(':', "");
    if cardstation_protocol::messages::is_fingerprint(&fp) {
        Ok(fp)
    } else {
        Err("give the SHA-256 fingerprint: 64 hex digits".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let evil = "CN=a\u{1b}[2J\u{7}b\nc";
        let out = shown(evil);
        assert!(!out.chars().any(char::is_control), "{out:?}");
        assert!(out.contains("\\u{1b}"), "{out:?}");
        assert_eq!(shown("Grüße, gw-17"), "Grüße, gw-17");
    }
}
