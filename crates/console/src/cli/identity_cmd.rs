//! `identity add|list|revoke` (every role), and the words users already have for
//! each role: `station add|list|revoke|reset-anchor`, `gateway add|list|revoke`.
//! One issuing path: a client certificate from the console CA, recorded in the
//! credential store with its role.

use std::path::PathBuf;

use cardstation_console::admin;
use cardstation_console::storage::Role;
use cardstation_pki::certificate::format_unix;

use super::{console_files, now, open_store, print_json, ConsoleAt};
use cardstation_console::setup;

/// Issue a client certificate for NAME alone and write it, its key, the CA
/// certificate, the bundle public key and ready settings into OUTDIR.
#[derive(clap::Args)]
pub struct AddArgs {
    pub name: String,
    #[command(flatten)]
    pub at: ConsoleAt,
    /// Where to write the files (made readable by this user only).
    #[arg(long)]
    pub out: PathBuf,
    /// The console CA's private key (default DATA/ca.key; it may live off the console host).
    #[arg(long)]
    pub ca_key: Option<PathBuf>,
    /// The console's address as the station or gateway will reach it.
    #[arg(long, default_value = "https://localhost:8443")]
    pub url: String,
    /// How long the credential is valid, in days.
    #[arg(long, default_value_t = 825)]
    pub days: u32,
}

#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub at: ConsoleAt,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct RevokeArgs {
    pub name: String,
    #[command(flatten)]
    pub at: ConsoleAt,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum RoleArg {
    Station,
    Gateway,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Station => Role::Station,
            RoleArg::Gateway => Role::Gateway,
        }
    }
}

#[derive(clap::Subcommand)]
pub enum IdentityCommand {
    /// Issue a credential for NAME in ROLE (station: uploads and revokes; gateway:
    /// fetches the trust bundle and posts events, nothing else).
    Add {
        #[arg(long, value_enum)]
        role: RoleArg,
        #[command(flatten)]
        args: AddArgs,
    },
    /// List the credentials (of one role, or all).
    List {
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
        #[command(flatten)]
        args: ListArgs,
    },
    /// Revoke NAME's credential in ROLE: its next request is refused, no restart needed.
    Revoke {
        #[arg(long, value_enum)]
        role: RoleArg,
        #[command(flatten)]
        args: RevokeArgs,
    },
}

#[derive(clap::Subcommand)]
pub enum StationCommand {
    /// Issue a client certificate for station NAME alone and write it, the CA certificate,
    /// the bundle public key and a ready cardstation.toml into OUTDIR.
    Add(AddArgs),
    /// List the stations and their credentials.
    List(ListArgs),
    /// Revoke station NAME's credential: its next request is refused, no restart needed.
    Revoke(RevokeArgs),
    /// Forget station NAME's audit anchor after its database was restored from a backup
    /// (the restored trail is shorter than the anchor); its next delivery anchors afresh.
    ResetAnchor {
        name: String,
        #[command(flatten)]
        at: ConsoleAt,
    },
}

#[derive(clap::Subcommand)]
pub enum GatewayCommand {
    /// Issue a client certificate for gateway NAME alone and write it, the CA certificate,
    /// the bundle public key and the [console] block of a gateway.toml into OUTDIR.
    Add(AddArgs),
    /// List the gateways and their credentials.
    List(ListArgs),
    /// Revoke gateway NAME's credential: its next request is refused, no restart needed.
    Revoke(RevokeArgs),
}

pub async fn run(cmd: IdentityCommand) -> Result<(), String> {
    match cmd {
        IdentityCommand::Add { role, args } => add(role.into(), args).await,
        IdentityCommand::List { role, args } => list(role.map(Into::into), args).await,
        IdentityCommand::Revoke { role, args } => revoke(role.into(), args).await,
    }
}

pub async fn station(cmd: StationCommand) -> Result<(), String> {
    match cmd {
        StationCommand::Add(args) => add(Role::Station, args).await,
        StationCommand::List(args) => list(Some(Role::Station), args).await,
        StationCommand::Revoke(args) => revoke(Role::Station, args).await,
        StationCommand::ResetAnchor { name, at } => {
            let store = open_store(&at).await?;
            if let Some(a) = store.audit_anchor(&name).await.map_err(|e| e.to_string())? {
                println!(
                    "Station {name}'s audit trail was anchored at {} rows (last hash {}) on {}.",
                    a.rows,
                    a.hash,
                    format_unix(a.received_at)
                );
            }
            if store
                .reset_audit_anchor(&name, now())
                .await
                .map_err(|e| e.to_string())?
            {
                println!("Forgotten (in the console's audit trail); the station's next delivery anchors its trail afresh.");
                Ok(())
            } else {
                Err(format!(
                    "the console holds no audit anchor for station {name}"
                ))
            }
        }
    }
}

pub async fn gateway(cmd: GatewayCommand) -> Result<(), String> {
    match cmd {
        GatewayCommand::Add(args) => add(Role::Gateway, args).await,
        GatewayCommand::List(args) => list(Some(Role::Gateway), args).await,
        GatewayCommand::Revoke(args) => revoke(Role::Gateway, args).await,
    }
}

/// "Station" / "Gateway", for the first word of a sentence.
fn title(role: Role) -> String {
    let s = role.as_str();
    s[..1].to_ascii_uppercase() + &s[1..]
}

async fn add(role: Role, a: AddArgs) -> Result<(), String> {
    let files = console_files(&a.at.data)?;
    let store = open_store(&a.at).await?;
    let ca_key = a.ca_key.unwrap_or_else(|| files.path(setup::CA_KEY));
    let issued = admin::add_identity(&store, &files, &ca_key, role, &a.name, a.days)
        .await
        .map_err(|e| e.to_string())?;
    let config = admin::write_kit(&files, &issued, &a.out, &a.url).map_err(|e| e.to_string())?;
    println!(
        "{} {}: credential {} valid until {}.",
        title(role),
        a.name,
        issued.row.cert_sha256,
        format_unix(issued.row.not_after)
    );
    println!(
        "Files for the {role} in {}; settings to copy: {}",
        a.out.display(),
        config.display()
    );
    Ok(())
}

async fn list(role: Option<Role>, a: ListArgs) -> Result<(), String> {
    let store = open_store(&a.at).await?;
    let rows = store.identities(role).await.map_err(|e| e.to_string())?;
    if a.json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        match role {
            Some(role) => println!("No {role}s."),
            None => println!("No credentials."),
        }
    }
    for r in rows {
        let state = match r.revoked_at {
            Some(t) => format!("REVOKED {}", format_unix(t)),
            None => "active".into(),
        };
        let name = match role {
            Some(_) => r.name,
            None => format!("{}:{}", r.role, r.name),
        };
        println!(
            "{:<24} {:<28} issued {}  until {}  {}",
            name,
            state,
            format_unix(r.issued_at),
            format_unix(r.not_after),
            r.cert_sha256
        );
    }
    Ok(())
}

async fn revoke(role: Role, a: RevokeArgs) -> Result<(), String> {
    let store = open_store(&a.at).await?;
    let n = admin::revoke_identity(&store, role, &a.name, now())
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "{} {}: {n} credential(s) revoked; its next request is refused.",
        title(role),
        a.name
    );
    Ok(())
}
