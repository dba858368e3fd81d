//! The configured action after a decision: a program started directly (no shell), the
//! decision in its environment. Card data (subject, fingerprint) only ever travels as
//! environment values, never as part of a command line that something would parse.
//!
//! An action is a process group of its own with a clean environment: it sees the
//! decision and a fixed `PATH`, not the gateway's environment (which may name the
//! client key, a proxy, a token). Its output goes to the gateway's log, one line at a
//! time and bounded, never into the gateway's own output (`check --json` is one JSON
//! document). Its life is bounded: when its first process exits, or at the timeout,
//! whatever is left of the group is killed, so nothing it forked lingers.
//!
//! [`Actions`] runs them off the decision loop, one lane per reader: a slow door on
//! one reader never delays a decision, nor another reader's action; the actions of one
//! reader still run in the order of its decisions.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
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

/// The one inherited-looking variable an action gets: where to find programs.
pub const ACTION_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Output an action may leave in the log, per run: enough for a diagnosis, not a flood.
const MAX_OUTPUT_LINES: usize = 50;
const MAX_LINE_CHARS: usize = 300;

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

/// The command for `argv` and `outcome`: its own process group, nothing inherited.
fn command(program: &str, args: &[String], outcome: &Outcome, event_id: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", ACTION_PATH)
        .current_dir("/")
        .process_group(0)
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
    cmd
}

/// Log what an action writes (stdout and stderr, one pipe), cleaned and bounded; the
/// rest is read and dropped so that the action never blocks on a full pipe.
fn log_output(output: impl Read + Send + 'static, program: String, event_id: String) {
    let spawned = std::thread::Builder::new()
        .name("action-output".into())
        .spawn(move || {
            let mut lines = BufReader::new(output).split(b'\n');
            let mut shown = 0;
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if shown == MAX_OUTPUT_LINES {
                    tracing::info!(event = %event_id, "action {program}: (further output not logged)");
                }
                shown += 1;
                if shown > MAX_OUTPUT_LINES {
                    continue;
                }
                let text: String = clean(&String::from_utf8_lossy(&line))
                    .chars()
                    .take(MAX_LINE_CHARS)
                    .collect();
                tracing::info!(event = %event_id, "action {program}: {text}");
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot read the action's output: {e}");
    }
}

/// Whether `child` has exited, without reaping it: its process group id stays its
/// own until it is reaped, so the group can still be killed safely.
fn exited(child: &Child) -> std::io::Result<bool> {
    let pid: libc::id_t = child.id();
    // SAFETY: waitid writes only into `info`, which lives for the call.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: si_pid is set by waitid (zero while the child still runs).
    Ok(unsafe { info.si_pid() } != 0)
}

/// SIGKILL to every process of the action's group.
fn kill_group(child: &Child) {
    if let Ok(pgid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: a plain system call; the group is the child's own (process_group(0)),
        // and the child is not reaped yet, so its id cannot name anyone else's group.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
}

/// Run `argv` for `outcome` and wait for it, killing its whole group after `timeout`.
pub fn run(argv: &[String], outcome: &Outcome, event_id: &str, timeout: Duration) -> ActionResult {
    let Some((program, args)) = argv.split_first() else {
        return ActionResult::Exited(0);
    };
    let mut cmd = command(program, args, outcome, event_id);
    let (reader, writer) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => return ActionResult::CannotStart(format!("{program}: {e}")),
    };
    match writer.try_clone() {
        Ok(w) => cmd.stdout(w).stderr(writer),
        Err(e) => return ActionResult::CannotStart(format!("{program}: {e}")),
    };
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return ActionResult::CannotStart(format!("{program}: {e}")),
    };
    // The command held the pipe's write ends; dropping it leaves them to the action
    // alone, so the output reader ends when the group does.
    drop(cmd);
    log_output(reader, program.clone(), event_id.to_string());
    let deadline = Instant::now() + timeout;
    let timed_out = loop {
        match exited(&child) {
            Ok(true) => break false,
            Ok(false) if Instant::now() >= deadline => break true,
            Ok(false) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                kill_group(&child);
                let _ = child.wait();
                return ActionResult::CannotStart(format!("{program}: {e}"));
            }
        }
    };
    // What the action forked dies with it.
    kill_group(&child);
    let status = child.wait();
    if timed_out {
        return ActionResult::TimedOut;
    }
    match status {
        Ok(s) => s
            .code()
            .map(ActionResult::Exited)
            .unwrap_or(ActionResult::Signalled),
        Err(e) => ActionResult::CannotStart(format!("{program}: {e}")),
    }
}

/// [`run`], with anything but a clean exit logged.
pub fn run_logged(argv: &[String], outcome: &Outcome, event_id: &str, timeout: Duration) {
    match run(argv, outcome, event_id, timeout) {
        ActionResult::Exited(0) => {}
        other => tracing::warn!(
            event = %event_id,
            "action {:?}: {other:?}",
            argv.first().map(String::as_str).unwrap_or("")
        ),
    }
}

