//! `cardstation`: the station window, or a subcommand of the headless CLI.

mod cli;

use clap::Parser;

fn main() {
    let code = cli::run(cli::Cli::parse());
    std::process::exit(code);
}
