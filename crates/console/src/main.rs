//! `cardstation-console`: the reference management console.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use cardstation_console::storage::Database;
use cardstation_console::{self as console_server, migrate, setup, ServeOptions};

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
}

fn parse_database(s: &str) -> Result<Database, String> {
    Database::parse(s).map_err(|e| e.to_string())
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
                .block_on(console_server::serve(opts, announce))
                .map_err(|e| e.to_string())
        }
        Command::Migrate { from, to } => runtime
            .block_on(migrate::migrate(&from, &to))
            .map(|report| {
                println!(
                    "Moved {} certificates (trust bundle version {}) from {from} to {to}.",
                    report.records, report.bundle_version
                );
                println!(
                    "Checked: {} records on both sides, SHA-256 of all records {}.",
                    report.records, report.digest
                );
            })
            .map_err(|e| e.to_string()),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn announce(addr: SocketAddr, files: &setup::ConsoleFiles, database: &Database) {
    if files.created {
        println!("Created the console's identity in {}:", files.dir.display());
    } else {
        println!("Console files in {}:", files.dir.display());
    }
    for (what, name) in [
        ("CA certificate (server and stations)", setup::CA_CERT),
        ("station client certificate", setup::STATION_CERT),
        ("station client key", setup::STATION_KEY),
        ("trust bundle public key", setup::BUNDLE_PUB),
    ] {
        println!("  {what:<38} {}", files.path(name).display());
    }
    println!("  {:<38} {database}", "records");
    println!("listening on https://{addr}");
}
