//! `serve`'s announcement and `migrate`'s report.

use std::net::SocketAddr;

use cardstation_console::migrate;
use cardstation_console::setup;
use cardstation_console::storage::Database;

/// What `serve` prints once it listens: where its files are, and its address.
pub fn announce(addr: SocketAddr, files: &setup::ConsoleFiles, database: &Database) {
    if files.created {
        println!("Created the console's identity in {}:", files.dir.display());
    } else {
        println!("Console files in {}:", files.dir.display());
    }
    for (what, name) in [
        ("CA certificate (server and stations)", setup::CA_CERT),
        ("station client certificate", setup::STATION_CERT),
        ("station client key", setup::STATION_KEY),
        ("trust bundle public key", setup::BUNDLE_PUB),
    ] {
        println!("  {what:<38} {}", files.path(name).display());
    }
    println!("  {:<38} {database}", "records");
    println!("listening on https://{addr}");
}

/// Move every record from `from` to `to`, and say what was moved and checked.
pub async fn migrate(from: Database, to: Database) -> Result<(), String> {
    let report = migrate::migrate(&from, &to)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "Moved {} certificates (trust bundle version {}) from {from} to {to}.",
        report.records, report.bundle_version
    );
    println!(
        "Also moved {} gateway credential(s), {} gateway event(s), {} station audit anchor(s).",
        report.gateways, report.events, report.anchors
    );
    println!(
        "Checked: {} records on both sides, SHA-256 of all records {}.",
        report.records, report.digest
    );
    Ok(())
}
