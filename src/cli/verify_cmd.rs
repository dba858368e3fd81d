//! `cardstation verify`: the gateway's challenge-response, with the verdict and every reason.

use clap::Args;

use cardstation::app::card_source::CardSource;
use cardstation::app::spot_check::{
    check_with_station, replay_findings, ChallengeBook, Finding, SpotCheck, Verdict,
};
use cardstation::app::station::Station;
use cardstation::config::Paths;
use cardstation_piv::Slot;

use super::enroll_cmd::read_pin;
use super::output::{print_json, say, ErrorCode, Failure};

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
    let pin = if args.pin_stdin {
        Some(read_pin()?)
    } else {
        None
    };
    let mut book = ChallengeBook::default();
    let (check, captured) = CardSource::pcsc(&args.reader)?
        .with_card(|t| check_with_station(t, &station, args.slot, pin.as_ref(), &mut book))?
        .map_err(|e| Failure::new(ErrorCode::VerifySetup, e))?;
    let replay = match (args.replay_test, &captured) {
        (true, Some(c)) => Some(replay_findings(&mut book, c)),
        (true, None) => Some(vec![Finding {
            code: "replay-not-run",
            ok: false,
            message: "no exchange could be captured: the card did not answer the challenge".into(),
        }]),
        (false, _) => None,
    };

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

fn print_human(check: &SpotCheck, replay: Option<&[Finding]>) {
    let verdict = match check.verdict {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::TrustUnknown => "SIGNATURE VALID, TRUST UNKNOWN",
    };
    say!("{verdict}  — {} slot {}", check.reader, check.slot);
    if let Some(s) = &check.subject {
        say!("  subject  {s}");
    }
    if let Some(fp) = &check.fingerprint {
        say!("  SHA-256  {fp}");
    }
    for f in &check.findings {
        say!("  {} {}", if f.ok { "ok  " } else { "FAIL" }, f.message);
    }
    if let Some(r) = replay {
        say!("Replay test:");
        for f in r {
            say!(
                "  {} {}",
                if f.ok { "rejected" } else { "ACCEPTED" },
                f.message
            );
        }
    }
    say!(
        "  {} APDUs, {} ms, trust bundle {}",
        check.apdus,
        check.millis,
        check
            .bundle_version
            .map(|v| format!("version {v}"))
            .unwrap_or_else(|| "none".into())
    );
}
