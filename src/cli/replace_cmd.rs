//! `cardstation replace`: revoke the old card's certificate, enrol the new card for
//! the same holder or device, link the two.

use std::ops::ControlFlow;

use clap::Args;

use cardstation::app::card_source::CardSource;
use cardstation::app::enroll::EnrollRequest;
use cardstation::app::replace::{find_old, replace, OldCardMatch, ReplaceRequest};
use cardstation::app::station::Station;
use cardstation::config::Paths;
use cardstation::console::ConsoleClient;
use cardstation_piv::Slot;
use cardstation_protocol::messages::RevocationReason;

use super::cards_cmd::{holder, print_table};
use super::console_cmds::{report_sync, sync_quietly};
use super::enroll_cmd::read_pin;
use super::output::{print_json, say, ErrorCode, Failure};

#[derive(Args, Debug)]
pub struct ReplaceArgs {
    /// Reader holding the new card (or the same card, for a renewal).
    #[arg(long, short)]
    pub reader: String,
    /// The card being replaced: its certificate's SHA-256 fingerprint, or words that
    /// match exactly one active card on the console ("J. Smith", "gw-17 plant").
    #[arg(long)]
    pub old: String,
    /// Label of the new card (default: the old one's).
    #[arg(long)]
    pub label: Option<String>,
    /// Why: lost, stolen, damaged, replaced, expired or unspecified.
    #[arg(long)]
    pub reason: RevocationReason,
    /// Subject for the new certificate (default: the old one's).
    #[arg(long)]
    pub subject: Option<String>,
    /// Slot for a card this station has no record of (default: the old card's slot).
    #[arg(long, default_value = "9e")]
    pub slot: Slot,
    /// Validity in days, 1 to 36500.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub days: u32,
    /// Read the new card's PIN from standard input (slots 9a/9c/9d).
    #[arg(long)]
    pub pin_stdin: bool,
    /// Replace what the new card's slot holds (a renewal onto the same card needs no flag).
    #[arg(long)]
    pub force: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &ReplaceArgs, paths: Paths) -> Result<(), Failure> {
    let station = Station::open(paths)?;
    // Which card: settled before the PIN is read or the card touched.
    let client = ConsoleClient::new(&station.config.console);
    let (old, old_record) = match find_old(client.as_ref().map_err(Clone::clone), &args.old)? {
        OldCardMatch::Fingerprint(fp, record) => (fp, record),
        OldCardMatch::One(r) => {
            if !args.json {
                eprintln!("… the card to replace: {}", holder(&r));
            }
            (r.sha256.clone(), Some(r))
        }
        OldCardMatch::Several(records) => {
            if args.json {
                print_json(&serde_json::json!({"ok": false, "matches": records,
                    "error": {"code": ErrorCode::CardAmbiguous.as_str(),
                              "message": "several active cards match"}}));
                std::process::exit(1);
            }
            say!("Active cards matching {:?}:", args.old);
            print_table(&records);
            return Err(Failure::new(
                ErrorCode::CardAmbiguous,
                format!(
                    "{} active cards match {:?}; nothing was done. Give more words or the fingerprint (--old FP)",
                    records.len(),
                    args.old
                ),
            ));
        }
        OldCardMatch::None => {
            return Err(Failure::new(
                ErrorCode::NoMatchingCard,
                format!(
                    "no active card on the console matches {:?}; nothing was done. Try `cardstation cards --search …`",
                    args.old
                ),
            ))
        }
    };
    let secret = station.site_secret()?;
    let pin = if args.pin_stdin {
        Some(read_pin()?)
    } else {
        None
    };
    let req = ReplaceRequest {
        old_fingerprint: old,
        old_record: old_record.map(|r| *r),
        reason: args.reason,
        subject_override: args.subject.clone(),
        enroll: EnrollRequest {
            slot: args.slot,
            subject_template: String::new(),
            valid_days: args.days,
            pin,
            force: args.force,
            max_object_size: station.config.card.max_object_size,
            upload: Some(Default::default()),
            label: args.label.clone(),
        },
    };
    let issuer = station.certificate_issuer()?;
    let ctx = station.enroll_context(&secret, issuer.as_ref());
    let json = args.json;
    let outcome = CardSource::pcsc(&args.reader)?.with_card(|t| {
        replace(t, &req, &ctx, &mut |step| {
            if !json {
                eprintln!("… {step}");
            }
            ControlFlow::Continue(())
        })
    })??;
    let sync = sync_quietly(&station);
    if json {
        print_json(&serde_json::json!({"ok": true, "replacement": outcome, "sync": sync}));
    } else {
        say!(
            "{} ({}):",
            if outcome.renewal {
                "Renewed"
            } else {
                "Replaced"
            },
            outcome.reason
        );
        say!("  old  {}  revocation queued", outcome.old_fingerprint);
        say!(
            "  new  {}  on the card in \"{}\"",
            outcome.new_fingerprint,
            outcome.enrollment.reader
        );
        report_sync(&sync, false, None);
    }
    Ok(())
}
