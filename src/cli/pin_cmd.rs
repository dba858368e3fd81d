//! `cardstation pin …`: PIN care for a card holder at the desk. PINs and PUKs are
//! read from standard input, one per line, never from the command line.

use cardstation::store::AuditAction;
use std::io::BufRead;

use clap::{Args, Subcommand};
use zeroize::Zeroizing;

use cardstation::app::card_source::CardSource;
use cardstation::app::pin_care::{self, PinCareError, PinReport};
use cardstation::app::station::Station;
use cardstation::config::Paths;
use cardstation_piv::{Pin, PinStatus};

use cardstation::app::failure::Coded;

use super::output::{print_json, say, ErrorCode, Failure};

#[derive(Args, Debug)]
pub struct PinArgs {
    /// Reader: the exact name or a part that matches exactly one reader.
    #[arg(long, short, global = true, default_value = "")]
    pub reader: String,
    /// Allow spending the last PIN/PUK try.
    #[arg(long, global = true)]
    pub last_try: bool,
    /// Machine-readable output.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: PinCommand,
}

#[derive(Subcommand, Debug)]
pub enum PinCommand {
    /// PIN tries left (and PUK tries where the card tells).
    Status,
    /// Change the PIN. Standard input: current PIN, new PIN.
    Change,
    /// Change the PUK. Standard input: current PUK, new PUK.
    ChangePuk,
    /// Unblock the PIN with the PUK. Standard input: PUK, new PIN.
    Unblock,
    /// Set the PIN and PUK try counters (cards with the YubiKey extension); PIN and PUK
    /// return to the factory values. Standard input: current PIN.
    SetRetries {
        #[arg(long)]
        pin_tries: u8,
        #[arg(long)]
        puk_tries: u8,
    },
    /// Reset a card whose PIN and PUK are both blocked to blank. Destroys every key
    /// and certificate. Needs --confirm "RESET <reader name>".
    Reset {
        #[arg(long)]
        confirm: Option<String>,
    },
}

fn read_secret_lines(n: usize) -> Result<Vec<Zeroizing<String>>, Failure> {
    let stdin = std::io::stdin();
    let mut lines = Vec::new();
    for _ in 0..n {
        let mut line = Zeroizing::new(String::new());
        stdin.lock().read_line(&mut line).map_err(|e| {
            Failure::new(ErrorCode::Pin, format!("cannot read standard input: {e}"))
        })?;
        let trimmed = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
        if trimmed.is_empty() {
            return Err(Failure::new(
                ErrorCode::Pin,
                format!("expected {n} line(s) on standard input (see --help), got fewer"),
            ));
        }
        lines.push(trimmed);
    }
    Ok(lines)
}

/// What a PIN care command did on the card: its audit action and its result.
type PinAction = (AuditAction, Result<(), PinCareError>);

pub fn run(args: &PinArgs, paths: Paths) -> Result<(), Failure> {
    if args.reader.is_empty() {
        return Err(Failure::new(
            ErrorCode::Usage,
            "give the reader with --reader",
        ));
    }
    let station = Station::open(paths)?;
    let source = CardSource::pcsc(&args.reader)?;
    let name = source.name();
    // A fresh card session: PIN state and tries left read as after insertion.
    let done = source.with_fresh_card(|tx| -> Result<Option<PinAction>, Failure> {
        Ok(Some(match &args.command {
            PinCommand::Status => {
                let report = pin_care::status(tx)?;
                print_status(&report, args.json);
                return Ok(None);
            }
            PinCommand::Change => {
                let l = read_secret_lines(2)?;
                let (old, new) = (Pin::card_pin(&l[0])?, Pin::card_pin(&l[1])?);
                (
                    AuditAction::PinChange,
                    pin_care::change(tx, &old, &new, args.last_try),
                )
            }
            PinCommand::ChangePuk => {
                let l = read_secret_lines(2)?;
                let (old, new) = (Pin::puk(&l[0])?, Pin::puk(&l[1])?);
                (
                    AuditAction::PukChange,
                    pin_care::change(tx, &old, &new, args.last_try),
                )
            }
            PinCommand::Unblock => {
                let l = read_secret_lines(2)?;
                let (puk, new) = (Pin::puk(&l[0])?, Pin::card_pin(&l[1])?);
                (
                    AuditAction::PinUnblock,
                    pin_care::unblock_pin(tx, &puk, &new, args.last_try),
                )
            }
            PinCommand::SetRetries {
                pin_tries,
                puk_tries,
            } => {
                if !(1..=15).contains(pin_tries) || !(1..=15).contains(puk_tries) {
                    return Err(Failure::new(
                        ErrorCode::Usage,
                        "try counters must be between 1 and 15",
                    ));
                }
                let l = read_secret_lines(1)?;
                let pin = Pin::card_pin(&l[0])?;
                let secret = station.site_secret()?;
                (
                    AuditAction::PinSetRetries,
                    pin_care::set_retries(
                        tx,
                        &pin,
                        *pin_tries,
                        *puk_tries,
                        &station.store,
                        &secret,
                    ),
                )
            }
            PinCommand::Reset { confirm } => {
                let expected = pin_care::reset_confirmation(&name);
                let Some(confirm) = confirm else {
                    return Err(Failure::new(
                        ErrorCode::Confirmation,
                        format!(
                            "{} To go ahead, repeat with --confirm \"{expected}\"",
                            pin_care::RESET_WARNING
                        ),
                    ));
                };
                (AuditAction::CardReset, pin_care::reset(tx, confirm))
            }
        }))
    })??;
    let Some((action, result)) = done else {
        return Ok(());
    };
    let outcome = match &result {
        Ok(()) => "ok".to_string(),
        Err(e) => Coded::code(e).to_string(),
    };
    let recorded = station.store.audit(
        &station.operator,
        &station.station_id,
        action,
        &name,
        &outcome,
        &serde_json::json!({"error": result.as_ref().err().map(|e| e.to_string())}),
    );
    // An action missing from the audit trail is a failure of the action.
    match (result, recorded) {
        (Err(e), Ok(())) => return Err(e.into()),
        (Err(e), Err(r)) => {
            return Err(Failure::new(
                Coded::code(&e),
                format!("{e} (and it could not be written to the audit trail: {r})"),
            ))
        }
        (Ok(()), Err(r)) => {
            return Err(Failure::new(
                ErrorCode::StationDatabase,
                format!(
                "{action} was done on the card but could not be written to the audit trail: {r}"
            ),
            ))
        }
        (Ok(()), Ok(())) => {}
    }
    if args.json {
        print_json(&serde_json::json!({"ok": true, "action": action}));
    } else {
        say!("{}", pin_care::done_message(action));
    }
    Ok(())
}

fn print_status(r: &PinReport, json: bool) {
    if json {
        print_json(r);
        return;
    }
    match r.pin {
        PinStatus::Verified => say!("PIN  verified in this session"),
        PinStatus::Retries(1) => say!("PIN  1 try left — the next wrong PIN blocks it"),
        PinStatus::Retries(n) => say!("PIN  {n} tries left"),
        PinStatus::Blocked => {
            say!("PIN  BLOCKED — unblock it with the PUK: cardstation pin unblock")
        }
    }
    match r.puk_retries {
        Some(0) => say!(
            "PUK  BLOCKED — with the PIN blocked too, only a reset helps: cardstation pin reset"
        ),
        Some(n) => say!("PUK  {n} tries left"),
        None => say!("PUK  tries left not reported by this card"),
    }
}
