//! The reference console as a real process on loopback, and a station configured for it.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `on_both_backends!(a, b)`: each `fn a(backend: Backend)` of the test file becomes a
/// test on SQLite (`sqlite::a`) and one on PostgreSQL (`postgres::a`, skipped where
/// PostgreSQL is not installed unless `CARDSTATION_REQUIRE_POSTGRES=1`).
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(super::Backend::Sqlite) })*
        }
        mod postgres {
            $(#[test] fn $name() {
                if super::console_support::pg::available_or_skip() {
                    super::$name(super::Backend::Postgres)
                }
            })*
        }
    };
}

// The console, its databases and the identities it issues: one fixture for the
// station's and the gateway's tests (crates/test-site).
#[allow(unused_imports)]
pub use cardstation_test_site::console::console_binary;
#[allow(unused_imports)]
pub use cardstation_test_site::{free_port, pg, Backend, Console, Role, Site, TestDb};

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

    /// A station for a new identity of `site`, configured from the files
    /// `identity add --role station` wrote: the kit's directory, and the station.
    pub fn added_to(site: &Site, name: &str) -> (PathBuf, Station) {
        let kit = site.add_station(name);
        let station = Station::from_kit(&kit);
        (kit, station)
    }

    /// A station set up from the files `cardstation-console station add` wrote.
    pub fn from_kit(kit: &Path) -> Station {
        let dir = tempfile::tempdir().expect("temp dir");
        let written = std::fs::read_to_string(kit.join("cardstation.toml")).expect("kit config");
        let config = cardstation_test_site::site::test_station_config(&written);
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
