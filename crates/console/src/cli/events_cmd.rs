//! `events`: what gateways reported, newest first.

use cardstation_console::storage;
use cardstation_pki::certificate::format_unix;

use super::{open_store, print_json, shown, ConsoleAt};

pub async fn run(at: ConsoleAt, query: storage::EventQuery, json: bool) -> Result<(), String> {
    if query
        .fingerprint
        .as_deref()
        .is_some_and(|f| !cardstation_protocol::messages::is_fingerprint(f))
    {
        return Err("give the SHA-256 fingerprint: 64 lower-case hex digits".into());
    }
    if query.limit == 0 || query.limit > storage::MAX_EVENT_QUERY {
        return Err(format!("--limit must be 1 to {}", storage::MAX_EVENT_QUERY));
    }
    let store = open_store(&at).await?;
    let rows = store.events(&query).await.map_err(|e| e.to_string())?;
    if json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        println!("No gateway events.");
        return Ok(());
    }
    println!(
        "{:<23}  {:<16} {:<6} {:<16} {:<24} REASONS",
        "DECIDED", "GATEWAY", "", "CERTIFICATE", "READER"
    );
    for r in rows {
        let e = &r.event;
        let fp = e.fingerprint.as_deref().map_or("-".to_string(), |f| {
            format!("{}…", f.chars().take(12).collect::<String>())
        });
        let reasons = if e.reasons.is_empty() {
            "-".to_string()
        } else {
            e.reasons.join(",")
        };
        println!(
            "{:<23}  {:<16} {:<6} {:<16} {:<24} {}",
            format_unix(e.at),
            shown(&r.gateway),
            e.decision.as_str(),
            fp,
            shown(&e.reader),
            shown(&reasons)
        );
    }
    Ok(())
}
