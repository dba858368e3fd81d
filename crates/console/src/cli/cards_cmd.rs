//! `cards list|show|revoke|reinstate`: the administrator's view of certificates.

use cardstation_console::storage::{self, Actor};
use cardstation_console::{self as console_server};
use cardstation_pki::certificate::format_unix;
use cardstation_protocol::messages::{
    attested_filter, CertificateRecord, CertificateStatus, SearchQuery,
};

use super::{fingerprint_arg, now, open_store, print_json, shown, shown_or_dash, ConsoleAt};
use cardstation_console::admin;

#[derive(clap::Subcommand)]
pub enum CardsCommand {
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
        /// Only the cards to renew: active, not renewed yet, ending within this many
        /// days ("30d" or "30").
        #[arg(long, value_parser = parse_days)]
        expiring: Option<u32>,
        /// Only certificates whose key was found attested (proven generated on the card).
        #[arg(long, conflicts_with = "unattested")]
        attested: bool,
        /// Only certificates without a verified attestation.
        #[arg(long)]
        unattested: bool,
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

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum StatusArg {
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

fn print_record(r: &CertificateRecord) {
    let t = format_unix;
    println!("Fingerprint  {}", r.sha256);
    println!("Label        {}", shown_or_dash(r.label.as_deref()));
    println!("Subject      {}", shown(&r.subject));
    match r.status {
        CertificateStatus::Active => match &r.superseded_by {
            Some(by) => println!(
                "Status       active, renewed {} by {by} (valid until its end)",
                r.superseded_at.map(t).unwrap_or_default()
            ),
            None => println!("Status       active"),
        },
        CertificateStatus::Revoked => println!(
            "Status       REVOKED ({}) {} by {}",
            shown_or_dash(r.revocation_reason.as_deref()),
            r.revoked_at.map(t).unwrap_or_default(),
            shown_or_dash(r.revoked_by.as_deref())
        ),
    }
    println!(
        "Uploaded     {} by station {} (operator {})",
        t(r.uploaded_at),
        shown(&r.station_id),
        shown(&r.operator)
    );
    println!(
        "Card         serial {}, CHUID GUID {}, slot {}",
        r.card_serial.map(|s| s.to_string()).unwrap_or("-".into()),
        shown_or_dash(r.chuid_guid.as_deref()),
        shown_or_dash(r.slot.as_deref())
    );
    println!("Valid until  {}", t(r.not_after));
    match &r.attestation {
        Some(a) => println!(
            "Key          generated on the card: attested ({}), root {}, verified {}",
            shown(&a.describe()),
            shown(&a.root),
            t(a.verified_at)
        ),
        None => println!("Key          not attested"),
    }
}

pub async fn run(cmd: CardsCommand) -> Result<(), String> {
    let (fingerprint, by_station, since, at) = match cmd {
        CardsCommand::List {
            search,
            status,
            station,
            expiring,
            attested,
            unattested,
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
                expiring_days: expiring,
                attested: attested_filter(attested, unattested),
            };
            let mut records = Vec::new();
            let next = loop {
                let page = console_server::search::run(&store, &q)
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
                return print_json(&page);
            }
            if records.is_empty() {
                println!("No certificates match.");
            }
            for r in &records {
                let status = match r.status {
                    CertificateStatus::Active if r.superseded_by.is_some() => "renewed".to_string(),
                    CertificateStatus::Active => "active".to_string(),
                    CertificateStatus::Revoked => {
                        format!("revoked:{}", r.revocation_reason.as_deref().unwrap_or("?"))
                    }
                };
                // The cards to renew are listed by when they end.
                let when = if expiring.is_some() {
                    format!("ends {}", format_unix(r.not_after))
                } else {
                    format_unix(r.uploaded_at)
                };
                println!(
                    "{}  {:<18} {}  {:<16} {:>10}  {}",
                    r.sha256,
                    status,
                    when,
                    shown(&r.station_id),
                    r.card_serial.map(|s| s.to_string()).unwrap_or("-".into()),
                    match &r.label {
                        Some(l) => format!("{} — {}", shown(l), shown(&r.subject)),
                        None => shown(&r.subject),
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
                print_json(&rec)?;
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
                .revoke(&fp, reason.as_str(), now(), &Actor::Administrator, None)
                .await
                .map_err(|e| e.to_string())?
            {
                storage::Revoked::Done(rec) => {
                    println!(
                        "{fp}: revoked ({}) {}; in the next trust bundle.",
                        rec.revocation_reason.as_deref().unwrap_or("?"),
                        rec.revoked_at.map(format_unix).unwrap_or_default()
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
        .reinstate_by(&Actor::station(&station), since, now())
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "Reinstated {} certificate(s) revoked by station {station} since {}:",
        fps.len(),
        format_unix(since)
    );
    for fp in fps {
        println!("  {fp}");
    }
    Ok(())
}

/// "30d" or "30": a number of days.
fn parse_days(s: &str) -> Result<u32, String> {
    let n = s.strip_suffix('d').unwrap_or(s);
    n.parse::<u32>()
        .ok()
        .filter(|d| (1..=cardstation_protocol::messages::SEARCH_MAX_EXPIRING_DAYS).contains(d))
        .ok_or_else(|| format!("{s:?}: give a number of days, e.g. 30d (1 to 3650)"))
}
