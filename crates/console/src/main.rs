//! `cardstation-console`: the reference management console.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use cardstation_console::{self as console_server, setup, ServeOptions};

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
    let Command::Serve {
        data,
        listen,
        bundle_hours,
    } = Cli::parse().command;
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            std::process::exit(1);
        }
    };
    let opts = ServeOptions {
        data,
        listen,
        bundle_validity: Duration::from_secs(bundle_hours.saturating_mul(3600)),
    };
    let result = runtime.block_on(console_server::serve(opts, |addr, files| {
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
        println!("listening on https://{addr}");
    }));
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
