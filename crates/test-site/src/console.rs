//! `cardstation-console serve` as a real process on 127.0.0.1, and the administrator's
//! commands on its host.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cardstation_console_client::{ConsoleClient, ConsoleConfig};

use crate::binaries::binary;
use crate::db::TestDb;
use crate::role::Role;

pub fn console_binary() -> PathBuf {
    binary("cardstation-console")
}

/// A running console. Dropped, it is stopped as an init system would (SIGTERM).
pub struct Console {
    child: Child,
    pub dir: PathBuf,
    pub port: u16,
    pub db: TestDb,
    /// `serve` arguments beyond the data directory, listen address and database.
    extra: Vec<String>,
    database_url: Option<String>,
}

impl Console {
    /// A console on its default storage (SQLite in `dir`).
    pub fn start(dir: &Path, port: u16) -> Console {
        Self::start_on(dir, port, &TestDb::Sqlite)
    }

    pub fn start_on(dir: &Path, port: u16, db: &TestDb) -> Console {
        Self::launch(dir, port, db, db.url(), &[])
    }

    /// On `db`, reached through `url` (e.g. with TLS options).
    pub fn start_with_database(dir: &Path, port: u16, db: &TestDb, url: &str) -> Console {
        Self::launch(dir, port, db, Some(url.to_string()), &[])
    }

    /// On SQLite, with further `serve` arguments (e.g. `--bundle-hours 0`).
    pub fn start_with(dir: &Path, port: u16, extra: &[&str]) -> Console {
        Self::launch(dir, port, &TestDb::Sqlite, None, extra)
    }

    fn launch(
        dir: &Path,
        port: u16,
        db: &TestDb,
        database_url: Option<String>,
        extra: &[&str],
    ) -> Console {
        let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        // A console killed a moment ago may still hold the port: try again for a while.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut cmd = Command::new(console_binary());
            cmd.args(["serve", "--data"])
                .arg(dir)
                .args(["--listen", &format!("127.0.0.1:{port}")]);
            if let Some(url) = &database_url {
                cmd.args(["--database", url]);
            }
            let mut child = cmd
                .args(&extra)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("start cardstation-console");
            let mut lines = BufReader::new(child.stdout.take().expect("console stdout")).lines();
            let listening = lines
                .by_ref()
                .map_while(Result::ok)
                .any(|l| l.starts_with("listening on"));
            if listening {
                // Keep draining stdout so the console never blocks on a full pipe.
                std::thread::spawn(move || for _ in lines {});
                return Console {
                    child,
                    dir: dir.to_path_buf(),
                    port,
                    db: db.clone(),
                    extra,
                    database_url,
                };
            }
            let _ = child.wait();
            assert!(
                Instant::now() < deadline,
                "the console did not start (it exited before listening)"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// Stop (SIGTERM) and start again on the same port, database and data directory.
    pub fn restart(&mut self) {
        self.terminate();
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let again = Console::launch(
            &self.dir,
            self.port,
            &self.db,
            self.database_url.clone(),
            &extra,
        );
        *self = again;
    }

    /// Graceful stop (SIGTERM), as an operator or init system would.
    pub fn stop(mut self) {
        self.terminate();
    }

    /// SIGKILL: no graceful shutdown, requests in flight are cut. The data directory
    /// and port, to start it again on.
    pub fn kill(mut self) -> (PathBuf, u16) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.dir.clone(), self.port)
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

    /// `cardstation-console ARGS --data DIR` (the administrator on the console host).
    pub fn admin(&self, args: &[&str]) -> Output {
        Command::new(console_binary())
            .args(args)
            .arg("--data")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .output()
            .expect("run cardstation-console")
    }

    /// [`Console::admin`] that must succeed: its standard output.
    pub fn admin_ok(&self, args: &[&str]) -> String {
        let out = self.admin(args);
        assert!(
            out.status.success(),
            "cardstation-console {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `identity add --role ROLE NAME --out KIT --url URL`: a credential for a station or
    /// gateway, in the kit directory `out` (the credential, the console's CA and bundle
    /// key, and the settings file to start from: `Role::config_file`).
    pub fn add_identity(&self, role: Role, name: &str, out: &Path) {
        self.admin_ok(&[
            "identity",
            "add",
            "--role",
            role.as_str(),
            name,
            "--out",
            out.to_str().expect("a UTF-8 path"),
            "--url",
            &self.url(),
        ]);
    }

    /// Number of certificate records the console holds (read from its database).
    pub fn records(&self) -> i64 {
        self.db
            .count(&self.dir, "SELECT COUNT(*) FROM certificates")
    }

    /// The fingerprints of the certificates held, sorted (read from its database).
    pub fn fingerprints(&self) -> Vec<String> {
        self.db
            .strings(&self.dir, "SELECT sha256 FROM certificates ORDER BY sha256")
    }

    /// The gateway events the console holds for `fingerprint`, newest first.
    pub fn events(&self, fingerprint: &str) -> Vec<serde_json::Value> {
        let out = self.admin_ok(&[
            "events",
            "--fingerprint",
            fingerprint,
            "--limit",
            "1000",
            "--json",
        ]);
        serde_json::from_str(&out).expect("events JSON")
    }

    /// The station-facing client for this console, with the first-start station identity.
    pub fn client(&self) -> ConsoleClient {
        Self::client_for(&self.dir, self.port)
    }

    pub fn client_for(dir: &Path, port: u16) -> ConsoleClient {
        ConsoleClient::new(&ConsoleConfig {
            url: Some(format!("https://localhost:{port}")),
            ca: Some(dir.join("ca.pem")),
            client_cert: Some(dir.join("station.pem")),
            client_key: Some(dir.join("station.key")),
            bundle_key: None,
            ..Default::default()
        })
        .expect("console client")
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}
