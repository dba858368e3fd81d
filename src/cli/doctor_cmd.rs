//! `cardstation doctor`: what is wrong with this station, reader, card or console link.

use std::path::PathBuf;

use clap::Args;

use cardstation::app::doctor::{diagnose, write_bundle, DoctorReport, Level};
use cardstation::app::station::Station;
use cardstation::config::Paths;

use super::output::{print_json, say, ErrorCode, Failure};

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Check only the readers whose name contains this.
    #[arg(long, short)]
    pub reader: Option<String>,
    /// Also write everything (findings, card reports, APDU traces, recent audit rows,
    /// outbox) to this file for a technician. It holds no PIN, PUK or key.
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    /// Show the APDU exchanges of the card checks.
    #[arg(long)]
    pub trace: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// Exit 0 when nothing failed, 1 otherwise.
pub fn run(args: &DoctorArgs, paths: Paths) -> Result<i32, Failure> {
    let station = Station::open(paths)?;
    let report = diagnose(&station, args.reader.as_deref());
    if let Some(path) = &args.bundle {
        write_bundle(path, &station, &report).map_err(|e| Failure::new(ErrorCode::WriteFile, e))?;
    }
    if args.json {
        print_json(&report);
    } else {
        print_human(&report, args.trace);
        if let Some(path) = &args.bundle {
            say!(
                "Diagnostic bundle written to {} (no secrets in it).",
                path.display()
            );
        }
    }
    Ok(if report.worst() == Level::Fail { 1 } else { 0 })
}

fn print_human(report: &DoctorReport, trace: bool) {
    for f in &report.findings {
        let mark = match f.level {
            Level::Ok => "ok  ",
            Level::Info => "info",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        say!("{mark} [{}] {}", f.area, f.what);
        if !f.todo.is_empty() && f.level != Level::Ok {
            say!("       → {}", f.todo);
        }
    }
    if trace {
        for (reader, t) in &report.traces {
            say!("APDU trace, {reader}:");
            for e in &t.entries {
                say!("{e}");
            }
        }
    }
}
