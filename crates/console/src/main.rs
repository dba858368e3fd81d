//! `cardstation-console`: the reference management console.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};

use cardstation_console::bundle::BundleBook;
use cardstation_console::storage::{self, Database, Store};
use cardstation_console::{self as console_server, admin, migrate, setup, ServeOptions};
use cardstation_protocol::messages::{CertificateRecord, CertificateStatus, SearchQuery};

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

#[derive(Subcommand)]
enum GatewayCommand {
    /// Issue a client certificate for gateway NAME alone and write it, the CA certificate,
    /// the bundle public key and the [console] block of a gateway.toml into OUTDIR.
    Add {
        name: String,
        #[command(flatten)]
        at: ConsoleAt,
        /// Where to write the gateway's files (made readable by this user only).
        #[arg(long)]
        out: PathBuf,
        /// The console CA's private key (default DATA/ca.key; it may live off the console host).
        #[arg(long)]
        ca_key: Option<PathBuf>,
        /// The console's address as the gateway will reach it.
        #[arg(long, default_value = "https://localhost:8443")]
        url: String,
        /// How long the credential is valid, in days.
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
    /// List the gateways and their credentials.
    List {
        #[command(flatten)]
        at: ConsoleAt,
        #[arg(long)]
        json: bool,
    },
    /// Revoke gateway NAME's credential: its next request is refused, no restart needed.
    Revoke {
        name: String,
        #[command(flatten)]
        at: ConsoleAt,
    },
}

/// Which console an administration command works on (the same as `serve`'s).
#[derive(clap::Args)]
struct ConsoleAt {
    /// The console's data directory.
    #[arg(long)]
    data: PathBuf,
    /// The console's database, if not the one `serve` finds in DATA.
    #[arg(long, value_parser = parse_database)]
    database: Option<Database>,
}

#[derive(Subcommand)]
enum StationCommand {
    /// Issue a client certificate for station NAME alone and write it, the CA certificate,
    /// the bundle public key and a ready cardstation.toml into OUTDIR.
    Add {
        name: String,
        #[command(flatten)]
        at: ConsoleAt,
        /// Where to write the station's files (made readable by this user only).
        #[arg(long)]
        out: PathBuf,
        /// The console CA's private key (default DATA/ca.key; it may live off the console host).
        #[arg(long)]
        ca_key: Option<PathBuf>,
        /// The console's address as the station will reach it.
        #[arg(long, default_value = "https://localhost:8443")]
        url: String,
        /// How long the credential is valid, in days.
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
    /// List the stations and their credentials.
    List {
        #[command(flatten)]
        at: ConsoleAt,
        #[arg(long)]
        json: bool,
    },
    /// Revoke station NAME's credential: its next request is refused, no restart needed.
    Revoke {
        name: String,
        #[command(flatten)]
        at: ConsoleAt,
    },
    /// Forget station NAME's audit anchor after its database was restored from a backup
    /// (the restored trail is shorter than the anchor); its next delivery anchors afresh.
    ResetAnchor {
        name: String,
        #[command(flatten)]
        at: ConsoleAt,
    },
}

#[derive(Subcommand)]
enum BundleCommand {
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

#[derive(Subcommand)]
enum CardsCommand {
    /// List certificates, newest first: fingerprint, status, uploaded when and by which
    /// station, card serial, label and subject.
    List {
        /// Words that begin a word of the label, subject or station, or a card serial,
        /// CHUID GUID or fingerprint prefix ("smith", "gw-17", "a3f9").
        #[arg(long)]
        search: Option<String>,
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        /// Uploaded by this station.
        #[arg(long)]
        station: Option<String>,
        /// Records per page (at most 200).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Every page, not just the first.
        #[arg(long)]
        all: bool,
        /// The page after this cursor (printed under a page with more after it).
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        at: ConsoleAt,
        #[arg(long)]
        json: bool,
    },
    /// Everything the console holds about one certificate.
    Show {
        /// The certificate's SHA-256 fingerprint.
        fingerprint: String,
        #[command(flatten)]
        at: ConsoleAt,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a certificate (and its key) as the administrator: in the next trust bundle.
    Revoke {
        /// The certificate's SHA-256 fingerprint.
        fingerprint: String,
        /// lost, stolen, damaged, replaced, expired or unspecified.
        #[arg(long)]
        reason: cardstation_protocol::messages::RevocationReason,
        #[command(flatten)]
        at: ConsoleAt,
    },
    /// Undo a revocation: FP is active again (and its key), in the next trust bundle.
    /// With --by-station NAME --since TIME, undo what that station revoked since TIME
    /// (the recovery after a stolen station).
    Reinstate {
        /// The certificate's SHA-256 fingerprint.
        #[arg(required_unless_present = "by_station", conflicts_with = "by_station")]
        fingerprint: Option<String>,
        #[arg(long, requires = "since")]
        by_station: Option<String>,
        /// Unix seconds or RFC 3339 (2026-12-01T21:00:00Z).
        #[arg(long, value_parser = admin::parse_time)]
        since: Option<i64>,
        #[command(flatten)]
        at: ConsoleAt,
    },
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

async fn open_store(at: &ConsoleAt) -> Result<Box<dyn Store>, String> {
    let db = console_server::resolve_database(&at.data, at.database.as_ref())
        .map_err(|e| e.to_string())?;
    if let Database::Sqlite(path) = &db {
        if !path.is_file() {
            return Err(format!(
                "{} does not exist: is {} a console's data directory (start `serve` once)?",
                path.display(),
                at.data.display()
            ));
        }
    }
    storage::open(&db)
        .await
        .map_err(|e| format!("console database {db}: {e}"))
}

fn console_files(data: &Path) -> Result<setup::ConsoleFiles, String> {
    if !data.join(setup::CA_CERT).is_file() {
        return Err(format!(
            "{} holds no console (no {}); start `serve` once to create it",
            data.display(),
            setup::CA_CERT
        ));
    }
    setup::ensure(data).map_err(|e| e.to_string())
}

async fn station(cmd: StationCommand) -> Result<(), String> {
    match cmd {
        StationCommand::Add {
            name,
            at,
            out,
            ca_key,
            url,
            days,
        } => {
            let files = console_files(&at.data)?;
            let store = open_store(&at).await?;
            let ca_key = ca_key.unwrap_or_else(|| files.path(setup::CA_KEY));
            let issued = admin::add_station(store.as_ref(), &files, &ca_key, &name, days)
                .await
                .map_err(|e| e.to_string())?;
            let config =
                admin::write_station_kit(&files, &issued, &out, &url).map_err(|e| e.to_string())?;
            println!(
                "Station {name}: credential {} valid until {}.",
                issued.row.cert_sha256,
                cardstation_pki::certificate::format_unix(issued.row.not_after)
            );
            println!(
                "Files for the station in {}; settings to copy: {}",
                out.display(),
                config.display()
            );
            Ok(())
        }
        StationCommand::List { at, json } => {
            let store = open_store(&at).await?;
            let rows = store.stations().await.map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?
                );
                return Ok(());
            }
            if rows.is_empty() {
                println!("No stations.");
            }
            for r in rows {
                let state = match r.revoked_at {
                    Some(t) => format!("REVOKED {}", cardstation_pki::certificate::format_unix(t)),
                    None => "active".into(),
                };
                println!(
                    "{:<24} {:<28} issued {}  until {}  {}",
                    r.name,
                    state,
                    cardstation_pki::certificate::format_unix(r.issued_at),
                    cardstation_pki::certificate::format_unix(r.not_after),
                    r.cert_sha256
                );
            }
            Ok(())
        }
        StationCommand::Revoke { name, at } => {
            let store = open_store(&at).await?;
            let n = admin::revoke_station(store.as_ref(), &name, now())
                .await
                .map_err(|e| e.to_string())?;
            println!("Station {name}: {n} credential(s) revoked; its next request is refused.");
            Ok(())
        }
        StationCommand::ResetAnchor { name, at } => {
            let store = open_store(&at).await?;
            if let Some(a) = store.audit_anchor(&name).await.map_err(|e| e.to_string())? {
                println!(
                    "Station {name}'s audit trail was anchored at {} rows (last hash {}) on {}.",
                    a.rows,
                    a.hash,
                    cardstation_pki::certificate::format_unix(a.received_at)
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

#[derive(Clone, Copy, clap::ValueEnum)]
enum StatusArg {
    Active,
    Revoked,
}

impl From<StatusArg> for CertificateStatus {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::Active => CertificateStatus::Active,
            StatusArg::Revoked => CertificateStatus::Revoked,
        }
    }
}

/// A fingerprint as people paste it (upper case, colons) in the console's form.
fn fingerprint_arg(fp: &str) -> Result<String, String> {
    let fp = fp.trim().to_ascii_lowercase().replace(':', "");
    if cardstation_protocol::messages::is_fingerprint(&fp) {
        Ok(fp)
    } else {
        Err("give the SHA-256 fingerprint: 64 hex digits".into())
    }
}

fn print_record(r: &CertificateRecord) {
    let t = cardstation_pki::certificate::format_unix;
    println!("Fingerprint  {}", r.sha256);
    println!("Label        {}", r.label.as_deref().unwrap_or("-"));
    println!("Subject      {}", r.subject);
    match r.status {
        CertificateStatus::Active => println!("Status       active"),
        CertificateStatus::Revoked => println!(
            "Status       REVOKED ({}) {} by {}",
            r.revocation_reason.as_deref().unwrap_or("?"),
            r.revoked_at.map(t).unwrap_or_default(),
            r.revoked_by.as_deref().unwrap_or("?")
        ),
    }
    println!(
        "Uploaded     {} by station {} (operator {})",
        t(r.uploaded_at),
        r.station_id,
        r.operator
    );
    println!(
        "Card         serial {}, CHUID GUID {}, slot {}",
        r.card_serial.map(|s| s.to_string()).unwrap_or("-".into()),
        r.chuid_guid.as_deref().unwrap_or("-"),
        r.slot.as_deref().unwrap_or("-")
    );
    println!("Valid until  {}", t(r.not_after));
}

async fn cards(cmd: CardsCommand) -> Result<(), String> {
    let (fingerprint, by_station, since, at) = match cmd {
        CardsCommand::List {
            search,
            status,
            station,
            limit,
            all,
            cursor,
            at,
            json,
        } => {
            let store = open_store(&at).await?;
            let mut q = SearchQuery {
                search,
                status: status.map(Into::into),
                station,
                limit: Some(limit),
                cursor,
            };
            let mut records = Vec::new();
            let next = loop {
                let page = console_server::search::run(store.as_ref(), &q)
                    .await
                    .map_err(|e| e.to_string())?;
                records.extend(page.records);
                match page.next_cursor {
                    Some(c) if all => q.cursor = Some(c),
                    other => break other,
                }
            };
            if json {
                let page = cardstation_protocol::messages::SearchPage {
                    records,
                    next_cursor: next,
                };
                println!(
                    "{}",
                    serde_json::to_string_pretty(&page).map_err(|e| e.to_string())?
                );
                return Ok(());
            }
            if records.is_empty() {
                println!("No certificates match.");
            }
            for r in &records {
                let status = match r.status {
                    CertificateStatus::Active => "active".to_string(),
                    CertificateStatus::Revoked => {
                        format!("revoked:{}", r.revocation_reason.as_deref().unwrap_or("?"))
                    }
                };
                println!(
                    "{}  {:<18} {}  {:<16} {:>10}  {}",
                    r.sha256,
                    status,
                    cardstation_pki::certificate::format_unix(r.uploaded_at),
                    r.station_id,
                    r.card_serial.map(|s| s.to_string()).unwrap_or("-".into()),
                    match &r.label {
                        Some(l) => format!("{l} — {}", r.subject),
                        None => r.subject.clone(),
                    }
                );
            }
            if let Some(c) = next {
                println!("More: --cursor {c} (or --all)");
            }
            return Ok(());
        }
        CardsCommand::Show {
            fingerprint,
            at,
            json,
        } => {
            let fp = fingerprint_arg(&fingerprint)?;
            let store = open_store(&at).await?;
            let Some(rec) = store.get(&fp).await.map_err(|e| e.to_string())? else {
                return Err(format!("no certificate {fp} on this console"));
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rec).map_err(|e| e.to_string())?
                );
            } else {
                print_record(&rec);
            }
            return Ok(());
        }
        CardsCommand::Revoke {
            fingerprint,
            reason,
            at,
        } => {
            let fp = fingerprint_arg(&fingerprint)?;
            let store = open_store(&at).await?;
            // The administrator is not rate-limited: the limit bounds a stolen station.
            return match store
                .revoke(&fp, reason.as_str(), now(), storage::ADMIN, None)
                .await
                .map_err(|e| e.to_string())?
            {
                storage::Revoked::Done(rec) => {
                    println!(
                        "{fp}: revoked ({}) {}; in the next trust bundle.",
                        rec.revocation_reason.as_deref().unwrap_or("?"),
                        rec.revoked_at
                            .map(cardstation_pki::certificate::format_unix)
                            .unwrap_or_default()
                    );
                    Ok(())
                }
                storage::Revoked::NotFound => Err(format!("no certificate {fp} on this console")),
                storage::Revoked::RateLimited { .. } => {
                    Err("the revocation was refused by the rate limit".into())
                }
            };
        }
        CardsCommand::Reinstate {
            fingerprint,
            by_station,
            since,
            at,
        } => (fingerprint, by_station, since, at),
    };
    let store = open_store(&at).await?;
    if let Some(fp) = fingerprint {
        if !cardstation_protocol::messages::is_fingerprint(&fp) {
            return Err("give the SHA-256 fingerprint: 64 lower-case hex digits".into());
        }
        return match store
            .reinstate(&fp, now())
            .await
            .map_err(|e| e.to_string())?
        {
            Some(rec) => {
                println!("{fp}: {:?}; in the next trust bundle.", rec.status);
                Ok(())
            }
            None => Err(format!("no certificate {fp} on this console")),
        };
    }
    let (Some(station), Some(since)) = (by_station, since) else {
        return Err("give a fingerprint, or --by-station NAME --since TIME".into());
    };
    let fps = store
        .reinstate_by_station(&station, since, now())
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "Reinstated {} certificate(s) revoked by station {station} since {}:",
        fps.len(),
        cardstation_pki::certificate::format_unix(since)
    );
    for fp in fps {
        println!("  {fp}");
    }
    Ok(())
}

async fn bundle_book(at: &ConsoleAt, bundle_hours: u64) -> Result<BundleBook, String> {
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::from(open_store(at).await?);
    let files = setup::ConsoleFiles {
        dir: at.data.clone(),
        created: false,
    };
    let key = files.bundle_signing_key().map_err(|e| e.to_string())?;
    let validity = i64::try_from(bundle_hours.saturating_mul(3600)).unwrap_or(i64::MAX / 2);
    Ok(BundleBook::new(store, std::sync::Arc::new(key), validity))
}

async fn publish(at: ConsoleAt, out: PathBuf, bundle_hours: u64) -> Result<(), String> {
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

fn describe(c: &cardstation_console::bundle::Current) {
    println!("Version    {}", c.header.version);
    println!("Chain      {}", hex::encode(c.header.chain));
    println!("Hash       {}", hex::encode(c.hash));
    println!(
        "Lists      {} allowed, {} revoked, {} revoked keys",
        c.header.allowed, c.header.revoked, c.header.revoked_keys
    );
    println!(
        "Signed     {}, valid until {}",
        cardstation_pki::certificate::format_unix(c.header.issued_at),
        cardstation_pki::certificate::format_unix(c.header.expires_at)
    );
    println!("Full size  {} bytes", c.full.len());
}

async fn bundle_cmd(cmd: BundleCommand) -> Result<(), String> {
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

async fn audit(at: ConsoleAt, verify: bool, json: bool) -> Result<(), String> {
    let store = open_store(&at).await?;
    let rows = store.audit().await.map_err(|e| e.to_string())?;
    if verify {
        return match storage::verify_audit(&rows) {
            Ok(n) => {
                println!("Audit trail intact: {n} rows, hash chain verified.");
                Ok(())
            }
            Err(why) => Err(format!("the audit trail is broken: {why}")),
        };
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    for r in rows {
        println!(
            "{:>6}  {}  {:<16} {:<15} {} {}",
            r.seq,
            cardstation_pki::certificate::format_unix(r.at),
            r.actor,
            r.action,
            r.subject,
            r.detail
        );
    }
    Ok(())
}

async fn gateway(cmd: GatewayCommand) -> Result<(), String> {
    match cmd {
        GatewayCommand::Add {
            name,
            at,
            out,
            ca_key,
            url,
            days,
        } => {
            let files = console_files(&at.data)?;
            let store = open_store(&at).await?;
            let ca_key = ca_key.unwrap_or_else(|| files.path(setup::CA_KEY));
            let issued = admin::add_gateway(store.as_ref(), &files, &ca_key, &name, days)
                .await
                .map_err(|e| e.to_string())?;
            let config =
                admin::write_gateway_kit(&files, &issued, &out, &url).map_err(|e| e.to_string())?;
            println!(
                "Gateway {name}: credential {} valid until {}.",
                issued.row.cert_sha256,
                cardstation_pki::certificate::format_unix(issued.row.not_after)
            );
            println!(
                "Files for the gateway in {}; settings to copy: {}",
                out.display(),
                config.display()
            );
            Ok(())
        }
        GatewayCommand::List { at, json } => {
            let store = open_store(&at).await?;
            let rows = store.gateways().await.map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?
                );
                return Ok(());
            }
            if rows.is_empty() {
                println!("No gateways.");
            }
            for r in rows {
                let state = match r.revoked_at {
                    Some(t) => format!("REVOKED {}", cardstation_pki::certificate::format_unix(t)),
                    None => "active".into(),
                };
                println!(
                    "{:<24} {:<28} issued {}  until {}  {}",
                    r.name,
                    state,
                    cardstation_pki::certificate::format_unix(r.issued_at),
                    cardstation_pki::certificate::format_unix(r.not_after),
                    r.cert_sha256
                );
            }
            Ok(())
        }
        GatewayCommand::Revoke { name, at } => {
            let store = open_store(&at).await?;
            let n = admin::revoke_gateway(store.as_ref(), &name, now())
                .await
                .map_err(|e| e.to_string())?;
            println!("Gateway {name}: {n} credential(s) revoked; its next request is refused.");
            Ok(())
        }
    }
}

async fn events(at: ConsoleAt, query: storage::EventQuery, json: bool) -> Result<(), String> {
    if query
        .fingerprint
        .as_deref()
        .is_some_and(|f| !cardstation_protocol::messages::is_fingerprint(f))
    {
        return Err("give the SHA-256 fingerprint: 64 lower-case hex digits".into());
    }
    if query.limit == 0 || query.limit > storage::MAX_EVENT_QUERY {
        return Err(format!("--limit must be 1 to {}", storage::MAX_EVENT_QUERY));
    }
    let store = open_store(&at).await?;
    let rows = store.events(&query).await.map_err(|e| e.to_string())?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    if rows.is_empty() {
        println!("No gateway events.");
        return Ok(());
    }
    println!(
        "{:<23}  {:<16} {:<6} {:<16} {:<24} REASONS",
        "DECIDED", "GATEWAY", "", "CERTIFICATE", "READER"
    );
    for r in rows {
        let e = &r.event;
        let fp = e.fingerprint.as_deref().map_or("-".to_string(), |f| {
            format!("{}…", f.chars().take(12).collect::<String>())
        });
        let reasons = if e.reasons.is_empty() {
            "-".to_string()
        } else {
            e.reasons.join(",")
        };
        println!(
            "{:<23}  {:<16} {:<6} {:<16} {:<24} {}",
            cardstation_pki::certificate::format_unix(e.at),
            r.gateway,
            e.decision.as_str(),
            fp,
            e.reader,
            reasons
        );
    }
    Ok(())
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
                    "Also moved {} gateway credential(s), {} gateway event(s), {} station audit anchor(s).",
                    report.gateways, report.events, report.anchors
                );
                println!(
                    "Checked: {} records on both sides, SHA-256 of all records {}.",
                    report.records, report.digest
                );
            })
            .map_err(|e| e.to_string()),
        Command::Station { command } => runtime.block_on(station(command)),
        Command::Cards { command } => runtime.block_on(cards(command)),
        Command::Audit { at, verify, json } => runtime.block_on(audit(at, verify, json)),
        Command::Publish {
            at,
            out,
            bundle_hours,
        } => runtime.block_on(publish(at, out, bundle_hours)),
        Command::Bundle { command } => runtime.block_on(bundle_cmd(command)),
        Command::Gateway { command } => runtime.block_on(gateway(command)),
        Command::Events {
            at,
            fingerprint,
            gateway,
            since,
            limit,
            json,
        } => runtime.block_on(events(
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
