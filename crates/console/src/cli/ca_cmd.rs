//! `cardstation-console ca`: the site's issuing CA for card certificates.

use std::path::PathBuf;

use cardstation_console::issuance;

#[derive(clap::Subcommand)]
pub enum CaCommand {
    /// Make the issuing CA (DATA/device-ca.pem, and DATA/device-ca.key readable by
    /// this user alone; with `[issuing_ca_token]` in DATA/console.toml, the token's
    /// key is certified and no key file is written), then set `issuance = "ca"` and
    /// restart `serve`.
    Init {
        /// The console's data directory.
        #[arg(long)]
        data: PathBuf,
        /// The CA's name (its certificate's CN).
        #[arg(long, default_value = "Cardstation device CA")]
        name: String,
        /// How long the CA is valid, in days; no card certificate outlives it.
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
}

pub fn run(command: CaCommand) -> Result<(), String> {
    match command {
        CaCommand::Init { data, name, days } => {
            if name.trim().is_empty() || name.chars().any(char::is_control) {
                return Err("--name must be text without control characters".into());
            }
            if !(1..=36_500).contains(&days) {
                return Err("--days must be between 1 and 36500".into());
            }
            let settings = cardstation_console::settings::load(&data).map_err(|e| e.to_string())?;
            let token = settings.issuing_ca_token.as_ref();
            let cert =
                issuance::init(&data, name.trim(), days, token).map_err(|e| e.to_string())?;
            println!("Issuing CA  {}", cert.display());
            match token {
                Some(t) => println!(
                    "Key         {:?} on token {:?} (it stays there)",
                    t.key, t.token
                ),
                None => println!(
                    "Key         {}",
                    data.join(issuance::DEVICE_CA_KEY).display()
                ),
            }
            println!(
                "Next: add `issuance = \"ca\"` to {} and restart `serve`: the CA certificate travels to gateways in the trust bundle.",
                data.join(cardstation_console::settings::SETTINGS_FILE).display(),
            );
            Ok(())
        }
    }
}