struct Job {
    argv: Vec<String>,
    outcome: Outcome,
    event_id: String,
}

/// Actions run off the decision loop, one lane (thread) per reader.
pub struct Actions {
    timeout: Duration,
    lanes: HashMap<String, mpsc::Sender<Job>>,
}

impl Actions {
    pub fn new(timeout: Duration) -> Self {
        Actions {
            timeout,
            lanes: HashMap::new(),
        }
    }

    /// Queue `argv` for `outcome` on its reader's lane and return at once.
    pub fn start(&mut self, argv: &[String], outcome: &Outcome, event_id: &str) {
        if argv.is_empty() {
            return;
        }
        let mut job = Job {
            argv: argv.to_vec(),
            outcome: outcome.clone(),
            event_id: event_id.to_string(),
        };
        if let Some(lane) = self.lanes.get(&outcome.reader) {
            match lane.send(job) {
                Ok(()) => return,
                // The lane's thread is gone: open a new one below.
                Err(mpsc::SendError(j)) => job = j,
            }
        }
        let (tx, rx) = mpsc::channel::<Job>();
        let timeout = self.timeout;
        let spawned = std::thread::Builder::new()
            .name("actions".into())
            .spawn(move || {
                for job in rx {
                    run_logged(&job.argv, &job.outcome, &job.event_id, timeout);
                }
            });
        match spawned {
            Ok(_) => {
                let _ = tx.send(job);
                self.lanes.insert(outcome.reader.clone(), tx);
            }
            Err(e) => tracing::error!(event = %event_id, "cannot start an action lane: {e}"),
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

    fn alive(pid: i32) -> bool {
        // A zombie (killed, not yet reaped by whoever inherited it) counts as gone.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
    }

    fn wait_gone(pid: i32) -> bool {
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if !alive(pid) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn what_an_action_forks_is_killed_with_it_at_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let outcome = Outcome::card_unreachable("R", "gone".into(), None);
        // A background child that would outlive its parent, then a long wait.
        let script = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            "sleep 300 & echo $! > \"$0\"; echo $$ >> \"$0\"; sleep 30".to_string(),
            pids.display().to_string(),
        ];
        assert_eq!(
            run(&script, &outcome, "e", Duration::from_millis(500)),
            ActionResult::TimedOut
        );
        let text = std::fs::read_to_string(&pids).unwrap();
        for pid in text.lines().map(|l| l.trim().parse::<i32>().unwrap()) {
            assert!(wait_gone(pid), "process {pid} of the action outlived it");
        }
    }

    #[test]
    fn what_an_action_leaves_behind_when_it_exits_is_stopped_too() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let outcome = Outcome::card_unreachable("R", "gone".into(), None);
        let script = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            "sleep 300 & echo $! > \"$0\"".to_string(),
            pids.display().to_string(),
        ];
        assert_eq!(
            run(&script, &outcome, "e", Duration::from_secs(10)),
            ActionResult::Exited(0)
        );
        let pid: i32 = std::fs::read_to_string(&pids)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            wait_gone(pid),
            "the action's background child {pid} lingers"
        );
    }

    #[test]
    fn an_action_sees_the_decision_not_the_gateways_environment() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        // Whatever the gateway runs with (a proxy, a token) stays with the gateway.
        std::env::set_var("CARDSTATION_TEST_PRIVATE", "do-not-leak");
        let outcome = Outcome::card_unreachable("R", "gone".into(), None);
        let script = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            "env > \"$0\"; pwd >> \"$0\"".to_string(),
            out.display().to_string(),
        ];
        assert_eq!(
            run(&script, &outcome, "e9", Duration::from_secs(5)),
            ActionResult::Exited(0)
        );
        let env = std::fs::read_to_string(&out).unwrap();
        assert!(!env.contains("do-not-leak"), "{env}");
        assert!(!env.contains("HOME="), "{env}");
        assert!(env.contains(&format!("PATH={ACTION_PATH}")), "{env}");
        assert!(env.contains("CARDSTATION_EVENT_ID=e9"), "{env}");
        assert!(env.lines().any(|l| l == "/"), "{env}");
    }

    #[test]
    fn a_slow_action_on_one_reader_does_not_hold_up_another() {
        let dir = tempfile::tempdir().unwrap();
        let done = dir.path().join("done");
        let mut actions = Actions::new(Duration::from_secs(30));
        let slow = vec!["/bin/sleep".to_string(), "20".to_string()];
        let quick = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            "echo \"$CARDSTATION_READER\" >> \"$0\"".to_string(),
            done.display().to_string(),
        ];
        let on = |reader: &str| Outcome::card_unreachable(reader, "x".into(), None);
        let started = Instant::now();
        actions.start(&slow, &on("A"), "1");
        actions.start(&quick, &on("B"), "2");
        // Returned at once, and B's action ran while A's still sleeps.
        assert!(started.elapsed() < Duration::from_secs(2));
        let until = Instant::now() + Duration::from_secs(10);
        while !done.exists() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(std::fs::read_to_string(&done).unwrap_or_default(), "B\n");
    }
}
