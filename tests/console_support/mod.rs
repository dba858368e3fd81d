//! The reference console as a real process on loopback, and a station configured for it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod pg;

/// Which storage a console under test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A console's database as the tests see it: read independently of the console.
#[derive(Clone)]
pub enum TestDb {
    /// The default: `console.db` in the console's data directory.
    Sqlite,
    Postgres {
        cluster: Arc<pg::PgCluster>,
        database: String,
    },
}

impl TestDb {
    /// A fresh database on `backend` (for PostgreSQL: a new server of its own).
    pub fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => TestDb::Sqlite,
            Backend::Postgres => {
                let cluster = pg::PgCluster::start();
                cluster.create_database("console");
                TestDb::Postgres {
                    cluster,
                    database: "console".into(),
                }
            }
        }
    }

    /// `serve --database` for this database (none: the default SQLite file).
    pub fn url(&self) -> Option<String> {
        match self {
            TestDb::Sqlite => None,
            TestDb::Postgres { cluster, database } => Some(cluster.url(database)),
        }
    }

    /// The `--database` arguments an administration command needs for this database.
    pub fn database_args(&self) -> Vec<String> {
        match self.url() {
            Some(url) => vec!["--database".into(), url],
            None => vec![],
        }
    }

    /// A copy of the database as it is now (an "old backup" to restore later).
    /// For SQLite the copy is the data directory copy the caller makes.
    pub fn backup(&self, name: &str) -> TestDb {
        match self {
            TestDb::Sqlite => TestDb::Sqlite,
            TestDb::Postgres { cluster, database } => {
                cluster.psql(
                    "postgres",
                    &format!("CREATE DATABASE {name} TEMPLATE {database}"),
                );
                TestDb::Postgres {
                    cluster: cluster.clone(),
                    database: name.into(),
                }
            }
        }
    }

    /// Run a counting query on the console's database.
    pub fn count(&self, dir: &Path, sql: &str) -> i64 {
        match self {
            TestDb::Sqlite => {
                let conn = rusqlite::Connection::open(dir.join("console.db")).expect("console db");
                conn.query_row(sql, [], |r| r.get(0)).expect("count")
            }
            TestDb::Postgres { cluster, database } => {
                cluster.psql(database, sql).parse().expect("a number")
            }
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The console binary, built beside the station's. It is its own workspace crate, so
/// cargo gives no `CARGO_BIN_EXE_` for it here and `cargo test` does not build it as an
/// executable: build it (once per test process; cargo's lock serialises processes) with
/// the same cargo and target directory when it is missing or older than this test.
pub fn console_binary() -> PathBuf {
    static BUILT: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let station = Path::new(env!("CARGO_BIN_EXE_cardstation"));
    let path = station.with_file_name("cardstation-console");
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !*built {
        // target/<profile>/cardstation → target directory and profile.
        let profile_dir = station.parent().expect("profile directory");
        let target_dir = profile_dir.parent().expect("target directory");
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args([
                "build",
                "--quiet",
                "-p",
                "cardstation-console",
                "--bin",
                "cardstation-console",
            ])
            .arg("--manifest-path")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", target_dir);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        let status = cargo
            .status()
            .expect("run cargo to build cardstation-console");
        assert!(status.success(), "building cardstation-console failed");
        *built = true;
    }
    assert!(
        path.exists(),
        "{} is missing after building it",
        path.display()
    );
    path
}

/// `cardstation-console serve` on 127.0.0.1:`port`.
pub struct Console {
    child: Child,
    pub dir: PathBuf,
    pub port: u16,
    pub db: TestDb,
}

impl Console {
    /// A console on its default storage (SQLite in `dir`).
    pub fn start(dir: &Path, port: u16) -> Console {
        Self::start_on(dir, port, &TestDb::Sqlite)
    }

    pub fn start_on(dir: &Path, port: u16, db: &TestDb) -> Console {
        Self::start_inner(dir, port, db, db.url())
    }

    /// On `db`, reached through `url` (e.g. with TLS options).
    pub fn start_with_database(dir: &Path, port: u16, db: &TestDb, url: &str) -> Console {
        Self::start_inner(dir, port, db, Some(url.to_string()))
    }

    fn start_inner(dir: &Path, port: u16, db: &TestDb, url: Option<String>) -> Console {
        let mut cmd = Command::new(console_binary());
        cmd.args(["serve", "--data"])
            .arg(dir)
            .args(["--listen", &format!("127.0.0.1:{port}")]);
        if let Some(url) = url {
            cmd.args(["--database", &url]);
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
            db: db.clone(),
        }
    }

    /// Stop (SIGTERM) and start again on the same port, database and data directory.
    pub fn restart(&mut self) {
        self.terminate();
        let (dir, port, db) = (self.dir.clone(), self.port, self.db.clone());
        *self = Console::start_on(&dir, port, &db);
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

    /// Number of certificate records the console holds (read from its database).
    pub fn records(&self) -> i64 {
        self.db
            .count(&self.dir, "SELECT COUNT(*) FROM certificates")
    }

    /// The station-facing client for this console, with the first-start station identity.
    pub fn client(&self) -> cardstation::console::ConsoleClient {
        Self::client_for(&self.dir, self.port)
    }

    pub fn client_for(dir: &Path, port: u16) -> cardstation::console::ConsoleClient {
        cardstation::console::ConsoleClient::new(&cardstation::config::ConsoleConfig {
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

/// A station directory whose config points at a console.
pub struct Station {
    pub dir: tempfile::TempDir,
}

pub struct ConsoleFiles<'a> {
    pub ca: &'a Path,
    pub cert: &'a Path,
    pub key: &'a Path,
    pub bundle_key: &'a Path,
}

impl Station {
    pub fn new(port: u16, console_dir: &Path) -> Station {
        Self::with_files(
            port,
            ConsoleFiles {
                ca: &console_dir.join("ca.pem"),
                cert: &console_dir.join("station.pem"),
                key: &console_dir.join("station.key"),
                bundle_key: &console_dir.join("bundle-signing.pub.pem"),
            },
        )
    }

    pub fn with_files(port: u16, f: ConsoleFiles<'_>) -> Station {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("cardstation.toml"),
            format!(
                "[station]\nid = \"station-1\"\noperator = \"op\"\n\n[console]\nurl = \"https://localhost:{port}\"\n\
                 ca = {:?}\nclient_cert = {:?}\nclient_key = {:?}\nbundle_key = {:?}\n\
                 connect_timeout_secs = 2\nrequest_timeout_secs = 3\n",
                f.ca, f.cert, f.key, f.bundle_key
            ),
        )
        .expect("config");
        Station { dir }
    }

    /// A station set up from the files `cardstation-console station add` wrote.
    pub fn from_kit(kit: &Path) -> Station {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = std::fs::read_to_string(kit.join("cardstation.toml")).expect("kit config");
        let config = config.replacen("[station]\n", "[station]\noperator = \"op\"\n", 1)
            + "connect_timeout_secs = 2\nrequest_timeout_secs = 3\n";
        std::fs::write(dir.path().join("cardstation.toml"), config).expect("config");
        Station { dir }
    }

    /// The station's console client, as its configuration says.
    pub fn client(&self) -> cardstation::console::ConsoleClient {
        let config =
            cardstation::config::Config::load(&self.dir.path().join("cardstation.toml"), true)
                .expect("config");
        cardstation::console::ConsoleClient::new(&config.console).expect("client")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cardstation"));
        cmd.arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .arg("--config")
            .arg(self.dir.path().join("cardstation.toml"))
            .args(args);
        cmd
    }

    /// Run with `input` on standard input (PINs and PUKs travel that way).
    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cardstation");
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input.as_bytes());
        }
        child.wait_with_output().expect("output")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run cardstation")
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.run(args);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "cardstation {args:?}: {e}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// `cardstation verify --json ARGS`: the exit code and the JSON report.
    pub fn verify(&self, args: &[&str]) -> (i32, serde_json::Value) {
        let mut full = vec!["verify", "--json"];
        full.extend_from_slice(args);
        let out = self.run(&full);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "verify {args:?}: {e}\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), v)
    }

    pub fn outbox_len(&self) -> usize {
        self.json(&["outbox", "list", "--json"])
            .as_array()
            .map(|a| a.len())
            .unwrap_or(usize::MAX)
    }
}

/// The parameters of a device certificate as a station makes it (digitalSignature,
/// clientAuth, valid from a few minutes ago for ten years).
pub fn device_params(name: &str) -> rcgen::CertificateParams {
    let mut params =
        rcgen::CertificateParams::new(vec![format!("{name}.example")]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(3650);
    params
}

/// A P-256 certificate file made with rcgen (as a card would have), and its fingerprint.
pub fn certificate_file(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let cert = device_params(name).self_signed(&key).expect("certificate");
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, cert.pem()).expect("write certificate");
    (path, cardstation_pki::fingerprint(cert.der()))
}

/// A TCP server on `port` that accepts connections and never answers: a console
/// that hangs. Dropping it frees the port.
pub struct BlackHole {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BlackHole {
    pub fn listen(port: u16) -> BlackHole {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the black hole");
        listener.set_nonblocking(true).expect("non-blocking");
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            while !s.load(Ordering::SeqCst) && Instant::now() < deadline {
                if let Ok((c, _)) = listener.accept() {
                    held.push(c);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        BlackHole {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Rows in a station's outbox, read straight from its database.
pub fn outbox_rows(station_dir: &Path) -> i64 {
    let db = station_dir.join("data").join("station.db");
    rusqlite::Connection::open(db)
        .and_then(|c| c.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0)))
        .unwrap_or(0)
}

/// Copy a directory tree (a station's data, to put it back later).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// The codes of the findings that failed in a `verify --json` report.
pub fn failure_codes(v: &serde_json::Value) -> Vec<String> {
    v["check"]["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|f| f["ok"] == false)
                .filter_map(|f| f["code"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The console's current full bundle, verified with its key: the lists.
pub fn full_lists(
    client: &cardstation::console::client::ConsoleClient,
    data: &std::path::Path,
) -> cardstation_protocol::trust_lists::TrustLists {
    full_bundle(client, data).lists
}

/// The console's current full bundle, verified with its key.
pub fn full_bundle(
    client: &cardstation::console::client::ConsoleClient,
    data: &std::path::Path,
) -> cardstation_protocol::bundle::Full {
    use cardstation::console::client::Fetched;
    use cardstation_protocol::bundle;
    let Fetched::Bundle { bytes, .. } = client.trust_bundle(None, None).expect("bundle") else {
        panic!("a full bundle was asked for");
    };
    let key_pem = std::fs::read_to_string(data.join("bundle-signing.pub.pem")).unwrap();
    let key = bundle::verifying_key_from_pem(&key_pem).unwrap();
    match bundle::open(&bytes, &key).expect("a verified bundle") {
        bundle::Opened::Full(f) => f,
        bundle::Opened::Delta(_) => panic!("a delta where the full bundle was asked for"),
    }
}

/// `cardstation-console bundle reset --yes` on the console in `dir` (with `db_args`
/// for its database): the new chain's id, hex, as the command shows it.
pub fn reset_bundle_chain(dir: &Path, db_args: &[String]) -> String {
    let out = Command::new(console_binary())
        .args(["bundle", "reset", "--yes", "--data"])
        .arg(dir)
        .args(db_args)
        .output()
        .expect("bundle reset");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Chain      ").map(|c| c.trim().to_string()))
        .expect("the new chain is shown")
}
