//! Real processes for the gateway's tests: pcscd with the vpcd driver, the virtual card
//! (`cardstation virtual-card`), the reference console (`cardstation-console serve`),
//! the station that enrolls and uploads (`cardstation`), and the gateway itself.
//! The console, and the gateway identities it issues, come from the shared test site
//! (crates/test-site), as for the station's tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cardstation_pcsc::{CardPresence, Pcsc};
pub use cardstation_test_site::{binary, free_port, Console, Role};

pub const READER_0: &str = "Virtual PCD 00 00";
pub const READER_1: &str = "Virtual PCD 00 01";
pub const PORT_0: u16 = 35963;
pub const PORT_1: u16 = 35964;

static SLOTS: Mutex<()> = Mutex::new(());

/// The vpcd slots are shared by every test in this binary: one test at a time.
pub fn exclusive() -> MutexGuard<'static, ()> {
    SLOTS.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn gateway_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cardstation-gateway"))
}
pub fn station_bin() -> PathBuf {
    binary("cardstation")
}

/// pcscd with the vpcd driver, or `None` after saying why the test is skipped
/// (`CARDSTATION_REQUIRE_PCSCD=1`, set by scripts/test-all, makes it a failure).
pub fn pcscd_or_skip() -> Option<Pcsc> {
    let required = std::env::var_os("CARDSTATION_REQUIRE_PCSCD").is_some_and(|v| v == "1");
    let problem = match Pcsc::establish().and_then(|p| p.reader_names().map(|n| (p, n))) {
        Ok((p, names)) if names.iter().any(|n| n == READER_0) => return Some(p),
        Ok(_) => "pcscd runs, but without the vpcd driver (vsmartcard-vpcd)".to_string(),
        Err(e) => format!("pcscd is not reachable: {e}"),
    };
    if required {
        panic!("{problem}. scripts/test-all installs and starts pcscd with the vpcd driver.");
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {}: {problem}. Run scripts/test-all to run it.",
        std::thread::current().name().unwrap_or("a pcscd test")
    );
    None
}

