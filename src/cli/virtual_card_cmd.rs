//! `cardstation virtual-card`: the virtual PIV card inside the real pcscd.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Args;

use cardstation_virtual_card::attestation::TestRoot;
use cardstation_virtual_card::{serve_vpcd_counting, CardOptions, CardStorage, VirtualCard};

use super::output::{ErrorCode, Failure};

#[derive(Args, Debug)]
pub struct VirtualCardArgs {
    /// vpcd port: 35963 is reader "Virtual PCD 00 00", 35964 is "Virtual PCD 00 01".
    #[arg(long, default_value_t = 35963)]
    pub port: u16,
    /// vpcd host (keep it on loopback).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Keep the card's state in this directory across runs (default: a fresh blank card in memory).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Write the number of APDUs served so far to this file after each one (benchmarks).
    #[arg(long, value_name = "FILE")]
    pub count_apdus: Option<PathBuf>,
    /// A card without PIV attestation, like most PIV cards that are not YubiKeys (a
    /// Nitrokey): it attests no key and holds no F9 certificate.
    #[arg(long)]
    pub without_attestation: bool,
    #[command(subcommand)]
    pub command: Option<VirtualCardCommand>,
}

#[derive(clap::Subcommand, Debug)]
pub enum VirtualCardCommand {
    /// Print the attestation root of every virtual card (PEM). A test root: put it in a
    /// console's attestation roots only for tests and demos, never on a production site.
    AttestationRoot,
}

pub fn run(args: &VirtualCardArgs) -> Result<(), Failure> {
    if let Some(VirtualCardCommand::AttestationRoot) = args.command {
        let root =
            TestRoot::fixed().map_err(|e| Failure::new(ErrorCode::VirtualCard, e.to_string()))?;
        print!("{}", root.certificate_pem());
        return Ok(());
    }
    let storage = match &args.state {
        Some(dir) => CardStorage::Directory(dir.clone()),
        None => CardStorage::Memory,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let addr = format!("{}:{}", args.host, args.port);
    eprintln!("Virtual PIV card: serving vpcd at {addr} (stop with Ctrl-C)");
    let options = CardOptions {
        attestation: !args.without_attestation,
    };
    let result = match VirtualCard::start_with(storage, options) {
        Ok(card) => serve_vpcd_counting(&card, &addr, &stop, args.count_apdus.as_deref()),
        Err(e) => Err(e),
    };
    stop.store(true, Ordering::SeqCst);
    result.map_err(|e| Failure::new(ErrorCode::VirtualCard, e.to_string()))
}
