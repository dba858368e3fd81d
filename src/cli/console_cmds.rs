//! `upload`, `outbox`, `revoke`, `trust`: the station's side of the management console.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use cardstation::app::failure::Coded;
use cardstation::app::station::Station;
use cardstation::config::Paths;
use cardstation::console::outbox::{self, SyncReport};
use cardstation::console::trust::{self, BundleOutcome};
use cardstation::console::ConsoleClient;
use cardstation_pki::certificate::{format_age, format_unix, from_pem_or_der, to_pem};
use cardstation_pki::CertificateInfo;
use cardstation_protocol::messages::{UploadRequest, REVOCATION_REASONS};

use super::output::{print_json, say, ErrorCode, Failure};

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[derive(Args, Debug)]
pub struct UploadArgs {
    /// Certificate file, PEM or DER.
    pub file: PathBuf,
    /// A label for the console (e.g. the gateway's name).
    #[arg(long)]
    pub label: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// Queue the upload (committed first), then try to deliver the whole outbox.
pub fn upload(args: &UploadArgs, paths: Paths) -> Result<(), Failure> {
    let station = Station::open(paths)?;
    let bytes = std::fs::read(&args.file).map_err(|e| {
        Failure::new(
            ErrorCode::ReadFile,
            format!("cannot read {}: {e}", args.file.display()),
        )
    })?;
    let der =
        from_pem_or_der(&bytes).map_err(|e| Failure::new(ErrorCode::Certificate, e.to_string()))?;
    let info = CertificateInfo::parse(&der)
        .map_err(|e| Failure::new(ErrorCode::Certificate, e.to_string()))?;
    if info.public_key.is_none() {
        return Err(Failure::new(
            ErrorCode::Certificate,
            "the certificate's key is not an ECDSA P-256 key",
        ));
    }
    // What this station knows about the card that carries it.
    let enrolled = station.store.enrollment_by_fingerprint(&info.sha256)?;
    let req = UploadRequest {
        certificate: to_pem(&der),
        card_serial: enrolled.as_ref().and_then(|e| e.card_serial),
        chuid_guid: enrolled.as_ref().map(|e| e.new_guid.clone()),
        slot: enrolled.as_ref().map(|e| e.slot.short().to_string()),
        label: args.label.clone(),
        operator: station.operator.clone(),
        station_id: station.station_id.clone(),
        // The card's proof, kept with the enrollment: a certificate uploaded later
        // carries it as `enroll --upload` would have.
        attestation: enrolled
            .as_ref()
            .and_then(|e| e.attestation.as_deref())
            .and_then(|json| serde_json::from_str(json).ok()),
    };
    let report = enqueue_and_sync(&station, &info.sha256, &req)?;
    report_sync(&report, args.json, Some(&info.sha256));
    refused_by_console(&report, args.json)
}

/// The command's result after a delivery: a failure (already shown) when the console
/// refused what was queued.
pub fn refused_by_console(report: &SyncReport, json: bool) -> Result<(), Failure> {
    match console_refusal(report) {
        Some(f) => {
            if !json {
                eprintln!("error: {}", f.message);
            }
            Err(f.reported())
        }
        None => Ok(()),
    }
}

/// Queue an upload (committed first) and try to deliver the outbox. Shared by
/// `upload` and `enroll --upload`; the caller reports.
pub fn enqueue_and_sync(
    station: &Station,
    sha256: &str,
    req: &UploadRequest,
) -> Result<SyncReport, Failure> {
    // The queued row and its audit row are written together.
    outbox::enqueue_upload(&station.store, sha256, req)?;
    try_sync(station)
}

/// Deliver what is due after an action that already succeeded (enroll, replace):
/// whatever stops the delivery is reported beside the action's result.
pub fn sync_quietly(station: &Station) -> SyncReport {
    try_sync(station).unwrap_or_else(|f| SyncReport {
        error: Some(f.message),
        error_code: Some(f.code),
        pending: station.store.outbox_pending().unwrap_or(-1),
        ..Default::default()
    })
}

/// Deliver what is due. The console being away is not a failure (the report says
/// what waits); the station database failing to record a delivery is.
fn try_sync(station: &Station) -> Result<SyncReport, Failure> {
    let client = match ConsoleClient::new(&station.config.console) {
        Ok(c) => c,
        Err(e) => {
            return Ok(SyncReport {
                error: Some(e.to_string()),
                error_code: Some(e.code()),
                pending: station.store.outbox_pending()?,
                ..Default::default()
            })
        }
    };
    let settings = station.delivery_settings();
    let sender = outbox::Sender {
        station_id: &station.station_id,
        settings: &settings,
    };
    let mut r = outbox::sync(&station.store, &client, sender)?;
    // The console was reached: bring the trust bundle up to date too, so a
    // spot check right after sees what was just delivered.
    if r.error.is_none() {
        if let Ok(key) = trust::load_key(station.config.console.bundle_key.as_deref()) {
            if let Err(e) = trust::sync(&station.store, &client, &key, now()) {
                r.bundle_error = Some(e.to_string());
            }
        }
    }
    Ok(r)
}

pub fn report_sync(r: &SyncReport, json: bool, queued: Option<&str>) {
    report_sync_with(r, json, queued, true)
}

/// What the console refused in a delivery that followed the command's own queueing:
/// the command failed at what it was for (the card, if one was enrolled, stays so), and
/// says what to do.
pub fn console_refusal(r: &SyncReport) -> Option<Failure> {
    (r.rejected > 0).then(|| {
        Failure::new(
            ErrorCode::ConsoleRejected,
            format!(
                "the console refused {} item{}: {}. What it refused has reached neither the console nor the gateways (a card whose certificate it refused is enrolled on the card but accepted nowhere); `cardstation outbox list` shows it",
                r.rejected,
                if r.rejected == 1 { "" } else { "s" },
                r.error.as_deref().unwrap_or("no reason given")
            ),
        )
    })
}

fn report_sync_with(r: &SyncReport, json: bool, queued: Option<&str>, show_error: bool) {
    if json {
        let refused = console_refusal(r);
        print_json(&serde_json::json!({
            "ok": refused.is_none(), "queued": queued, "sync": r, "error": refused,
        }));
        return;
    }
    if let Some(fp) = queued {
        say!("Queued {fp}");
    }
    say!(
        "Delivered {}, refused {}, still queued {}",
        r.delivered,
        r.rejected,
        r.pending
    );
    if let (true, Some(e)) = (show_error, &r.error) {
        eprintln!("note: {e}");
    }
    if let Some(e) = &r.bundle_error {
        eprintln!("note: the trust bundle was not updated: {e}");
    }
    if let Some(e) = &r.anchor_error {
        eprintln!("warning: the audit trail was not anchored at the console: {e}");
    }
}

#[derive(Subcommand, Debug)]
pub enum OutboxCommand {
    /// Everything waiting for the console, with attempts and the last error.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Deliver everything queued now.
    Sync {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Queue again what the console refused because of this station's settings (its
    /// credential or its name), then deliver. This happens by itself once the console
    /// settings change; after a fix at the console (e.g. a station re-registered) it
    /// is the way to ask for it.
    Retry {
        /// Every refused item, also those refused for the request itself.
        #[arg(long)]
        all: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

pub fn outbox_cmd(cmd: &OutboxCommand, paths: Paths) -> Result<(), Failure> {
    let station = Station::open(paths)?;
    match cmd {
        OutboxCommand::List { json } => {
            let items = station.store.outbox_items()?;
            if *json {
                print_json(&items);
                return Ok(());
            }
            if items.is_empty() {
                say!("The outbox is empty: everything was delivered.");
            }
            for i in items {
                say!(
                    "#{:<5} {:<7} {} {:<8} queued {} attempts {}{}",
                    i.id,
                    serde_json::to_value(i.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default(),
                    i.fingerprint,
                    i.state,
                    format_unix(i.created_at),
                    i.attempts,
                    i.last_error
                        .map(|e| format!("\n       last error: {e}"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        OutboxCommand::Sync { json } => sync_now(&station, *json),
        OutboxCommand::Retry { all, json } => {
            let n = station.store.outbox_requeue_refused(None, *all, now())?;
            if !*json {
                say!("Queued again {n}");
            }
            sync_now(&station, *json)
        }
    }
}

/// Make every queued item due and deliver; a failure that leaves items queued is
/// the command's failure.
fn sync_now(station: &Station, json: bool) -> Result<(), Failure> {
    station.store.outbox_due_now(now())?;
    let report = try_sync(station)?;
    let failed = report.error.is_some() && report.pending > 0;
    report_sync_with(&report, json, None, !failed);
    match (&report.error_code, report.pending) {
        (Some(code), p) if p > 0 => Err(Failure::new(
            *code,
            report.error.clone().unwrap_or_default(),
        )),
        _ => Ok(()),
    }
}

#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// SHA-256 fingerprint of the certificate (64 hex digits).
    #[arg(long)]
    pub fingerprint: String,
    /// lost, stolen, damaged, replaced, expired or unspecified.
    #[arg(long)]
    pub reason: String,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

pub fn revoke(args: &RevokeArgs, paths: Paths) -> Result<(), Failure> {
    let fp = args
        .fingerprint
        .trim()
        .to_ascii_lowercase()
        .replace(':', "");
    if !cardstation_protocol::messages::is_fingerprint(&fp) {
        return Err(Failure::new(
            ErrorCode::BadFingerprint,
            "give the SHA-256 fingerprint: 64 hex digits",
        ));
    }
    if !REVOCATION_REASONS.contains(&args.reason.as_str()) {
        return Err(Failure::new(
            ErrorCode::BadReason,
            format!("reason must be one of {}", REVOCATION_REASONS.join(", ")),
        ));
    }
    let station = Station::open(paths)?;
    // The queued row and its audit row are written together.
    outbox::enqueue_revoke(
        &station.store,
        &fp,
        &args.reason,
        &station.operator,
        &station.station_id,
    )?;
    let report = try_sync(&station)?;
    report_sync(&report, args.json, Some(&fp));
    refused_by_console(&report, args.json)
}

#[derive(Subcommand, Debug)]
pub enum TrustCommand {
    /// Download the console's trust bundle, verify it with the pinned key and keep it.
    Sync {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Accept a new chain the console administrator started (`bundle reset`):
        /// the first 8 or more hex digits of its id, as they announced it.
        #[arg(long, value_name = "CHAIN")]
        accept_reset: Option<String>,
    },
    /// The trust bundle this station holds: version, age, list sizes.
    Show {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

pub fn trust_cmd(cmd: &TrustCommand, paths: Paths) -> Result<(), Failure> {
    let station = Station::open(paths)?;
    let key = trust::load_key(station.config.console.bundle_key.as_deref())?;
    match cmd {
        TrustCommand::Sync { json, accept_reset } => {
            let client = ConsoleClient::new(&station.config.console)?;
            let outcome = trust::sync_accepting(
                &station.store,
                &client,
                &key,
                now(),
                accept_reset.as_deref(),
            )?;
            let status = trust::status(&station.store, &key, now())?;
            if *json {
                print_json(&serde_json::json!({"ok": true, "outcome": outcome, "bundle": status}));
            } else {
                match outcome {
                    BundleOutcome::Updated {
                        from,
                        to,
                        delta,
                        history_checked,
                    } => {
                        say!(
                            "Trust bundle updated: version {} -> {to} ({})",
                            from.map(|v| v.to_string()).unwrap_or_else(|| "none".into()),
                            if delta { "delta" } else { "full bundle" }
                        );
                        if !history_checked && from.is_some() {
                            say!("Note: this station was too far behind for the console to show its history, so continuity with version {} was not checked.", from.unwrap_or(0));
                        }
                    }
                    BundleOutcome::Unchanged { version } => {
                        say!("Trust bundle unchanged: version {version}")
                    }
                }
            }
            Ok(())
        }
        TrustCommand::Show { json } => {
            let status = trust::status(&station.store, &key, now())?;
            let payload = trust::current(&station.store, &key)?;
            if *json {
                let lists = payload.as_ref().map(|v| {
                    let mut lists = serde_json::json!({
                        "allowed": v.lists.allowed().iter().map(hex::encode).collect::<Vec<_>>(),
                        "revoked": v.lists.revoked().iter().map(|r| serde_json::json!({
                            "sha256": hex::encode(r.fp), "reason": r.reason, "revoked_at": r.at,
                        })).collect::<Vec<_>>(),
                        "revoked_keys": v.lists.revoked_keys().iter().map(hex::encode).collect::<Vec<_>>(),
                    });
                    // Only a revocation-only bundle has an authority.
                    if let Some(a) = v.lists.authority() {
                        lists["authority"] = serde_json::json!({
                            "issuing_cas": a.cas.iter().map(|c| cardstation_pki::certificate::to_pem(c)).collect::<Vec<_>>(),
                            "revoked_ids": a.revoked_ids.iter().map(hex::encode).collect::<Vec<_>>(),
                            "issued_up_to": a.issued_up_to,
                            "attested_since": a.attested_since,
                        });
                    }
                    lists
                });
                print_json(&serde_json::json!({"bundle": status, "lists": lists}));
                return Ok(());
            }
            let (Some(s), Some(p)) = (status, payload) else {
                say!("No trust bundle yet: run `cardstation trust sync` while the console is reachable.");
                return Ok(());
            };
            say!(
                "Version    {} (chain {}, hash {})",
                s.version,
                &s.chain[..8],
                &s.hash[..16]
            );
            say!(
                "Issued     {} ({} ago)",
                format_unix(s.issued_at),
                format_age(s.age_secs)
            );
            say!(
                "Expires    {}{}",
                format_unix(s.expires_at),
                if s.expired {
                    " — EXPIRED: sync with the console"
                } else {
                    ""
                }
            );
            say!("Fetched    {}", format_unix(s.fetched_at));
            if let Some(a) = p.lists.authority() {
                say!("Trust      revocations only: gateways accept what the site's CA issued, in date and not revoked");
                for ca in &a.cas {
                    match cardstation_pki::certificate::CertificateInfo::parse(ca) {
                        Ok(ca) => say!(
                            "  issuing CA \"{}\" until {}",
                            ca.subject,
                            format_unix(ca.not_after)
                        ),
                        Err(e) => say!("  issuing CA (unreadable: {e})"),
                    }
                }
                say!(
                    "Revoked    {} (certificates and keys, by 16-byte id)",
                    a.revoked_ids.len()
                );
                say!("Issued up to {}", issued_up_to_text(a.issued_up_to));
                if a.attested_since != 0 {
                    say!(
                        "Attested   every certificate of the CA from {} on (keys proven generated on the card)",
                        format_unix(a.attested_since)
                    );
                }
                return Ok(());
            }
            say!("Allowed    {}", s.allowed);
            if s.attested > 0 {
                say!(
                    "Attested   {} (keys proven generated on the card)",
                    s.attested
                );
            }
            say!("Revoked    {}", s.revoked);
            for r in p.lists.revoked() {
                say!(
                    "  {} {} ({})",
                    hex::encode(r.fp),
                    r.reason,
                    format_unix(r.at)
                );
            }
            say!("Revoked keys {}", s.revoked_keys);
            Ok(())
        }
    }
}

/// The issued-up-to mark in words: a site whose CA has issued nothing has none.
fn issued_up_to_text(mark: i64) -> String {
    if mark == 0 {
        "no certificate issued yet".into()
    } else {
        format_unix(mark)
    }
}
