//! `readers`, `card`, `export`, `enrollments`.

use cardstation::store::AuditAction;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use cardstation::app::card_source::CardSource;
use cardstation::app::card_status::{self, CardSummary};
use cardstation::app::station::Station;
use cardstation::config::Paths;
use cardstation_card::atr::Atr;
use cardstation_pcsc::{CardPresence, Pcsc, ReaderStatus};
use cardstation_piv::{PinStatus, PivSession, Slot};
use cardstation_pki::certificate::{format_unix, to_pem};
use cardstation_pki::CertificateInfo;

use super::output::{print_json, say, ErrorCode, Failure};
use super::ReaderArgs;

#[derive(Serialize)]
struct ReaderLine {
    #[serde(flatten)]
    status: ReaderStatus,
    protocols: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    card: Option<CardSummary>,
}

pub fn readers(json: bool) -> Result<(), Failure> {
    let pcsc = Pcsc::establish()?;
    let mut lines = Vec::new();
    for status in pcsc.readers()? {
        let protocols = Atr::parse(&status.atr)
            .map(|a| a.protocol_names())
            .unwrap_or_default();
        let card = if status.card == CardPresence::Present {
            let source = CardSource::Pcsc(status.name.clone());
            Some(
                source
                    .with_card(|t| card_status::summarize(t))
                    .unwrap_or_else(|e| error_summary(e.to_string())),
            )
        } else {
            None
        };
        lines.push(ReaderLine {
            status,
            protocols,
            card,
        });
    }
    if json {
        print_json(&lines);
        return Ok(());
    }
    if lines.is_empty() {
        say!("No readers connected. Plug in a reader, or start the virtual card: cardstation virtual-card");
    }
    for l in &lines {
        say!("{}", l.status.name);
        match l.status.card {
            CardPresence::Absent => say!("  no card"),
            CardPresence::InUse => say!("  card in use by another program"),
            CardPresence::Mute => say!("  card does not answer (mute)"),
            CardPresence::Present => {
                say!(
                    "  ATR      {} ({})",
                    hex::encode_upper(&l.status.atr),
                    l.protocols.join(", ")
                );
                if let Some(c) = &l.card {
                    if let Some(e) = &c.error {
                        say!("  error    {e}");
                    } else if !c.piv {
                        say!("  PIV      not present (not a PIV card)");
                    } else {
                        say!("  PIV      present");
                        if let Some(s) = c.serial {
                            say!("  serial   {s}");
                        }
                        say!(
                            "  GUID     {}",
                            c.chuid_guid.map_or("(no CHUID)".into(), |g| g.to_hex())
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

fn error_summary(error: String) -> CardSummary {
    CardSummary {
        piv: false,
        serial: None,
        chuid_guid: None,
        error: Some(error),
    }
}

pub fn card(args: &ReaderArgs) -> Result<(), Failure> {
    let report = CardSource::pcsc(&args.reader)?.with_card(|t| card_status::inspect(t))??;
    if args.json {
        print_json(&report);
        return Ok(());
    }
    say!("Reader     {}", report.reader);
    say!(
        "ATR        {} ({})",
        hex::encode_upper(&report.atr),
        report.protocols.join(", ")
    );
    if let Some(s) = report.serial {
        say!("Serial     {s}");
    }
    if let Some(v) = &report.version {
        say!("Version    {v}");
    }
    say!(
        "CHUID GUID {}",
        report.chuid_guid.map_or("(none)".into(), |g| g.to_hex())
    );
    say!(
        "PIN        {}",
        match report.pin {
            PinStatus::Verified => "verified".to_string(),
            PinStatus::Retries(n) => format!("{n} tries left"),
            PinStatus::Blocked => "BLOCKED — unblock with the PUK".to_string(),
        }
    );
    let mk = &report.management_key;
    say!(
        "Mgmt key   {}{}",
        mk.algorithm
            .map(|a| a.to_string())
            .unwrap_or_else(|| "unknown algorithm".into()),
        match mk.is_default {
            Some(true) => ", FACTORY DEFAULT — anyone can change this card",
            Some(false) => ", not the factory default",
            None => "",
        }
    );
    say!(
        "State      {}",
        if report.is_blank() {
            "blank"
        } else {
            "has keys/certificates"
        }
    );
    for s in &report.slots {
        print!("Slot {:<26}", s.slot.to_string());
        match (&s.certificate, &s.certificate_error, s.key_present) {
            (Some(c), _, _) => {
                say!("certificate");
                print_certificate(c, "    ");
            }
            (None, Some(e), _) => say!("unreadable certificate: {e}"),
            (None, None, Some(true)) => say!("key, no certificate"),
            (None, None, _) if s.key_proof.is_some() => say!("key, no certificate"),
            (None, None, _) => say!("empty"),
        }
        if let Some(proof) = &s.key_proof {
            say!("    key       {}", proof.describe());
        }
    }
    Ok(())
}

pub fn print_certificate(c: &CertificateInfo, indent: &str) {
    say!("{indent}subject   {}", c.subject);
    say!("{indent}issuer    {}", c.issuer);
    say!(
        "{indent}valid     {} .. {}",
        format_unix(c.not_before),
        format_unix(c.not_after)
    );
    say!("{indent}SHA-256   {}", c.sha256);
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Reader: the exact name or a part that matches exactly one reader.
    #[arg(long, short)]
    pub reader: String,
    /// PIV slot.
    #[arg(long, default_value = "9e")]
    pub slot: Slot,
    /// Output file; `.der` (or `.cer`) writes DER, anything else PEM.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub overwrite: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

pub fn export(args: &ExportArgs, paths: Paths) -> Result<(), Failure> {
    let station = Station::open(paths)?;
    let source = CardSource::pcsc(&args.reader)?;
    let name = source.name();
    let obj = source
        .with_card(|t| PivSession::open(t).and_then(|mut s| s.read_certificate(args.slot)))??
        .ok_or_else(|| {
            Failure::new(
                ErrorCode::NoCertificate,
                format!(
                    "slot {} holds no certificate; enrol the card first",
                    args.slot
                ),
            )
        })?;
    let info = CertificateInfo::parse(&obj.der)
        .map_err(|e| Failure::new(ErrorCode::Certificate, e.to_string()))?;
    write_certificate_file(&args.out, &obj.der, args.overwrite)?;
    station.store.audit(
        &station.operator,
        &station.station_id,
        AuditAction::Export,
        &info.sha256,
        "ok",
        &serde_json::json!({"reader": name, "slot": args.slot.short(), "file": args.out}),
    )?;
    if args.json {
        print_json(&serde_json::json!({"ok": true, "file": args.out, "certificate": info}));
    } else {
        say!("Wrote {} ({})", args.out.display(), info.subject);
        say!("SHA-256 {}", info.sha256);
    }
    Ok(())
}

/// Write `der` as DER or PEM according to the file extension.
pub fn write_certificate_file(
    path: &std::path::Path,
    der: &[u8],
    overwrite: bool,
) -> Result<(), Failure> {
    if !overwrite && path.exists() {
        return Err(Failure::new(
            ErrorCode::FileExists,
            format!(
                "{} already exists; choose another name or pass --overwrite",
                path.display()
            ),
        ));
    }
    let is_der = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("der") || e.eq_ignore_ascii_case("cer"));
    let bytes = if is_der {
        der.to_vec()
    } else {
        to_pem(der).into_bytes()
    };
    std::fs::write(path, bytes).map_err(|e| {
        Failure::new(
            ErrorCode::WriteFile,
            format!(
                "cannot write {}: {e}. Check the folder exists and is writable",
                path.display()
            ),
        )
    })
}

#[derive(Args, Debug)]
pub struct EnrollmentsArgs {
    /// How many records to show.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

pub fn enrollments(args: &EnrollmentsArgs, paths: Paths) -> Result<(), Failure> {
    let station = Station::open(paths)?;
    let rows = station.store.enrollments(args.limit)?;
    if args.json {
        print_json(&rows);
        return Ok(());
    }
    if rows.is_empty() {
        say!("No enrollments recorded at this station yet.");
    }
    for r in rows {
        say!(
            "#{:<5} {} {:<11} slot {} {}{} {}",
            r.id,
            format_unix(r.started_at),
            serde_json::to_value(r.state)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            r.slot,
            r.fingerprint
                .as_deref()
                .map(|f| &f[..16.min(f.len())])
                .unwrap_or("-"),
            if r.attestation.is_some() {
                " attested"
            } else {
                ""
            },
            match (&r.error, &r.label) {
                (Some(e), _) => e.clone(),
                (None, Some(l)) => format!("{l} — {}", r.subject),
                (None, None) => r.subject.clone(),
            },
        );
    }
    Ok(())
}
