//! Support for tests that go through the real pcscd with vsmartcard's vpcd driver:
//! the virtual card runs as `cardstation virtual-card` in its own process, exactly
//! as an operator would start it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cardstation_pcsc::{CardPresence, Pcsc};

pub const READER_0: &str = "Virtual PCD 00 00";
pub const READER_1: &str = "Virtual PCD 00 01";
pub const PORT_0: u16 = 35963;
pub const PORT_1: u16 = 35964;

/// The vpcd slots are shared by every test in this binary: one test at a time.
static SLOTS: Mutex<()> = Mutex::new(());

pub fn exclusive() -> MutexGuard<'static, ()> {
    SLOTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// pcscd with the vpcd driver, or `None` after saying why the test is skipped.
///
/// A plain `cargo test` on a machine without them skips these tests with a message;
/// `scripts/test-all` (and so CI) sets `CARDSTATION_REQUIRE_PCSCD=1`, starts pcscd and
/// fails loudly instead: these are the tests that prove the product.
pub fn pcscd_or_skip() -> Option<Pcsc> {
    let required = std::env::var_os("CARDSTATION_REQUIRE_PCSCD").is_some_and(|v| v == "1");
    let problem = match Pcsc::establish().and_then(|p| p.reader_names().map(|names| (p, names))) {
        Ok((p, names)) if names.iter().any(|n| n == READER_0) => return Some(p),
        Ok(_) => "pcscd runs, but without the vpcd driver (vsmartcard-vpcd)".to_string(),
        Err(e) => format!("pcscd is not reachable: {e}"),
    };
    if required {
        panic!(
            "{problem}. This test needs pcscd with the vpcd driver; scripts/test-all installs and starts them."
        );
    }
    // Straight to stderr: the test harness captures print!/eprint!, and a skip must be seen.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {}: {problem}. Run scripts/test-all to run it (it starts pcscd with the virtual card).",
        std::thread::current().name().unwrap_or("a pcscd test")
    );
    None
}

/// pcscd, for helpers that only run once a test has decided to go ahead.
pub fn require_pcscd() -> Pcsc {
    match Pcsc::establish().and_then(|p| p.reader_names().map(|_| p)) {
        Ok(p) => p,
        Err(e) => panic!(
            "pcscd is needed for this test: {e}\n\
             Run the whole suite with scripts/test-all, which starts pcscd with the vpcd driver."
        ),
    }
}

pub fn cardstation_bin() -> &'static str {
    env!("CARGO_BIN_EXE_cardstation")
}

/// A virtual card served to pcscd by a `cardstation virtual-card` process.
pub struct CardProcess {
    child: Child,
    pub reader: &'static str,
}

impl CardProcess {
    pub fn start(port: u16, state: Option<&Path>) -> CardProcess {
        Self::start_with(port, state, &[])
    }

    /// With further `virtual-card` arguments (e.g. `--without-attestation`).
    pub fn start_with(port: u16, state: Option<&Path>, extra: &[&str]) -> CardProcess {
        let reader = if port == PORT_0 { READER_0 } else { READER_1 };
        // vpcd now and then leaves a fresh connection waiting (pcscd keeps reporting the
        // slot empty) right after the previous card of the slot went away; a new process
        // gets it through. Three attempts, then the test fails with what it saw.
        let mut last = None;
        for _ in 0..3 {
            let mut cmd = Command::new(cardstation_bin());
            cmd.args(["virtual-card", "--port", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if let Some(dir) = state {
                cmd.arg("--state").arg(dir);
            }
            cmd.args(extra);
            let mut child = cmd.spawn().expect("start cardstation virtual-card");
            match try_wait_for(reader, CardPresence::Present, Duration::from_secs(8)) {
                Ok(()) => return CardProcess { child, reader },
                Err(seen) => {
                    last = seen;
                    let _ = child.kill();
                    let _ = child.wait();
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        panic!(
            "reader {reader:?} never showed the virtual card (is vsmartcard-vpcd installed and pcscd running?): {last:?}"
        );
    }

    /// The card process, e.g. to stop it answering (SIGSTOP) as a hung card does.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        wait_for(self.reader, CardPresence::Absent);
    }
}

impl Drop for CardProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait until `reader` reports `want` (the virtual card takes about a second to appear).
pub fn wait_for(reader: &str, want: CardPresence) {
    if let Err(seen) = try_wait_for(reader, want.clone(), Duration::from_secs(15)) {
        panic!(
            "reader {reader:?} did not reach {want:?} (is vsmartcard-vpcd installed and pcscd running?): {seen:?}"
        );
    }
}

/// Wait up to `timeout` for `reader` to report `want`; on failure, the last state seen.
pub fn try_wait_for(
    reader: &str,
    want: CardPresence,
    timeout: Duration,
) -> Result<(), Option<CardPresence>> {
    let pcsc = require_pcscd();
    let deadline = Instant::now() + timeout;
    loop {
        let state = pcsc
            .readers()
            .ok()
            .and_then(|rs| rs.into_iter().find(|r| r.name == reader))
            .map(|r| r.card);
        if state.as_ref() == Some(&want) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(state);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A station data directory and config file of its own.
pub struct StationDir {
    pub dir: tempfile::TempDir,
}

impl StationDir {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("cardstation.toml"),
            "[station]\nid = \"ci-station\"\noperator = \"ci\"\n",
        )
        .expect("config");
        StationDir { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Run `cardstation` with this station's directories.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, "")
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new(cardstation_bin())
            .arg("--data-dir")
            .arg(self.path("data"))
            .arg("--config")
            .arg(self.path("cardstation.toml"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run cardstation");
        if let Some(mut input) = child.stdin.take() {
            let _ = input.write_all(stdin.as_bytes());
        }
        child.wait_with_output().expect("cardstation output")
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "cardstation {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        serde_json::from_slice(&out.stdout).expect("JSON output")
    }
}

/// Run an external tool and return stdout, failing the test with its stderr otherwise.
pub fn tool(program: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} is needed for this test ({e}); scripts/setup-debian installs it")
        });
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out.stdout
}
