//! `publish` and `bundle status|reset`: the signed trust-bundle chain.

use std::path::PathBuf;
use std::sync::Arc;

use cardstation_console::bundle::{BundleBook, Current};
use cardstation_console::setup;
use cardstation_pki::certificate::format_unix;

use super::{now, open_store, ConsoleAt};

#[derive(clap::Subcommand)]
pub enum BundleCommand {
    /// Show the newest version: number, chain, hash, counts, expiry.
    Status {
        #[command(flatten)]
        at: ConsoleAt,
    },
    /// Start a new chain: after restoring the console from a backup, stations and
    /// gateways refuse its bundles as a fork (revocations made after the backup would
    /// be undone). Re-revoke what was lost first, then reset; each station and gateway
    /// accepts the new chain only with an operator's confirmation.
    Reset {
        #[command(flatten)]
        at: ConsoleAt,
        /// The first version of the new chain is at least this (above every version
        /// stations hold, which their fork message names).
        #[arg(long)]
        min_version: Option<u64>,
        /// Confirm: this makes every station and gateway ask its operator.
        #[arg(long)]
        yes: bool,
        #[arg(long, default_value_t = 168)]
        bundle_hours: u64,
    },
}

async fn bundle_book(at: &ConsoleAt, bundle_hours: u64) -> Result<BundleBook, String> {
    let store = Arc::new(open_store(at).await?);
    let files = setup::ConsoleFiles {
        dir: at.data.clone(),
        created: false,
    };
    let key = files.bundle_signing_key().map_err(|e| e.to_string())?;
    let validity = i64::try_from(bundle_hours.saturating_mul(3600)).unwrap_or(i64::MAX / 2);
    // The same versions `serve` would cut: revocation-only under an issuing CA.
    let policy = cardstation_console::policy(&at.data).map_err(|e| e.to_string())?;
    Ok(BundleBook::new(
        store,
        Arc::new(key),
        validity,
        policy.issuing_ca.into_iter().collect(),
    ))
}

pub async fn publish(at: ConsoleAt, out: PathBuf, bundle_hours: u64) -> Result<(), String> {
    let book = bundle_book(&at, bundle_hours).await?;
    let r = book.publish(&out, now()).await.map_err(|e| e.to_string())?;
    println!(
        "Published trust bundle version {} ({} bytes) and {} delta(s) in {}.",
        r.version,
        r.full_bytes,
        r.deltas,
        out.display()
    );
    println!(
        "Stations and gateways read it with [console] bundle_url = \"<the URL serving {}>\".",
        out.display()
    );
    Ok(())
}

fn describe(c: &Current) {
    println!("Version    {}", c.header.version);
    println!("Chain      {}", hex::encode(c.header.chain));
    println!("Hash       {}", hex::encode(c.hash));
    println!(
        "Lists      {} allowed, {} revoked, {} revoked keys",
        c.header.allowed, c.header.revoked, c.header.revoked_keys
    );
    println!(
        "Signed     {}, valid until {}",
        format_unix(c.header.issued_at),
        format_unix(c.header.expires_at)
    );
    println!("Full size  {} bytes", c.full.len());
}

pub async fn run(cmd: BundleCommand) -> Result<(), String> {
    match cmd {
        BundleCommand::Status { at } => {
            let book = bundle_book(&at, 168).await?;
            let c = book.current(now()).await.map_err(|e| e.to_string())?;
            describe(&c);
            Ok(())
        }
        BundleCommand::Reset {
            at,
            min_version,
            yes,
            bundle_hours,
        } => {
            if !yes {
                return Err("a reset makes every station and gateway ask its operator to accept the new chain. Re-revoke what the restored backup lost first, then run again with --yes".into());
            }
            let book = bundle_book(&at, bundle_hours).await?;
            let c = book
                .reset(now(), min_version)
                .await
                .map_err(|e| e.to_string())?;
            println!("Started a new trust-bundle chain:");
            describe(&c);
            let chain = hex::encode(c.header.chain);
            println!();
            println!(
                "Tell each station and gateway operator to accept chain {}:",
                &chain[..8]
            );
            println!(
                "  station:  cardstation trust sync --accept-reset {}",
                &chain[..8]
            );
            println!(
                "  gateway:  cardstation-gateway sync --config FILE --accept-reset {}",
                &chain[..8]
            );
            Ok(())
        }
    }
}
