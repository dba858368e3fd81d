//! `cardstation enroll`.

use std::io::BufRead;
use std::ops::ControlFlow;
use std::path::PathBuf;

use clap::Args;

use cardstation::app::enroll::{enroll, EnrollContext, EnrollRequest};
use cardstation::app::station::Station;
use cardstation::card::pcsc_reader::Pcsc;
use cardstation::config::Paths;
use cardstation::piv::{Pin, Slot};
use cardstation::pki::certificate::format_unix;

use super::card_cmds::write_certificate_file;
use super::output::{print_json, Failure};

#[derive(Args, Debug)]
pub struct EnrollArgs {
    /// Reader: the exact name or a part that matches exactly one reader.
    #[arg(long, short)]
    pub reader: String,
    /// PIV slot for the key (9e needs no PIN at the gateway; 9a/9c/9d need the PIN).
    #[arg(long)]
    pub slot: Option<Slot>,
    /// Certificate subject, e.g. "CN=gateway-17,O=Acme". `{serial}` and `{guid}` are filled in.
    #[arg(long)]
    pub subject: Option<String>,
    /// Validity in days.
    #[arg(long)]
    pub days: Option<u32>,
    /// Read the card's PIN from the first line of standard input.
    #[arg(long)]
    pub pin_stdin: bool,
    /// Also write the certificate here (`.der`/`.cer`: DER, otherwise PEM).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace a key or certificate already in the slot (destroys it).
    #[arg(long)]
    pub force: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &EnrollArgs, paths: Paths) -> Result<(), Failure> {
    let station = Station::open(paths)?;
    let secret = station.site_secret()?;
    let defaults = &station.config.enroll;
    let slot = match args.slot {
        Some(s) => s,
        None => defaults
            .slot
            .parse()
            .map_err(|e: String| Failure::new("config", e))?,
    };
    let pin = if args.pin_stdin {
        Some(read_pin()?)
    } else {
        None
    };
    let request = EnrollRequest {
        slot,
        subject_template: args
            .subject
            .clone()
            .unwrap_or_else(|| defaults.subject.clone()),
        valid_days: args.days.unwrap_or(defaults.days),
        pin,
        force: args.force,
        max_object_size: station.config.card.max_object_size,
    };
    let ctx = EnrollContext {
        store: &station.store,
        site_secret: &secret,
        operator: &station.operator,
        station_id: &station.station_id,
    };

    let pcsc = Pcsc::establish()?;
    let name = pcsc.resolve(&args.reader)?;
    let mut conn = pcsc.connect(&name)?;
    let json = args.json;
    let outcome = enroll(conn.transaction()?, &request, &ctx, &mut |step| {
        if !json {
            eprintln!("… {step}");
        }
        ControlFlow::Continue(())
    })?;
    if let Some(out) = &args.out {
        write_certificate_file(out, &outcome.certificate_der)?;
    }
    if json {
        print_json(&serde_json::json!({"ok": true, "enrollment": outcome, "file": args.out}));
    } else {
        println!(
            "Enrolled: card in \"{}\", slot {}",
            outcome.reader, outcome.slot
        );
        println!("  subject     {}", outcome.subject);
        println!("  valid until {}", format_unix(outcome.not_after));
        println!("  CHUID GUID  {}", outcome.chuid_guid);
        println!(
            "  mgmt key    {} (derived from the site secret)",
            outcome.management_key
        );
        println!("  {} APDUs, {} ms", outcome.apdus, outcome.millis);
        if let Some(out) = &args.out {
            println!("  written to  {}", out.display());
        }
        println!("SHA-256 {}", outcome.fingerprint);
    }
    Ok(())
}

fn read_pin() -> Result<Pin, Failure> {
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin().lock().read_line(&mut line).map_err(|e| {
        Failure::new(
            "pin",
            format!("cannot read the PIN from standard input: {e}"),
        )
    })?;
    Pin::card_pin(line.trim_end_matches(['\r', '\n'])).map_err(Failure::from)
}
