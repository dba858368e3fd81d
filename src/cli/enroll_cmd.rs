//! `cardstation enroll`.

use std::io::BufRead;
use std::ops::ControlFlow;
use std::path::PathBuf;

use clap::Args;

use cardstation::app::card_source::CardSource;
use cardstation::app::enroll::{enroll, EnrollOutcome, EnrollRequest, UploadOptions};
use cardstation::app::station::Station;
use cardstation::config::Paths;
use cardstation_piv::{Pin, Slot};
use cardstation_pki::certificate::format_unix;

use super::card_cmds::write_certificate_file;
use super::console_cmds::{console_refusal, refused_by_console, report_sync, sync_quietly};
use super::output::{print_json, say, ErrorCode, Failure};

#[derive(Args, Debug)]
pub struct EnrollArgs {
    /// Reader: the exact name or a part that matches exactly one reader.
    #[arg(long, short)]
    pub reader: String,
    /// PIV slot for the key (9e needs no PIN at the gateway; 9a/9c/9d need the PIN).
    /// Default: [enroll] slot in the config, else 9e.
    #[arg(long)]
    pub slot: Option<Slot>,
    /// Certificate subject, e.g. "CN=gateway-17,O=Acme". `{serial}` and `{guid}` are filled in.
    #[arg(long)]
    pub subject: Option<String>,
    /// Validity in days, 1 to 36500. Default: [enroll] days in the config, else 365.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=36_500))]
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
    /// Queue the certificate for the management console and try to deliver it.
    #[arg(long)]
    pub upload: bool,
    /// Who or what holds the card ("gw-17 Plant B", "J. Smith"): recorded with the
    /// enrollment, sent to the console and searchable there.
    #[arg(long)]
    pub label: Option<String>,
    /// Machine-readable output.
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
            .map_err(|e: String| Failure::new(ErrorCode::Config, e))?,
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
        upload: args.upload.then(UploadOptions::default),
        label: args.label.clone(),
    };
    let issuer = station.certificate_issuer()?;
    let ctx = station.enroll_context(&secret, issuer.as_ref());

    if let Some(out) = &args.out {
        check_writable(out)?;
    }
    let json = args.json;
    let outcome = CardSource::pcsc(&args.reader)?.with_card(|t| {
        enroll(t, &request, &ctx, &mut |step| {
            if !json {
                eprintln!("… {step}");
            }
            ControlFlow::Continue(())
        })
    })??;
    // The card is enrolled whatever happens to the file: say so, and how to get the file.
    let file_error = args.out.as_ref().and_then(|out| {
        write_certificate_file(out, &outcome.certificate_der, true)
            .err()
            .map(|f| {
                format!(
                    "{} The card IS enrolled; write the file with `cardstation export`.",
                    f.message
                )
            })
    });
    if let Some(e) = &file_error {
        eprintln!("warning: {e}");
    }
    if args.upload {
        // The upload was queued with the enrollment record; deliver it now.
        let report = sync_quietly(&station);
        if json {
            let refused = console_refusal(&report);
            print_json(&serde_json::json!({
                "ok": refused.is_none(), "enrollment": outcome, "file": args.out,
                "file_error": file_error, "upload": report, "error": refused,
            }));
            return refused.map_or(Ok(()), |f| Err(f.reported()));
        }
        print_outcome(&outcome, args);
        report_sync(&report, false, Some(&outcome.fingerprint));
        return refused_by_console(&report, false);
    }
    if json {
        print_json(
            &serde_json::json!({"ok": true, "enrollment": outcome, "file": args.out, "file_error": file_error}),
        );
    } else {
        print_outcome(&outcome, args);
    }
    Ok(())
}

/// Refuse an output path that cannot be written before the card is changed.
fn check_writable(path: &std::path::Path) -> Result<(), Failure> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let writable = std::fs::metadata(&dir)
        .map(|m| m.is_dir() && !m.permissions().readonly())
        .unwrap_or(false);
    if !writable {
        return Err(Failure::new(ErrorCode::WriteFile,
            format!("cannot write {}: the folder {} does not exist or is read-only. Nothing was done to the card", path.display(), dir.display()),
        ));
    }
    if path.is_dir() {
        return Err(Failure::new(
            ErrorCode::WriteFile,
            format!("{} is a folder, not a file", path.display()),
        ));
    }
    Ok(())
}

fn print_outcome(outcome: &EnrollOutcome, args: &EnrollArgs) {
    say!(
        "Enrolled: card in \"{}\", slot {}",
        outcome.reader,
        outcome.slot
    );
    say!("  subject     {}", outcome.subject);
    if let Some(l) = &outcome.label {
        say!("  label       {l}");
    }
    say!("  valid until {}", format_unix(outcome.not_after));
    say!("  CHUID GUID  {}", outcome.chuid_guid);
    say!("  key         {}", outcome.key_proof.describe());
    say!(
        "  mgmt key    {} (derived from the site secret)",
        outcome.management_key
    );
    say!("  {} APDUs, {} ms", outcome.apdus, outcome.millis);
    if let Some(out) = &args.out {
        say!("  written to  {}", out.display());
    }
    say!("SHA-256 {}", outcome.fingerprint);
}

pub fn read_pin() -> Result<Pin, Failure> {
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin().lock().read_line(&mut line).map_err(|e| {
        Failure::new(
            ErrorCode::Pin,
            format!("cannot read the PIN from standard input: {e}"),
        )
    })?;
    let pin = line.trim_end_matches(['\r', '\n']);
    if pin.is_empty() {
        return Err(Failure::new(
            ErrorCode::Pin,
            "--pin-stdin was given but standard input held no PIN",
        ));
    }
    Pin::card_pin(pin).map_err(Failure::from)
}
