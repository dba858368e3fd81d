//! The headless command line: every operator action, scriptable, with `--json`.

mod audit_cmd;
mod backup_cmd;
mod card_cmds;
mod cards_cmd;
mod console_cmds;
mod doctor_cmd;
mod enroll_cmd;
mod output;
mod pin_cmd;
mod renew_cmd;
mod replace_cmd;
mod verify_cmd;
mod virtual_card_cmd;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use cardstation::config::{Config, Paths};
use cardstation::ui::ReaderMode;

pub use output::{ErrorCode, Failure};

#[derive(Parser, Debug)]
#[command(
    name = "cardstation",
    version,
    about = "Smart-card enrollment station: enrol PIV cards for IoT gateways, export and check them",
    long_about = "Cardstation enrols PIV smart cards: a P-256 key generated on the card, a certificate \
                  signed by the card and written back, checked with a fresh challenge before the card \
                  is reported enrolled.\n\nWith no subcommand it opens the station window."
)]
pub struct Cli {
    /// Station database and state (default: the platform data directory).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML settings (default: cardstation.toml in the platform config directory).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// More log output on stderr (-v info, -vv debug, -vvv APDU trace; secrets are always redacted).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Window only: offer just the built-in demo card, even when readers are attached.
    #[arg(long)]
    pub demo: bool,
    /// Start an empty station database in place of a lost one (refused while it is present).
    #[arg(long, global = true)]
    pub reinit: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List every reader, whether a card is in it, its ATR and PIV identity.
    Readers(JsonFlag),
    /// Show a card's PIV status: slots, certificates, PIN retries, management key.
    Card(ReaderArgs),
    /// Enrol a blank PIV card: key on the card, certificate, self-test, record.
    Enroll(enroll_cmd::EnrollArgs),
    /// Renew the certificate on an enrolled card, same key, before it ends: the old
    /// one is retired at the console once the new one passed its self-test.
    Renew(renew_cmd::RenewArgs),
    /// Write the certificate of a slot to a file (PEM or DER, by extension).
    Export(card_cmds::ExportArgs),
    /// List this station's enrollment records, newest first.
    Enrollments(card_cmds::EnrollmentsArgs),
    /// Spot check: the gateway's challenge-response and policy, with the verdict and reasons.
    /// Exit code 0 only on PASS (3: signature valid, trust unknown).
    Verify(verify_cmd::VerifyArgs),
    /// Queue a certificate for the console and try to deliver it.
    Upload(console_cmds::UploadArgs),
    /// The console outbox: what waits for delivery.
    #[command(subcommand)]
    Outbox(console_cmds::OutboxCommand),
    /// The console's certificates (every station's), newest first: find a card by its
    /// holder's label, subject, card serial, CHUID GUID, fingerprint prefix or station.
    Cards(cards_cmd::CardsArgs),
    /// Revoke a certificate on the console (queued when the console is away).
    Revoke(console_cmds::RevokeArgs),
    /// The console's trust bundle (allow-list and revocation list) kept for offline use.
    #[command(subcommand)]
    Trust(console_cmds::TrustCommand),
    /// Replace a card (lost, stolen, damaged, expiring) or renew it: revoke the old
    /// certificate (queued if the console is away), enrol the new card, link both.
    Replace(replace_cmd::ReplaceArgs),
    /// Field diagnostics: PC/SC, readers, card, console (DNS/TCP/TLS/HTTP), trust bundle,
    /// outbox — each finding with what to do. Exit 1 when something fails.
    Doctor(doctor_cmd::DoctorArgs),
    /// PIN care: status, change PIN/PUK, unblock with the PUK, try counters, reset a blocked card.
    Pin(pin_cmd::PinArgs),
    /// The audit trail: verify the hash chain, export as CSV, search.
    #[command(subcommand)]
    Audit(audit_cmd::AuditCommand),
    /// A consistent copy of the station database (safe while the window runs).
    Backup(backup_cmd::BackupArgs),
    /// Serve a virtual PIV card to pcscd through vsmartcard-vpcd (tests, demos).
    VirtualCard(virtual_card_cmd::VirtualCardArgs),
}

