//! `cardstation audit verify|export|list`: the tamper-evident trail of operator actions.

use std::path::PathBuf;

use clap::Subcommand;

use cardstation::app::station::Station;
use cardstation::config::Paths;
use cardstation::console::ConsoleClient;
use cardstation::store::{AnchorCheck, AuditVerdict};
use cardstation_pki::certificate::format_unix;

use super::output::{print_json, say, ErrorCode, Failure};

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the hash chain: any edited, deleted or reordered row is found.
    Verify {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Write the trail as CSV (to a file, or standard output).
    Export {
        /// CSV output (the only format).
        #[arg(long)]
        csv: bool,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Show rows, newest last; `--search` filters on any column.
    List {
        #[arg(long)]
        search: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: &AuditCommand, paths: Paths) -> Result<(), Failure> {
    let station = Station::open(paths)?;
    match cmd {
        AuditCommand::Verify { json } => {
            let verdict = station.store.verify_audit()?;
            let anchor = match verdict {
                AuditVerdict::Intact { .. } => compare_with_console(&station),
                AuditVerdict::Broken { .. } => None,
            };
            // A trail that lost anchored rows is a failure: its JSON is the error alone.
            let anchor_lost = matches!(
                &anchor,
                Some(ConsoleAnchor::Compared { check, .. }) if !matches!(check, AnchorCheck::Holds { .. })
            );
            if *json && !anchor_lost {
                let mut v = serde_json::to_value(&verdict).unwrap_or_default();
                if let (Some(obj), Some(a)) = (v.as_object_mut(), &anchor) {
                    obj.insert("anchor".into(), serde_json::to_value(a).unwrap_or_default());
                }
                print_json(&v);
            }
            match verdict {
                AuditVerdict::Intact { rows } => {
                    if !json {
                        say!("Audit trail intact: {rows} rows, every row follows the one before.");
                    }
                    anchor_outcome(anchor, *json)
                }
                AuditVerdict::Broken { row_id, reason } => Err(Failure::new(
                    ErrorCode::AuditBroken,
                    format!("the audit trail was tampered with at row {row_id}: {reason}"),
                )),
            }
        }
        AuditCommand::Export { csv: _, out } => {
            let rows = station.store.audit_rows()?;
            let sink: Box<dyn std::io::Write> = match out {
                Some(path) => Box::new(std::fs::File::create(path).map_err(|e| {
                    Failure::new(
                        ErrorCode::WriteFile,
                        format!("cannot write {}: {e}", path.display()),
                    )
                })?),
                None => Box::new(std::io::stdout()),
            };
            let mut w = csv::Writer::from_writer(sink);
            let to_stdout = out.is_none();
            let csv_err = |e: csv::Error| {
                if let (true, csv::ErrorKind::Io(io)) = (to_stdout, e.kind()) {
                    super::output::exit_on_output_error(io);
                }
                Failure::new(ErrorCode::WriteFile, format!("CSV: {e}"))
            };
            w.write_record([
                "id",
                "time",
                "operator",
                "station",
                "action",
                "subject",
                "outcome",
                "details",
                "prev_hash",
                "hash",
            ])
            .map_err(csv_err)?;
            for r in rows {
                w.write_record([
                    r.id.to_string(),
                    format_unix(r.at),
                    r.operator,
                    r.station_id,
                    r.action,
                    r.subject,
                    r.outcome,
                    r.details,
                    r.prev_hash,
                    r.hash,
                ])
                .map_err(csv_err)?;
            }
            w.flush().map_err(|e| {
                if to_stdout {
                    super::output::exit_on_output_error(&e);
                }
                Failure::new(ErrorCode::WriteFile, format!("CSV: {e}"))
            })?;
            Ok(())
        }
        AuditCommand::List {
            search,
            limit,
            json,
        } => {
            let rows = station.store.audit_rows()?;
            let needle = search.as_deref().map(str::to_lowercase);
            let mut hits: Vec<_> = rows
                .into_iter()
                .filter(|r| {
                    needle.as_ref().is_none_or(|n| {
                        [&r.operator, &r.action, &r.subject, &r.outcome, &r.details]
                            .iter()
                            .any(|f| f.to_lowercase().contains(n))
                    })
                })
                .collect();
            let skip = hits.len().saturating_sub(*limit);
            hits.drain(..skip);
            if *json {
                print_json(&hits);
                return Ok(());
            }
            for r in hits {
                say!(
                    "#{:<5} {} {:<10} {:<11} {:<13} {}",
                    r.id,
                    format_unix(r.at),
                    r.operator,
                    r.action,
                    r.outcome,
                    r.subject
                );
            }
            Ok(())
        }
    }
}

/// What the console's anchor says about the local trail.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "console")]
enum ConsoleAnchor {
    /// Compared with the head the console holds (received at `received_at`).
    Compared {
        received_at: i64,
        hash: String,
        #[serde(flatten)]
        check: AnchorCheck,
    },
    /// The console holds no anchor for this station yet.
    None,
    /// The console could not be asked (the local check stands alone).
    Unreachable { error: String },
}

/// Ask the configured console for this station's anchor; `None` without a console.
fn compare_with_console(station: &Station) -> Option<ConsoleAnchor> {
    station.config.console.url.as_ref()?;
    let client = match ConsoleClient::new(&station.config.console) {
        Ok(c) => c,
        Err(e) => {
            return Some(ConsoleAnchor::Unreachable {
                error: e.to_string(),
            })
        }
    };
    Some(match client.audit_anchor() {
        Ok(None) => ConsoleAnchor::None,
        Ok(Some(a)) => match station.store.audit_holds(a.rows, &a.hash) {
            Ok(check) => ConsoleAnchor::Compared {
                received_at: a.received_at,
                hash: a.hash,
                check,
            },
            Err(e) => ConsoleAnchor::Unreachable {
                error: e.to_string(),
            },
        },
        Err(e) => ConsoleAnchor::Unreachable {
            error: e.to_string(),
        },
    })
}

/// Say what the anchor showed; a trail that lost or changed anchored rows fails.
fn anchor_outcome(anchor: Option<ConsoleAnchor>, json: bool) -> Result<(), Failure> {
    let lost = |what: String| {
        Failure::new(
            ErrorCode::AuditAnchorMismatch,
            format!(
                "{what}: rows were removed or rewritten after the console anchored them. Keep this copy for investigation and restore the station database from its backup (README: Station records); then the console administrator re-anchors it (cardstation-console station reset-anchor <station>)"
            ),
        )
    };
    match anchor {
        None => Ok(()),
        Some(ConsoleAnchor::None) => {
            if !json {
                say!("The console holds no anchor for this station yet (it is sent with the next delivery).");
            }
            Ok(())
        }
        Some(ConsoleAnchor::Unreachable { error }) => {
            if !json {
                eprintln!("note: not compared with the console's anchor: {error}");
            }
            Ok(())
        }
        Some(ConsoleAnchor::Compared {
            received_at,
            hash,
            check,
        }) => match check {
            AnchorCheck::Holds { rows, .. } => {
                if !json {
                    say!(
                        "Anchored at the console on {}: row {rows} matches, nothing before it was removed or changed.",
                        format_unix(received_at)
                    );
                }
                Ok(())
            }
            AnchorCheck::RowsMissing { rows, local_rows } => Err(lost(format!(
                "the console anchored this station's audit trail at {rows} rows on {}, but only {local_rows} are here",
                format_unix(received_at)
            ))),
            AnchorCheck::Rewritten { rows, .. } => Err(lost(format!(
                "the console anchored this station's audit trail with row {rows} hashing to {hash} on {}, but row {rows} here hashes differently",
                format_unix(received_at)
            ))),
        },
    }
}
