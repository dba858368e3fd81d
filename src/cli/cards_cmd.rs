//! `cardstation cards`: the console's certificates, found by holder label, subject,
//! card serial, CHUID GUID, fingerprint prefix or station — every station's, not
//! only this one's.

use clap::{Args, ValueEnum};

use cardstation::app::station::Station;
use cardstation::config::Paths;
use cardstation::console::ConsoleClient;
use cardstation_pki::certificate::format_unix;
use cardstation_protocol::messages::{
    attested_filter, CertificateRecord, CertificateStatus, SearchPage, SearchQuery,
};

use super::output::{print_json, say, Failure};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum StatusArg {
    Active,
    Revoked,
}

#[derive(Args, Debug)]
pub struct CardsArgs {
    /// Words that begin a word of the label, subject or station, or a card serial,
    /// CHUID GUID or fingerprint prefix ("smith", "gw-17 plant", "a3f9").
    #[arg(long)]
    pub search: Option<String>,
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,
    /// Uploaded by this station.
    #[arg(long)]
    pub station: Option<String>,
    /// Only cards whose key the console found attested (proven generated on the card).
    #[arg(long, conflicts_with = "unattested")]
    pub attested: bool,
    /// Only cards without a verified attestation.
    #[arg(long)]
    pub unattested: bool,
    /// Records per page (at most 200).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Every page, not just the first.
    #[arg(long)]
    pub all: bool,
    /// The page after this cursor (printed under a page with more after it).
    #[arg(long)]
    pub cursor: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &CardsArgs, paths: Paths) -> Result<(), Failure> {
    let station = Station::open(paths)?;
    let client = ConsoleClient::new(&station.config.console)?;
    let mut q = SearchQuery {
        search: args.search.clone(),
        status: args.status.map(|s| match s {
            StatusArg::Active => CertificateStatus::Active,
            StatusArg::Revoked => CertificateStatus::Revoked,
        }),
        station: args.station.clone(),
        limit: Some(args.limit),
        cursor: args.cursor.clone(),
        expiring_days: None,
        attested: attested_filter(args.attested, args.unattested),
    };
    let mut records = Vec::new();
    let next_cursor = loop {
        let page = client.search(&q)?;
        records.extend(page.records);
        match page.next_cursor {
            Some(c) if args.all => q.cursor = Some(c),
            other => break other,
        }
    };
    if args.json {
        print_json(&SearchPage {
            records,
            next_cursor,
        });
        return Ok(());
    }
    if records.is_empty() {
        say!("No certificates match.");
    }
    print_table(&records);
    if let Some(c) = next_cursor {
        say!("More: --cursor {c} (or --all)");
    }
    Ok(())
}

/// One line per certificate: fingerprint, status, uploaded when and where, card
/// serial, and who or what holds it.
pub fn print_table(records: &[CertificateRecord]) {
    for r in records {
        let status = match r.status {
            CertificateStatus::Active => "active".to_string(),
            CertificateStatus::Revoked => {
                format!("revoked:{}", r.revocation_reason.as_deref().unwrap_or("?"))
            }
        };
        say!(
            "{}  {:<18} {}  {:<16} {:>10}  {}",
            r.sha256,
            status,
            format_unix(r.uploaded_at),
            r.station_id,
            r.card_serial.map(|s| s.to_string()).unwrap_or("-".into()),
            holder(r)
        );
    }
}

/// "label — subject", or the subject alone.
pub fn holder(r: &CertificateRecord) -> String {
    match &r.label {
        Some(l) => format!("{l} — {}", r.subject),
        None => r.subject.clone(),
    }
}
