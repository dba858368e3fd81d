//! `cardstation renew`: a new certificate for the key on the card, before the old
//! one ends; the old one is retired at the console only after the new one passed
//! its self-test.

use std::ops::ControlFlow;

use clap::Args;

use cardstation::app::card_source::CardSource;
use cardstation::app::renew::{renew, RenewRequest};
use cardstation::app::station::Station;
use cardstation::config::Paths;
use cardstation_piv::Slot;
use cardstation_pki::certificate::format_unix;

use super::console_cmds::{console_refusal, refused_by_console, report_sync, sync_quietly};
use super::enroll_cmd::read_pin;
use super::output::{print_json, say, ErrorCode, Failure};

#[derive(Args, Debug)]
pub struct RenewArgs {
    /// Reader: the exact name or a part that matches exactly one reader.
    #[arg(long, short)]
    pub reader: String,
    /// The slot whose certificate is renewed. Default: [enroll] slot, else 9e.
    #[arg(long)]
    pub slot: Option<Slot>,
    /// Validity of the new certificate in days (card-signed; under CA issuance the
    /// console's profile decides). Default: [enroll] days.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub days: Option<u32>,
    /// Read the card's PIN from the first line of standard input (slots 9a/9c/9d).
    #[arg(long)]
    pub pin_stdin: bool,
    /// Make a new key on the card for the new certificate (the old key is replaced;
    /// the old certificate stays valid at gateways, but no card can use it any more).
    #[arg(long)]
    pub new_key: bool,
    /// Keep it at this station: queue nothing for the console.
    #[arg(long)]
    pub offline: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &RenewArgs, paths: Paths) -> Result<(), Failure> {
    let station = Station::open(paths)?;
    let secret = station.site_secret()?;
    let slot = match args.slot {
        Some(s) => s,
        None => station
            .config
            .enroll
            .slot
            .parse()
            .map_err(|e: String| Failure::new(ErrorCode::Config, e))?,
    };
    let pin = if args.pin_stdin {
        Some(read_pin()?)
    } else {
        None
    };
    let upload = !args.offline && station.config.console.url.is_some();
    let request = RenewRequest {
        slot,
        valid_days: args.days.unwrap_or(station.config.enroll.days),
        pin,
        upload,
        new_key: args.new_key,
    };
    let issuer = station.certificate_issuer()?;
    let ctx = station.enroll_context(&secret, issuer.as_ref());
    let json = args.json;
    let outcome = CardSource::pcsc(&args.reader)?.with_card(|t| {
        renew(t, &request, &ctx, &mut |step| {
            if !json {
                eprintln!("… {step}");
            }
            ControlFlow::Continue(())
        })
    })??;
    let report = upload.then(|| sync_quietly(&station));
    let refused = report.as_ref().and_then(console_refusal);
    if json {
        print_json(&serde_json::json!({
            "ok": refused.is_none(), "renewal": outcome, "upload": report, "error": refused,
        }));
        return refused.map_or(Ok(()), |f| Err(f.reported()));
    }
    say!(
        "Renewed: card in \"{}\", slot {} ({})",
        outcome.reader,
        outcome.slot,
        if outcome.new_key {
            "a new key made on the card"
        } else {
            "same key"
        }
    );
    say!("  subject     {}", outcome.subject);
    say!("  valid until {}", format_unix(outcome.not_after));
    say!(
        "  old         {} (valid until {}; gateways accept it until then)",
        outcome.old_fingerprint,
        format_unix(outcome.old_not_after)
    );
    say!("SHA-256 {}", outcome.fingerprint);
    match &report {
        Some(report) => {
            report_sync(report, false, Some(&outcome.fingerprint));
            refused_by_console(report, false)
        }
        None => Ok(()),
    }
}
