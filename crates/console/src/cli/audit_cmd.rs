//! `audit [--verify]`: the console's hash-chained audit trail.

use cardstation_console::storage;
use cardstation_pki::certificate::format_unix;

use super::{open_store, print_json, shown, ConsoleAt};

pub async fn run(at: ConsoleAt, verify: bool, json: bool) -> Result<(), String> {
    let store = open_store(&at).await?;
    let rows = store.audit().await.map_err(|e| e.to_string())?;
    if verify {
        return match storage::verify_audit(&rows) {
            Ok(n) => {
                println!("Audit trail intact: {n} rows, hash chain verified.");
                Ok(())
            }
            Err(why) => Err(format!("the audit trail is broken: {why}")),
        };
    }
    if json {
        return print_json(&rows);
    }
    for r in rows {
        println!(
            "{:>6}  {}  {:<16} {:<15} {} {}",
            r.seq,
            format_unix(r.at),
            shown(&r.actor),
            r.action,
            shown(&r.subject),
            shown(&r.detail)
        );
    }
    Ok(())
}
