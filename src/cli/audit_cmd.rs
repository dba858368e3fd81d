//! `cardstation audit verify|export|list`: the tamper-evident trail of operator actions.

use std::path::PathBuf;

use clap::Subcommand;

use cardstation::app::station::Station;
use cardstation::config::Paths;
use cardstation::store::AuditVerdict;
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
            if *json {
                print_json(&verdict);
            }
            match verdict {
                AuditVerdict::Intact { rows } => {
                    if !json {
                        say!("Audit trail intact: {rows} rows, every row follows the one before.");
                    }
                    Ok(())
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
