//! The site the station's and the gateway's end-to-end tests run against: the
//! reference console as a real process (`cardstation-console serve`), administered
//! through its command line as a console host's administrator would, and the
//! credentials it issues (`identity add`) as the kits a station or gateway is
//! configured from. Used as a dev-dependency only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The target directory's profile folder this test runs from
/// (target/debug/deps/TEST → target/debug).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let deps = exe.parent().expect("deps directory");
    deps.parent().expect("profile directory").to_path_buf()
}

/// One of the workspace's programs (`cardstation`, `cardstation-console`,
/// `cardstation-gateway`), built beside the tests. A test build does not make
/// another crate's executables, so a missing one is built once per test process
/// with the same cargo and target directory (scripts/test-all builds them first).
pub fn binary(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let profile = profile_dir();
    let path = profile.join(name);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !built.iter().any(|b| b == name) {
        let package = if name == "cardstation" {
            "cardstation"
        } else {
            name
        };
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "--quiet", "-p", package, "--bin", name])
            .arg("--manifest-path")
            .arg(workspace)
            .env(
                "CARGO_TARGET_DIR",
                profile.parent().expect("target directory"),
            );
        if profile.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        let status = cargo
            .status()
            .expect("run cargo to build a workspace program");
        assert!(status.success(), "building {name} failed");
        built.push(name.to_string());
    }
    assert!(
        path.exists(),
        "{} is missing after building it",
        path.display()
    );
    path
}

pub fn console_binary() -> PathBuf {
    binary("cardstation-console")
}

/// How a console is served.
#[derive(Debug, Clone, Default)]
pub struct Serve {
    /// `--database` (default: SQLite in the data directory).
    pub database: Option<String>,
    /// `--bundle-hours` (default: the console's).
    pub bundle_hours: Option<u64>,
}

/// `cardstation-console serve` on 127.0.0.1:`port`, until dropped or stopped.
pub struct Console {
    child: Child,
    pub dir: PathBuf,
    pub port: u16,
    pub serve: Serve,
}

impl Console {
    pub fn start(dir: &Path, port: u16, serve: Serve) -> Console {
        let mut cmd = Command::new(console_binary());
        cmd.args(["serve", "--data"])
            .arg(dir)
            .args(["--listen", &format!("127.0.0.1:{port}")]);
        if let Some(db) = &serve.database {
            cmd.args(["--database", db]);
        }
        if let Some(h) = serve.bundle_hours {
            cmd.args(["--bundle-hours", &h.to_string()]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cardstation-console");
        let stdout = child.stdout.take().expect("console stdout");
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            assert!(Instant::now() < deadline, "the console did not start");
            match lines.next() {
                Some(Ok(line)) if line.starts_with("listening on") => break,
                Some(Ok(_)) => continue,
                _ => panic!("the console exited before listening"),
            }
        }
        // Keep draining stdout so the console never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Console {
            child,
            dir: dir.to_path_buf(),
            port,
            serve,
        }
    }

    /// The console's address as stations and gateways reach it.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// Stop (SIGTERM) and start again on the same port, database and data directory.
    pub fn restart(&mut self) {
        self.terminate();
        *self = Console::start(&self.dir.clone(), self.port, self.serve.clone());
    }

    /// Graceful stop (SIGTERM), as an operator or init system would.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: sending a signal to our own child process.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `cardstation-console ARGS --data DIR [--database DB]`: the administrator at the
    /// console host, on this console's records.
    pub fn admin(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(console_binary());
        cmd.args(args).arg("--data").arg(&self.dir);
        if let Some(db) = &self.serve.database {
            cmd.args(["--database", db]);
        }
        cmd.stdin(Stdio::null())
            .output()
            .expect("run cardstation-console")
    }

    /// [`Console::admin`] that must succeed; its standard output.
    pub fn admin_ok(&self, args: &[&str]) -> String {
        let out = self.admin(args);
        assert!(
            out.status.success(),
            "cardstation-console {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Issue `role` `name` a credential (`identity add`) and write its kit into `out`.
    pub fn issue(&self, role: Role, name: &str, out: &Path) -> Kit {
        self.admin_ok(&[
            "identity",
            "add",
            name,
            "--role",
            role.as_str(),
            "--out",
            out.to_str().expect("a UTF-8 path"),
            "--url",
            &self.url(),
        ]);
        Kit {
            role,
            dir: out.to_path_buf(),
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// The kinds of credential the console issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Station,
    Gateway,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Station => "station",
            Role::Gateway => "gateway",
        }
    }
}

/// What `identity add` wrote: the credential, the console CA, the bundle key and the
/// settings file the station (`cardstation.toml`) or gateway (`gateway.toml`) reads.
#[derive(Debug, Clone)]
pub struct Kit {
    pub role: Role,
    pub dir: PathBuf,
}

impl Kit {
    pub fn cert(&self) -> PathBuf {
        self.dir.join(format!("{}.pem", self.role.as_str()))
    }
    pub fn key(&self) -> PathBuf {
        self.dir.join(format!("{}.key", self.role.as_str()))
    }
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn bundle_key(&self) -> PathBuf {
        self.dir.join("bundle-signing.pub.pem")
    }
    /// The settings file as written: `cardstation.toml` or `gateway.toml`.
    pub fn config(&self) -> PathBuf {
        self.dir.join(match self.role {
            Role::Station => "cardstation.toml",
            Role::Gateway => "gateway.toml",
        })
    }
    /// The settings file's `[console]` block, ready to paste into another config.
    pub fn console_block(&self) -> String {
        let text = std::fs::read_to_string(self.config()).expect("the kit's settings");
        let start = text.find("[console]").expect("a [console] block");
        let rest = &text[start..];
        let end = rest[1..].find("\n[").map_or(rest.len(), |i| i + 1);
        rest[..end].trim_end().to_string() + "\n"
    }
}
