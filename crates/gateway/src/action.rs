//! The configured action after a decision: a program started directly (no shell), the
//! decision in its environment. Card data (subject, fingerprint) only ever travels as
//! environment values, never as part of a command line that something would parse.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::decision::Outcome;

/// Environment variables an action receives.
pub const ENV_DECISION: &str = "CARDSTATION_DECISION";
pub const ENV_READER: &str = "CARDSTATION_READER";
pub const ENV_FINGERPRINT: &str = "CARDSTATION_FINGERPRINT";
pub const ENV_SUBJECT: &str = "CARDSTATION_SUBJECT";
pub const ENV_LABEL: &str = "CARDSTATION_LABEL";
pub const ENV_REASONS: &str = "CARDSTATION_REASONS";
pub const ENV_REASON_TEXT: &str = "CARDSTATION_REASON_TEXT";
pub const ENV_BUNDLE_VERSION: &str = "CARDSTATION_BUNDLE_VERSION";
pub const ENV_FAIL_OPEN: &str = "CARDSTATION_FAIL_OPEN";
pub const ENV_EVENT_ID: &str = "CARDSTATION_EVENT_ID";

/// How an action ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ActionResult {
    Exited(i32),
    Signalled,
    TimedOut,
    CannotStart(String),
}

/// Control characters (NUL above all, which no environment can hold) become '?'.
fn clean(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Run `argv` for `outcome`, killing it after `timeout`.
pub fn run(argv: &[String], outcome: &Outcome, event_id: &str, timeout: Duration) -> ActionResult {
    let Some((program, args)) = argv.split_first() else {
        return ActionResult::Exited(0);
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .env(ENV_DECISION, outcome.decision.as_str())
        .env(ENV_READER, clean(&outcome.reader))
        .env(
            ENV_FINGERPRINT,
            clean(outcome.fingerprint.as_deref().unwrap_or("")),
        )
        .env(ENV_SUBJECT, clean(outcome.subject.as_deref().unwrap_or("")))
        // The bundle does not carry labels yet; the variable is always set so that
        // scripts can rely on it.
        .env(ENV_LABEL, "")
        .env(ENV_REASONS, clean(&outcome.reason_codes()))
        .env(
            ENV_REASON_TEXT,
            clean(
                &outcome
                    .reasons
                    .iter()
                    .map(|r| r.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        )
        .env(
            ENV_BUNDLE_VERSION,
            outcome
                .bundle_version
                .map(|v| v.to_string())
                .unwrap_or_default(),
        )
        .env(ENV_FAIL_OPEN, if outcome.fail_open { "1" } else { "0" })
        .env(ENV_EVENT_ID, event_id);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return ActionResult::CannotStart(format!("{program}: {e}")),
    };
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return status
                    .code()
                    .map(ActionResult::Exited)
                    .unwrap_or(ActionResult::Signalled)
            }
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return ActionResult::TimedOut;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return ActionResult::CannotStart(format!("{program}: {e}")),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::decision::Reason;
    use cardstation_protocol::messages::Decision;

    #[test]
    fn card_data_reaches_the_action_as_data_only() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        let marker = dir.path().join("pwned");
        // A subject crafted to run a command if it ever went through a shell.
        let subject = format!("CN=x\"; touch {} #\u{0}", marker.display());
        let outcome = Outcome {
            decision: Decision::Deny,
            reader: "R".into(),
            fingerprint: Some("ab".repeat(32)),
            subject: Some(subject),
            reasons: vec![Reason {
                code: "revoked".into(),
                message: "revoked (lost)".into(),
            }],
            bundle_version: Some(7),
            fail_open: false,
            apdus: 3,
            millis: 1,
            since_present_ms: None,
        };
        // The action itself uses a shell (its own, fixed script); the card data reaches
        // it only as environment values.
        let script = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            "env > \"$0\"".to_string(),
            out.display().to_string(),
        ];
        assert_eq!(
            run(&script, &outcome, "e1", Duration::from_secs(5)),
            ActionResult::Exited(0)
        );
        let env = std::fs::read_to_string(&out).unwrap();
        assert!(env.contains("CARDSTATION_DECISION=deny"), "{env}");
        assert!(env.contains("CARDSTATION_REASONS=revoked"), "{env}");
        assert!(env.contains("CARDSTATION_BUNDLE_VERSION=7"), "{env}");
        assert!(env.contains("CARDSTATION_EVENT_ID=e1"), "{env}");
        assert!(env.contains("CARDSTATION_SUBJECT=CN=x\"; touch"), "{env}");
        assert!(!marker.exists(), "the subject was executed");
    }

    #[test]
    fn a_hung_action_is_killed_and_a_missing_one_reported() {
        let outcome = Outcome::card_unreachable("R", "gone".into(), None);
        let sleep = vec!["/bin/sleep".to_string(), "30".to_string()];
        let started = Instant::now();
        assert_eq!(
            run(&sleep, &outcome, "e", Duration::from_millis(200)),
            ActionResult::TimedOut
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        let missing = vec!["/nonexistent/door-opener".to_string()];
        assert!(matches!(
            run(&missing, &outcome, "e", Duration::from_secs(1)),
            ActionResult::CannotStart(_)
        ));
    }
}