#[derive(Args, Debug)]
pub struct JsonFlag {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ReaderArgs {
    /// Reader: the exact name or a part that matches exactly one reader.
    #[arg(long, short)]
    pub reader: String,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// Run a parsed command line. Returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    init_logging(cli.verbose);
    // TLS with the console uses ring; make it the process default too.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let paths = match Paths::resolve(cli.data_dir.clone(), cli.config.clone()) {
        Ok(p) => p,
        Err(e) => return output::report(&Failure::new(ErrorCode::Config, e.to_string()), false),
    };
    // Every command checks the settings, even those that need none of them:
    // a typo in the config file is reported at once, not at the next enrollment.
    if let Err(e) = Config::load(&paths.config_file, paths.config_explicit).and_then(|c| {
        c.enroll
            .slot
            .parse::<cardstation_piv::Slot>()
            .map(|_| ())
            .map_err(|message| cardstation::config::ConfigError::Parse {
                path: paths.config_file.clone(),
                message: format!("[enroll] slot: {message}"),
            })
    }) {
        return output::report(&Failure::new(ErrorCode::Config, e.to_string()), false);
    }
    if cli.reinit {
        if let Err(f) = backup_cmd::reinit(&paths) {
            return output::report(&f, false);
        }
    }
    let Some(command) = cli.command else {
        return open_window(paths, cli.demo);
    };
    let (json, result) = match command {
        Command::Readers(a) => (a.json, card_cmds::readers(a.json)),
        Command::Card(a) => (a.json, card_cmds::card(&a)),
        Command::Enroll(a) => (a.json, enroll_cmd::run(&a, paths)),
        Command::Renew(a) => (a.json, renew_cmd::run(&a, paths)),
        Command::Export(a) => (a.json, card_cmds::export(&a, paths)),
        Command::Enrollments(a) => (a.json, card_cmds::enrollments(&a, paths)),
        Command::Verify(a) => {
            return match verify_cmd::run(&a, paths) {
                Ok(code) => code,
                Err(f) => output::report(&f, a.json),
            }
        }
        Command::Upload(a) => (a.json, console_cmds::upload(&a, paths)),
        Command::Outbox(c) => (
            matches!(
                c,
                console_cmds::OutboxCommand::List { json: true }
                    | console_cmds::OutboxCommand::Sync { json: true }
                    | console_cmds::OutboxCommand::Retry { json: true, .. }
            ),
            console_cmds::outbox_cmd(&c, paths),
        ),
        Command::Cards(a) => (a.json, cards_cmd::run(&a, paths)),
        Command::Revoke(a) => (a.json, console_cmds::revoke(&a, paths)),
        Command::Trust(c) => (
            matches!(
                c,
                console_cmds::TrustCommand::Sync { json: true, .. }
                    | console_cmds::TrustCommand::Show { json: true }
            ),
            console_cmds::trust_cmd(&c, paths),
        ),
        Command::Doctor(a) => {
            return match doctor_cmd::run(&a, paths) {
                Ok(code) => code,
                Err(f) => output::report(&f, a.json),
            }
        }
        Command::Replace(a) => (a.json, replace_cmd::run(&a, paths)),
        Command::Pin(a) => (a.json, pin_cmd::run(&a, paths)),
        Command::Audit(c) => (
            matches!(
                c,
                audit_cmd::AuditCommand::Verify { json: true }
                    | audit_cmd::AuditCommand::List { json: true, .. }
            ),
            audit_cmd::run(&c, paths),
        ),
        Command::Backup(a) => (a.json, backup_cmd::backup(&a, paths)),
        Command::VirtualCard(a) => (false, virtual_card_cmd::run(&a)),
    };
    match result {
        Ok(()) => 0,
        Err(failure) => output::report(&failure, json),
    }
}

fn open_window(paths: Paths, demo: bool) -> i32 {
    let config = match Config::load(&paths.config_file, paths.config_explicit) {
        Ok(c) => c,
        Err(e) => return output::report(&Failure::new(ErrorCode::Config, e.to_string()), false),
    };
    // A lost station database is refused before the window opens, with the remedy.
    if let Err(cardstation::app::station::StationError::Store(
        e @ cardstation::store::StoreError::Lost { .. },
    )) = cardstation::app::station::Station::with_config(paths.clone(), config.clone())
    {
        return output::report(&e.into(), false);
    }
    let mode = if demo {
        ReaderMode::DemoOnly
    } else {
        ReaderMode::Pcsc
    };
    match cardstation::ui::run(paths, config, mode) {
        Ok(()) => 0,
        Err(e) => output::report(&Failure::new(ErrorCode::Window, e), false),
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "debug,cardstation::apdu=trace",
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // The virtual card's firmware logs command bytes (PINs, keys included): never show them.
    for target in cardstation_virtual_card::LOG_TARGETS_TO_SILENCE {
        if let Ok(directive) = format!("{target}=off").parse() {
            filter = filter.add_directive(directive);
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
