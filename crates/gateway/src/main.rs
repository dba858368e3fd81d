//! `cardstation-gateway` on the command line: run, check, sync, status.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Serialize;

use cardstation_gateway::action;
use cardstation_gateway::bundle::{Refreshed, SharedTrust};
use cardstation_gateway::config::Config;
use cardstation_gateway::gateway::{self, GatewayError, LogTo};
use cardstation_gateway::queue::{Queue, QueueStatus};
use cardstation_pki::certificate::{format_age, format_unix};
use cardstation_protocol::bundle::TrustStatus;
use cardstation_protocol::messages::Decision;

const DEFAULT_CONFIG: &str = "/etc/cardstation-gateway/gateway.toml";

#[derive(Parser)]
#[command(
    name = "cardstation-gateway",
    version,
    about = "Card authentication for a gateway: the station's check, the console's signed trust bundle, an action per decision"
)]
struct Cli {
    /// The configuration file (TOML).
    #[arg(long, global = true, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Wait for cards on the configured readers; check, decide and act on each one.
    Run,
    /// Check the card in one reader now: prints the decision; exit 0 grant, 1 deny.
    Check {
        /// Reader name (exact, or a unique part of it).
        #[arg(long)]
        reader: String,
        /// Also run the configured on_grant / on_deny action.
        #[arg(long)]
        act: bool,
        #[arg(long)]
        json: bool,
    },
    /// Fetch and verify the trust bundle now, and send the queued events.
    Sync {
        #[arg(long)]
        json: bool,
        /// Accept a new trust-bundle chain the console administrator started
        /// (`bundle reset`): the first 8 or more hex digits of its id.
        #[arg(long, value_name = "CHAIN")]
        accept_reset: Option<String>,
    },
    /// The held trust bundle (version, age, expiry) and the event queue.
    Status {
        #[arg(long)]
        json: bool,
    },
}

/// Exit codes: 0 grant / success, 1 deny, 2 could not decide or do what was asked.
const EXIT_FAILURE: u8 = 2;

fn main() -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        // The journal (or a log file) gets plain text, a terminal gets colours.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let result = match cli.command {
        Command::Run => gateway::run(&config).map(|()| ExitCode::SUCCESS),
        Command::Check { reader, act, json } => check(&config, &reader, act, json),
        Command::Sync { json, accept_reset } => sync(&config, json, accept_reset.as_deref()),
        Command::Status { json } => status(&config, json),
    };
    result.unwrap_or_else(|e| fail(&e))
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(EXIT_FAILURE)
}

fn check(config: &Config, reader: &str, act: bool, json: bool) -> Result<ExitCode, GatewayError> {
    let mut decider = gateway::decider(config)?;
    let keeper = SharedTrust::new(gateway::trust_keeper(config)?);
    let queue = Queue::open(&config.gateway.data_dir)?;
    let name = cardstation_pcsc::Pcsc::establish()?.resolve(reader)?;
    let at = gateway::now();
    let outcome = gateway::decide_on_at(&name, &mut decider, &keeper, at);
    if json {
        // The log line goes to stderr so that stdout is one JSON document.
        let id = gateway::record(&queue, &outcome, at, LogTo::Stderr)?;
        if act {
            // Its output goes to the log (stderr), never into the JSON on stdout.
            action::run_logged(
                gateway::action_for(config, &outcome),
                &outcome,
                &id,
                gateway::action_timeout(config),
            );
        }
        #[derive(Serialize)]
        struct Out<'a> {
            event_id: String,
            #[serde(flatten)]
            outcome: &'a cardstation_gateway::decision::Outcome,
        }
        let text = serde_json::to_string_pretty(&Out {
            event_id: id,
            outcome: &outcome,
        })
        .map_err(|e| GatewayError::Settings(e.to_string()))?;
        println!("{text}");
    } else {
        let id = gateway::record(&queue, &outcome, at, LogTo::Stdout)?;
        if act {
            action::run_logged(
                gateway::action_for(config, &outcome),
                &outcome,
                &id,
                gateway::action_timeout(config),
            );
        }
        for r in &outcome.reasons {
            println!("  {}: {}", r.code, r.message);
        }
    }
    Ok(match outcome.decision {
        Decision::Grant => ExitCode::SUCCESS,
        Decision::Deny => ExitCode::from(1),
    })
}