/// Wait up to `timeout` for `reader` to report `want`.
pub fn wait_for(reader: &str, want: CardPresence, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let state = Pcsc::establish()
            .and_then(|p| p.readers())
            .ok()
            .and_then(|rs| rs.into_iter().find(|r| r.name == reader))
            .map(|r| r.card);
        if state.as_ref() == Some(&want) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A virtual card in pcscd, served by its own `cardstation virtual-card` process.
pub struct CardProcess {
    child: Option<Child>,
    pub reader: &'static str,
}

impl CardProcess {
    pub fn start(port: u16, state: &Path) -> CardProcess {
        let reader = if port == PORT_0 { READER_0 } else { READER_1 };
        // The previous card of this slot may still be on its way out (pcscd polls vpcd):
        // a "present" seen now would be that card, not this one.
        assert!(
            wait_for(reader, CardPresence::Absent, Duration::from_secs(15)),
            "{reader} still holds a card from before"
        );
        // vpcd now and then leaves a fresh connection waiting right after the previous
        // card of the slot went away; a new process gets it through.
        for _ in 0..3 {
            let mut child = Command::new(station_bin())
                .args(["virtual-card", "--port", &port.to_string(), "--state"])
                .arg(state)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start cardstation virtual-card");
            if wait_for(reader, CardPresence::Present, Duration::from_secs(8)) {
                return CardProcess {
                    child: Some(child),
                    reader,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_secs(1));
        }
        panic!("reader {reader:?} never showed the virtual card");
    }

    /// Pull the card: the process ends, pcscd sees the slot empty.
    pub fn pull(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn remove(mut self) {
        self.pull();
        assert!(
            wait_for(self.reader, CardPresence::Absent, Duration::from_secs(15)),
            "the card did not leave {}",
            self.reader
        );
    }
}

impl Drop for CardProcess {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.pull();
            wait_for(self.reader, CardPresence::Absent, Duration::from_secs(15));
        }
    }
}

/// The site's console: `Console::start(dir, port, bundle_hours)`.
pub fn start_console(dir: &Path, port: u16, bundle_hours: u64) -> Console {
    Console::start_with(dir, port, &["--bundle-hours", &bundle_hours.to_string()])
}

/// A station configured for the console: enrolls cards and uploads them.
pub struct Station {
    pub dir: tempfile::TempDir,
}

impl Station {
    /// A station configured from the kit `identity add --role station NAME` writes
    /// (with an operator and short console timeouts added), as an installer does.
    pub fn from_kit(console: &Console, name: &str) -> Station {
        let dir = tempfile::tempdir().expect("temp dir");
        let kit = dir.path().join("kit");
        console.add_identity(Role::Station, name, &kit);
        let written = std::fs::read_to_string(kit.join(Role::Station.config_file()))
            .expect("the cardstation.toml identity add wrote");
        let config = cardstation_test_site::site::test_station_config(&written);
        std::fs::write(dir.path().join("cardstation.toml"), config).expect("station config");
        Station { dir }
    }

    pub fn new(console: &Console) -> Station {
        let dir = tempfile::tempdir().expect("temp dir");
        let c = &console.dir;
        std::fs::write(
            dir.path().join("cardstation.toml"),
            format!(
                "[station]\nid = \"station-1\"\noperator = \"op\"\n\n[console]\nurl = \"https://localhost:{}\"\n\
                 ca = {:?}\nclient_cert = {:?}\nclient_key = {:?}\nbundle_key = {:?}\n\
                 connect_timeout_secs = 2\nrequest_timeout_secs = 5\n",
                console.port,
                c.join("ca.pem"),
                c.join("station.pem"),
                c.join("station.key"),
                c.join("bundle-signing.pub.pem"),
            ),
        )
        .expect("station config");
        Station { dir }
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(station_bin())
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .arg("--config")
            .arg(self.dir.path().join("cardstation.toml"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run cardstation")
    }

    /// Enroll the card in `reader` (and upload it); its certificate's fingerprint.
    pub fn enroll(&self, reader: &str, upload: bool) -> String {
        let mut args = vec!["enroll", "--reader", reader, "--json"];
        if upload {
            args.push("--upload");
        }
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "enroll: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("enroll JSON");
        v["enrollment"]["fingerprint"]
            .as_str()
            .expect("fingerprint")
            .to_string()
    }

    pub fn revoke(&self, fingerprint: &str, reason: &str) {
        let out = self.run(&["revoke", "--fingerprint", fingerprint, "--reason", reason]);
        assert!(
            out.status.success(),
            "revoke: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A gateway's configuration and data directory.
pub struct Gateway {
    pub dir: tempfile::TempDir,
    /// Its name at the console (and in its events).
    pub name: String,
}

pub struct GatewayOptions {
    pub fail_open: bool,
    pub refresh_secs: u64,
    pub readers: Vec<String>,
    /// In place of the action that appends to `actions.log` on a grant.
    pub on_grant: Option<Vec<String>>,
    /// More `[gateway]` lines, as TOML (`issuing_ca = "…"`, `action_timeout_secs = 2`).
    pub extra: String,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            fail_open: false,
            refresh_secs: 300,
            readers: vec![READER_0.to_string()],
            on_grant: None,
            extra: String::new(),
        }
    }
}

impl Gateway {
    /// A gateway of `console`, configured from the kit `identity add --role gateway
    /// gw-test-N` writes. Its actions append their environment to `actions.log`.
    pub fn new(console: &Console, opts: GatewayOptions) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let kit = dir.path().join("credential");
        // One name per gateway: a console may serve several in one test.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
        let name = format!(
            "gw-test-{}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        console.add_identity(Role::Gateway, &name, &kit);
        let action = dir.path().join("action.sh");
        std::fs::write(
            &action,
            "#!/bin/sh\nprintf '%s %s %s %s\\n' \"$CARDSTATION_DECISION\" \"$CARDSTATION_FINGERPRINT\" \
             \"$CARDSTATION_REASONS\" \"$CARDSTATION_EVENT_ID\" >> \"$1\"\n",
        )
        .expect("action script");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&action, std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
        }
        let log = dir.path().join("actions.log");
        let readers: Vec<String> = opts.readers.iter().map(|r| format!("{r:?}")).collect();
        let on_grant: Vec<String> = match &opts.on_grant {
            Some(argv) => argv.iter().map(|a| format!("{a:?}")).collect(),
            None => vec![format!("{action:?}"), format!("{log:?}")],
        };
        // The settings `identity add` wrote, as an installer starts from them, with
        // short console timeouts and this test's [gateway] settings.
        let written = std::fs::read_to_string(kit.join(Role::Gateway.config_file()))
            .expect("the gateway.toml identity add wrote");
        assert!(written.contains(&format!("id = {name:?}")), "{written}");
        let config = written.replacen(
            "\n[gateway]\n",
            "connect_timeout_secs = 2\nrequest_timeout_secs = 5\n\n[gateway]\n",
            1,
        ) + &format!(
            "readers = [{}]\nslot = \"9e\"\non_grant = [{}]\non_deny = [{:?}, {:?}]\n\
             refresh_secs = {}\nfail_open = {}\ndata_dir = {:?}\n{}\n",
            readers.join(", "),
            on_grant.join(", "),
            action,
            log,
            opts.refresh_secs,
            opts.fail_open,
            dir.path().join("data"),
            opts.extra,
        );
        std::fs::write(dir.path().join("gateway.toml"), config).expect("gateway config");
        Gateway { dir, name }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("gateway.toml")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(gateway_bin());
        cmd.arg("--config").arg(self.config()).args(args);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .expect("run cardstation-gateway")
    }

    pub fn sync(&self) -> serde_json::Value {
        let out = self.run(&["sync", "--json"]);
        assert!(
            out.status.success(),
            "sync: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("sync JSON")
    }

    /// `check --json`: (exit code, the decision).
    pub fn check(&self, reader: &str) -> (i32, serde_json::Value) {
        let out = self.run(&["check", "--reader", reader, "--json"]);
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "check: {e}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), v)
    }

    pub fn status(&self) -> serde_json::Value {
        let out = self.run(&["status", "--json"]);
        assert!(
            out.status.success(),
            "status: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    /// Lines the actions wrote: "decision fingerprint reasons event-id".
    pub fn actions(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("actions.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// `run` in the background, its decision lines delivered as they come.
    pub fn daemon(&self) -> Daemon {
        self.daemon_with_env(&[])
    }

    /// [`Gateway::daemon`] with more variables in its environment.
    pub fn daemon_with_env(&self, vars: &[(&str, &str)]) -> Daemon {
        let mut child = self
            .command(&["run"])
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start cardstation-gateway run");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (etx, erx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = etx.send(line);
            }
        });
        Daemon {
            child,
            lines: rx,
            log: erx,
        }
    }
}

pub struct Daemon {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    log: mpsc::Receiver<String>,
}

impl Daemon {
    /// The next decision line, within `timeout`.
    pub fn next_decision(&self, timeout: Duration) -> String {
        self.lines.recv_timeout(timeout).unwrap_or_else(|_| {
            let log: Vec<String> = self.log.try_iter().collect();
            panic!(
                "no decision within {timeout:?}; gateway log:\n{}",
                log.join("\n")
            )
        })
    }

    /// The decision lines and log lines that came so far, without waiting.
    pub fn drain(&self) -> (Vec<String>, Vec<String>) {
        (
            self.lines.try_iter().collect(),
            self.log.try_iter().collect(),
        )
    }

    /// Wait for a diagnostic line containing `text`.
    pub fn wait_log(&self, text: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!(
            "the gateway never logged {text:?}; it logged:\n{}",
            seen.join("\n")
        )
    }

    /// SIGKILL: nothing gets to clean up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A field of a decision line ("grant reader=... fingerprint=... apdus=3 ms=40").
pub fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split(' ')
        .find_map(|w| w.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
}
