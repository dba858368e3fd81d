//! `cardstation backup --out FILE` and `--reinit`: keeping the station's records
//! safe, and starting afresh only when told to.

use std::path::PathBuf;

use clap::Args;

use cardstation::app::station::Station;
use cardstation::config::Paths;
use cardstation::store::Store;

use super::output::{print_json, say, ErrorCode, Failure};

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// The copy to write (a new file; an existing one is never overwritten).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// A consistent copy of the station database, safe while the window runs.
pub fn backup(args: &BackupArgs, paths: Paths) -> Result<(), Failure> {
    let station = Station::open(paths)?;
    station.store.backup_to(&args.out)?;
    let check = Store::integrity_of(&args.out)?;
    if check != "ok" {
        return Err(Failure::new(
            ErrorCode::StationDatabase,
            format!(
                "the copy {} fails its integrity check: {check}",
                args.out.display()
            ),
        ));
    }
    if args.json {
        print_json(&serde_json::json!({"ok": true, "backup": args.out}));
    } else {
        say!(
            "Backed up the station database to {} (integrity ok).",
            args.out.display()
        );
        say!(
            "To restore: stop Cardstation, then copy it to {}",
            station.store.path().display()
        );
    }
    Ok(())
}

/// `--reinit`: an empty database in place of a lost one, saying what is gone.
pub fn reinit(paths: &Paths) -> Result<(), Failure> {
    let done = Store::reinit(&paths.database(), &[paths.site_secret()])?;
    eprintln!(
        "Started a new, empty station database at {}.",
        done.database.display()
    );
    eprintln!(
        "Not in it, from before: the enrollment records, the audit trail, uploads and revocations \
         that were still queued for the console, and the trust bundle (run `cardstation trust sync`)."
    );
    eprintln!("The site secret was kept: cards enrolled before can still be managed.");
    for kept in &done.kept {
        eprintln!("The old file was kept as {}", kept.display());
    }
    Ok(())
}
