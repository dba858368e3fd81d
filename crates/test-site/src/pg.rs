//! A real, throw-away PostgreSQL server for the console tests: its own cluster in a
//! temporary directory (initdb), on its own port on 127.0.0.1, stopped and removed
//! when dropped. Needs the Debian `postgresql` package (scripts/setup-debian).
//! initdb refuses to run as root, so as root the server runs as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::binaries::free_port;

/// The PostgreSQL programs: `CARDSTATION_PG_BIN`, else the newest /usr/lib/postgresql/N/bin.
/// Whether PostgreSQL's server programs are here; if not, says why the test is skipped.
/// `scripts/test-all` (and so CI) sets `CARDSTATION_REQUIRE_POSTGRES=1`: there a missing
/// PostgreSQL fails the test instead, since setup-debian installs it.
pub fn available_or_skip() -> bool {
    if std::env::var_os("CARDSTATION_PG_BIN").is_some() || find_pg_bin().is_some() {
        return true;
    }
    if std::env::var_os("CARDSTATION_REQUIRE_POSTGRES").is_some_and(|v| v == "1") {
        panic!("PostgreSQL is not installed (no /usr/lib/postgresql/N/bin/initdb): run scripts/setup-debian");
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {}: PostgreSQL is not installed. Run scripts/test-all to run it (it installs PostgreSQL).",
        std::thread::current().name().unwrap_or("a PostgreSQL test")
    );
    false
}

fn find_pg_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

pub fn pg_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARDSTATION_PG_BIN") {
        return PathBuf::from(dir);
    }
    find_pg_bin().unwrap_or_else(|| {
        panic!("PostgreSQL is not installed (no /usr/lib/postgresql/N/bin/initdb): run scripts/setup-debian")
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    /// With TLS only: the CA of the server's certificate (for 127.0.0.1 and localhost).
    pub ca: Option<PathBuf>,
    uid: Option<u32>,
}

impl PgCluster {
    pub fn start() -> Arc<PgCluster> {
        Self::start_with(false)
    }

    /// A server that accepts TCP connections over TLS only.
    pub fn start_tls() -> Arc<PgCluster> {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Arc<PgCluster> {
        let bin = pg_bin();
        let dir = tempfile::Builder::new()
            .prefix("cs-pg-")
            .tempdir()
            .expect("temp dir for PostgreSQL");
        let uid = if is_root() {
            let uid = Command::new("id")
                .args(["-u", "postgres"])
                .output()
                .expect("id");
            let uid: u32 = String::from_utf8_lossy(&uid.stdout)
                .trim()
                .parse()
                .expect("a `postgres` user (the Debian postgresql package creates it)");
            std::os::unix::fs::chown(dir.path(), Some(uid), None).expect("chown the cluster dir");
            Some(uid)
        } else {
            None
        };
        let mut cluster = PgCluster {
            dir,
            bin,
            port: free_port(),
            ca: None,
            uid,
        };
        let out = cluster.run(&[
            "initdb",
            "-D",
            &cluster.data().to_string_lossy(),
            "-A",
            "trust",
            "-U",
            "cardstation",
            "--no-sync",
            "-E",
            "UTF8",
        ]);
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if tls {
            cluster.ca = Some(cluster.make_tls_only());
        }
        cluster.start_server();
        Arc::new(cluster)
    }

    /// A CA and a server certificate for 127.0.0.1/localhost, and TCP over TLS only.
    fn make_tls_only(&self) -> PathBuf {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca = rcgen::CertificateParams::default();
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "test database CA");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).expect("CA");
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().expect("key");
        let mut server =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
                .expect("params");
        server
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        let cert = server.signed_by(&key, &issuer).expect("server certificate");
        let data = self.data();
        let put = |name: &str, text: &str, mode: u32| {
            let path = data.join(name);
            std::fs::write(&path, text).expect("write");
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .expect("chmod");
            if let Some(uid) = self.uid {
                std::os::unix::fs::chown(&path, Some(uid), None).expect("chown");
            }
        };
        put("server.crt", &cert.pem(), 0o644);
        put("server.key", &key.serialize_pem(), 0o600);
        put(
            "pg_hba.conf",
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            0o600,
        );
        let ca_path = self.dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca_cert.pem()).expect("write CA");
        ca_path
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Run a PostgreSQL program, as `postgres` when we are root.
    fn run(&self, args: &[&str]) -> Output {
        let program = self.bin.join(args[0]);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        cmd.args(&args[1..])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run a PostgreSQL program")
    }

    fn start_server(&self) {
        let mut opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            self.port,
            self.dir.path().display()
        );
        if self.ca.is_some() {
            opts.push_str(" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key");
        }
        let log = self.dir.path().join("server.log");
        let out = self.run(&[
            "pg_ctl",
            "-D",
            &self.data().to_string_lossy(),
            "-o",
            &opts,
            "-l",
            &log.to_string_lossy(),
            "-w",
            "-t",
            "30",
            "start",
        ]);
        assert!(
            out.status.success(),
            "PostgreSQL did not start: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stop the server (fast shutdown: open sessions are cut, as in a restart).
    pub fn stop_server(&self) {
        let out = self.run(&[
            "pg_ctl",
            "-D",
            &self.data().to_string_lossy(),
            "-m",
            "fast",
            "-w",
            "stop",
        ]);
        assert!(
            out.status.success(),
            "PostgreSQL did not stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn start_again(&self) {
        self.start_server();
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://cardstation@127.0.0.1:{}/{database}", self.port)
    }

    /// A new, empty database; its URL.
    pub fn create_database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(name)
    }

    /// Run SQL through `psql` (an independent client); the unaligned, tuples-only output.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-tA",
                "-h",
                "127.0.0.1",
            ])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "cardstation",
                "-d",
                database,
            ])
            .args(["-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.run(&[
            "pg_ctl",
            "-D",
            &self.data().to_string_lossy(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ]);
    }
}

/// Wait until `f` is true (polling), or fail with `what`.
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