fn sync(config: &Config, json: bool, accept_reset: Option<&str>) -> Result<ExitCode, GatewayError> {
    let keeper = SharedTrust::new(gateway::trust_keeper(config)?);
    let client = config.console_client()?;
    let refreshed = gateway::refresh(&keeper, &client, accept_reset)?;
    let mut queue = Queue::open(&config.gateway.data_dir)?;
    // The bundle is what sync is for; events that cannot go now stay queued.
    let delivered = gateway::deliver(&mut queue, &client);
    if json {
        #[derive(Serialize)]
        struct Out {
            bundle: Refreshed,
            events_delivered: Option<usize>,
            events_error: Option<String>,
        }
        let (n, err) = match &delivered {
            Ok(n) => (Some(*n), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let text = serde_json::to_string_pretty(&Out {
            bundle: refreshed,
            events_delivered: n,
            events_error: err,
        })
        .map_err(|e| GatewayError::Settings(e.to_string()))?;
        println!("{text}");
    } else {
        match refreshed {
            Refreshed::Updated { from, to, delta } => println!(
                "trust bundle updated: {} -> v{to} ({})",
                from.map(|v| format!("v{v}"))
                    .unwrap_or_else(|| "none".into()),
                if delta { "delta" } else { "full bundle" }
            ),
            Refreshed::Unchanged { version } => println!("trust bundle v{version} unchanged"),
            Refreshed::NotModified { version } => {
                println!("trust bundle v{version} unchanged (not modified)")
            }
        }
        match delivered {
            Ok(n) => println!("{n} queued event(s) delivered"),
            Err(e) => println!("events stay queued: {e}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn status(config: &Config, json: bool) -> Result<ExitCode, GatewayError> {
    let keeper = gateway::trust_keeper(config)?;
    let now = gateway::now();
    let bundle: Option<TrustStatus> = keeper.current(now).map(|(_, s)| s);
    let queue: QueueStatus = Queue::open(&config.gateway.data_dir)?.status()?;
    if json {
        #[derive(Serialize)]
        struct Out {
            bundle: Option<TrustStatus>,
            queue: QueueStatus,
            fail_open: bool,
        }
        let text = serde_json::to_string_pretty(&Out {
            bundle,
            queue,
            fail_open: config.gateway.fail_open,
        })
        .map_err(|e| GatewayError::Settings(e.to_string()))?;
        println!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    match bundle {
        Some(s) => {
            println!("Trust bundle  v{}", s.version);
            println!(
                "  fetched     {} ago",
                format_age((now - s.fetched_at).max(0))
            );
            println!(
                "  expires     {}{}",
                format_unix(s.expires_at),
                if s.expired { " (EXPIRED)" } else { "" }
            );
            if let Some(mark) = s.issued_up_to {
                println!("  trust       {}", s.counts());
                if mark == 0 {
                    println!("  issued up to (no certificate issued yet)");
                } else {
                    println!("  issued up to {}", format_unix(mark));
                }
                if let Some(since) = s.attested_since {
                    println!(
                        "  attested    every certificate from {} on",
                        format_unix(since)
                    );
                }
            } else {
                println!("  allowed     {}", s.allowed);
                println!("  attested    {}", s.attested);
                println!("  revoked     {}", s.revoked);
            }
        }
        None => println!("Trust bundle  none held (run `cardstation-gateway sync`)"),
    }
    println!(
        "Policy        {}",
        if config.gateway.fail_open {
            "fail-open when the bundle is missing or expired"
        } else {
            "fail-closed (deny when the bundle is missing or expired)"
        }
    );
    println!(
        "Event queue   {} pending, {} sent",
        queue.pending, queue.sent
    );
    if queue.refused > 0 {
        println!(
            "  refused     {} event(s) the console refused for good, set aside (events.db, column refused_why)",
            queue.refused
        );
    }
    if let Some(at) = queue.oldest_pending_at {
        println!("  oldest      {}", format_unix(at));
    }
    Ok(ExitCode::SUCCESS)
}
