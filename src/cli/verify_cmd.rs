//! `cardstation verify`: the gateway's challenge-response, with the verdict and every reason.

use clap::Args;

use cardstation::app::spot_check::{
    replay_findings, spot_check, ChallengeBook, Finding, Policy, SpotCheck, Verdict,
};
use cardstation::app::station::Station;
use cardstation::card::pcsc_reader::Pcsc;
use cardstation::config::Paths;
use cardstation::console::trust;
use cardstation::piv::Slot;
use cardstation::pki::certificate::from_pem_or_der;

use super::enroll_cmd::read_pin;
use super::output::{print_json, Failure};

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Reader: the exact name or a part that matches exactly one reader.
    #[arg(long, short)]
    pub reader: String,
    /// PIV slot to check.
    #[arg(long, default_value = "9e")]
    pub slot: Slot,
    /// Read the card's PIN from the first line of standard input (slots 9a/9c/9d).
    #[arg(long)]
    pub pin_stdin: bool,
    /// Also capture one exchange and replay it, to show the verifier rejects replays.
    #[arg(long)]
    pub replay_test: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// Exit codes: 0 PASS, 1 FAIL (or error), 3 signature valid but trust unknown (no bundle).
pub fn run(args: &VerifyArgs, paths: Paths) -> Result<i32, Failure> {
    let station = Station::open(paths)?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // The cached trust bundle, verified again with the pinned key.
    let (payload, status) = match trust::load_key(station.config.console.bundle_key.as_deref()) {
        Ok(key) => (
            trust::current(&station.store, &key)
                .map_err(|e| Failure::new(e.code(), e.to_string()))?,
            trust::status(&station.store, &key, now)
                .map_err(|e| Failure::new(e.code(), e.to_string()))?,
        ),
        Err(trust::TrustError::NoKey) => (None, None),
        Err(e) => return Err(Failure::new(e.code(), e.to_string())),
    };
    let issuing_ca = match &station.config.verify.issuing_ca {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| {
                Failure::new(
                    "config",
                    format!("[verify] issuing_ca {}: {e}", path.display()),
                )
            })?;
            Some(
                from_pem_or_der(&bytes)
                    .map_err(|e| Failure::new("config", format!("[verify] issuing_ca: {e}")))?,
            )
        }
        None => None,
    };
    let pin = if args.pin_stdin {
        Some(read_pin()?)
    } else {
        None
    };
    let policy = Policy {
        bundle: payload.as_ref().zip(status.as_ref()),
        issuing_ca: issuing_ca.as_deref(),
        now,
    };

    let pcsc = Pcsc::establish()?;
    let name = pcsc.resolve(&args.reader)?;
    let mut conn = pcsc.connect(&name)?;
    let mut book = ChallengeBook::default();
    let (check, captured) = spot_check(
        conn.transaction()?,
        args.slot,
        pin.as_ref(),
        &policy,
        &mut book,
    );
    let replay = match (args.replay_test, &captured) {
        (true, Some(c)) => Some(replay_findings(&mut book, c)),
        (true, None) => Some(vec![Finding {
            code: "replay-not-run",
            ok: false,
            message: "no exchange could be captured: the card did not answer the challenge".into(),
        }]),
        (false, _) => None,
    };
    audit(&station, &check);

    let replay_ok = replay.as_ref().is_none_or(|r| r.iter().all(|f| f.ok));
    if args.json {
        print_json(&serde_json::json!({"check": check, "replay": replay}));
    } else {
        print_human(&check, replay.as_deref());
    }
    Ok(match (check.verdict, replay_ok) {
        (Verdict::Pass, true) => 0,
        (Verdict::TrustUnknown, true) => 3,
        _ => 1,
    })
}

fn audit(station: &Station, check: &SpotCheck) {
    let reasons: Vec<&str> = check.failures().map(|f| f.message.as_str()).collect();
    let _ = station.store.audit(
        &station.operator,
        &station.station_id,
        "spot-check",
        check.fingerprint.as_deref().unwrap_or("(no certificate)"),
        match check.verdict {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::TrustUnknown => "trust-unknown",
        },
        &serde_json::json!({
            "reader": check.reader, "slot": check.slot.short(), "subject": check.subject,
            "reasons": reasons, "bundle_version": check.bundle_version,
        }),
    );
}

fn print_human(check: &SpotCheck, replay: Option<&[Finding]>) {
    let verdict = match check.verdict {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::TrustUnknown => "SIGNATURE VALID, TRUST UNKNOWN",
    };
    println!("{verdict}  — {} slot {}", check.reader, check.slot);
    if let Some(s) = &check.subject {
        println!("  subject  {s}");
    }
    if let Some(fp) = &check.fingerprint {
        println!("  SHA-256  {fp}");
    }
    for f in &check.findings {
        println!("  {} {}", if f.ok { "ok  " } else { "FAIL" }, f.message);
    }
    if let Some(r) = replay {
        println!("Replay test:");
        for f in r {
            println!(
                "  {} {}",
                if f.ok { "rejected" } else { "ACCEPTED" },
                f.message
            );
        }
    }
    println!(
        "  {} APDUs, {} ms, trust bundle {}",
        check.apdus,
        check.millis,
        check
            .bundle_version
            .map(|v| format!("version {v}"))
            .unwrap_or_else(|| "none".into())
    );
}
