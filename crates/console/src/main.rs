//! `cardstation-console`: the reference management console.

//! Each command group lives in src/cli/ (as the station's commands do).

mod cli;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use cardstation_console::storage::{self, Database};
use cardstation_console::{self as console_server, admin, ServeOptions};

use cli::bundle_cmd::BundleCommand;
use cli::cards_cmd::CardsCommand;
use cli::identity_cmd::{GatewayCommand, IdentityCommand, StationCommand};
use cli::{parse_database, ConsoleAt};

#[derive(Parser)]
#[command(
    name = "cardstation-console",
    version,
    about = "Reference management console: certificates, revocations and signed trust bundles over mutual TLS"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the console API over HTTPS (mutual TLS) until SIGINT/SIGTERM.
    Serve {
        /// Data directory: SQLite database, CA, server and station identities, bundle key.
        #[arg(long)]
        data: PathBuf,
        /// Address to listen on (port 0 picks a free port and prints it).
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// How long a trust bundle stays valid, in hours.
        #[arg(long, default_value_t = 168)]
        bundle_hours: u64,
        /// Where the records live: sqlite:PATH or postgres://USER@HOST:PORT/NAME
        /// (default: `database` in DATA/console.toml, else sqlite:DATA/console.db).
        #[arg(long, value_parser = parse_database)]
        database: Option<Database>,
    },
    /// Move every record from one console database to another (stop the console first),
    /// then check counts and a hash of the records on both sides.
    Migrate {
        /// The database to read: sqlite:PATH or postgres://…
        #[arg(long, value_parser = parse_database)]
        from: Database,
        /// The empty database to fill: postgres://… or sqlite:PATH
        #[arg(long, value_parser = parse_database)]
        to: Database,
    },
    /// Client credentials of every role: `identity add NAME --role station|gateway`.
    Identity {
        #[command(subcommand)]
        command: IdentityCommand,
    },
    /// Station credentials: one identity per station.
    Station {
        #[command(subcommand)]
        command: StationCommand,
    },
    /// Certificates: find, show, revoke and reinstate (the administrator's, at the console host).
    Cards {
        #[command(subcommand)]
        command: CardsCommand,
    },
    /// Write the current signed trust bundle and the deltas to it as static files
    /// (DIR/trust-bundle.cstb, DIR/deltas/V.cstb) for any web server or CDN; stations
    /// and gateways read them with `bundle_url`. Run it after changes (e.g. from cron).
    Publish {
        #[command(flatten)]
        at: ConsoleAt,
        #[arg(long)]
        out: PathBuf,
        /// How long a newly signed version stays valid, in hours (as `serve`).
        #[arg(long, default_value_t = 168)]
        bundle_hours: u64,
    },
    /// The trust-bundle chain.
    Bundle {
        #[command(subcommand)]
        command: BundleCommand,
    },
    /// Show the console's audit trail (every upload, revocation, reinstatement and station change).
    Audit {
        #[command(flatten)]
        at: ConsoleAt,
        /// Check the hash chain: exit 1 if a row was changed, removed or reordered.
        #[arg(long)]
        verify: bool,
        #[arg(long)]
        json: bool,
    },
    /// Gateway credentials: a gateway may fetch the trust bundle and post events, nothing else.
    Gateway {
        #[command(subcommand)]
        command: GatewayCommand,
    },
    /// The site's issuing CA for card certificates (`issuance = "ca"`).
    Ca {
        #[command(subcommand)]
        command: cli::ca_cmd::CaCommand,
    },
    /// Show what gateways reported (grants and denials), newest first.
    Events {
        #[command(flatten)]
        at: ConsoleAt,
        /// Only the events of this certificate (SHA-256 fingerprint).
        #[arg(long)]
        fingerprint: Option<String>,
        /// Only the events of this gateway.
        #[arg(long)]
        gateway: Option<String>,
        /// Only events decided at or after this time: unix seconds or RFC 3339.
        #[arg(long, value_parser = admin::parse_time)]
        since: Option<i64>,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            std::process::exit(1);
        }
    };
    let result = match Cli::parse().command {
        Command::Serve {
            data,
            listen,
            bundle_hours,
            database,
        } => {
            let opts = ServeOptions {
                data,
                listen,
                bundle_validity: Duration::from_secs(bundle_hours.saturating_mul(3600)),
                database,
            };
            runtime
                .block_on(console_server::serve(opts, cli::serve_cmd::announce))
                .map_err(|e| e.to_string())
        }
        Command::Migrate { from, to } => runtime.block_on(cli::serve_cmd::migrate(from, to)),
        Command::Identity { command } => runtime.block_on(cli::identity_cmd::run(command)),
        Command::Station { command } => runtime.block_on(cli::identity_cmd::station(command)),
        Command::Cards { command } => runtime.block_on(cli::cards_cmd::run(command)),
        Command::Audit { at, verify, json } => {
            runtime.block_on(cli::audit_cmd::run(at, verify, json))
        }
        Command::Publish {
            at,
            out,
            bundle_hours,
        } => runtime.block_on(cli::bundle_cmd::publish(at, out, bundle_hours)),
        Command::Bundle { command } => runtime.block_on(cli::bundle_cmd::run(command)),
        Command::Gateway { command } => runtime.block_on(cli::identity_cmd::gateway(command)),
        Command::Ca { command } => cli::ca_cmd::run(command),
        Command::Events {
            at,
            fingerprint,
            gateway,
            since,
            limit,
            json,
        } => runtime.block_on(cli::events_cmd::run(
            at,
            storage::EventQuery {
                fingerprint,
                gateway,
                since,
                limit,
            },
            json,
        )),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
