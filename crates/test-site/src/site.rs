//! A whole site: a console whose settings file names its database (so the
//! administration commands find it with `--data` alone, as on a console host), and
//! the identities it issues.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::binaries::free_port;
use crate::console::Console;
use crate::db::{Backend, TestDb};
use crate::role::Role;

pub struct Site {
    /// The console's data directory (settings, CA, bundle key; the SQLite database).
    pub dir: tempfile::TempDir,
    pub console: Console,
    pub db: TestDb,
    /// Where [`Site::add`] writes the kits.
    pub kits: tempfile::TempDir,
}

impl Site {
    pub fn start(backend: Backend) -> Site {
        Self::start_with(backend, "")
    }

    /// With `extra` lines in console.toml (e.g. `max_revocations_per_day = 2`).
    pub fn start_with(backend: Backend, extra: &str) -> Site {
        Self::start_serving(backend, extra, &[])
    }

    /// With `extra` settings and further `serve` arguments (`--bundle-hours 1`).
    pub fn start_serving(backend: Backend, extra: &str, serve_args: &[&str]) -> Site {
        Self::start_after(backend, extra, serve_args, |_| {})
    }

    /// [`Site::start_serving`], with `before_serve` run on the data directory first
    /// (e.g. `ca init`, which a console in `issuance = "ca"` needs before it starts).
    pub fn start_after(
        backend: Backend,
        extra: &str,
        serve_args: &[&str],
        before_serve: impl FnOnce(&Path),
    ) -> Site {
        let dir = tempfile::tempdir().expect("console dir");
        before_serve(dir.path());
        let db = TestDb::new(backend);
        let mut settings = String::new();
        if let Some(url) = db.url() {
            settings.push_str(&format!("database = {url:?}\n"));
        }
        settings.push_str(extra);
        std::fs::write(dir.path().join("console.toml"), settings).expect("console settings");
        // The settings file names the database, so `serve` needs no --database.
        let console = if serve_args.is_empty() {
            Console::start_on(dir.path(), free_port(), &db)
        } else {
            assert_eq!(backend, Backend::Sqlite, "serve arguments on SQLite only");
            Console::start_with(dir.path(), free_port(), serve_args)
        };
        Site {
            dir,
            console,
            db,
            kits: tempfile::tempdir().expect("kits dir"),
        }
    }

    /// The console's data directory.
    pub fn data(&self) -> &Path {
        self.dir.path()
    }

    pub fn admin(&self, args: &[&str]) -> Output {
        self.console.admin(args)
    }

    pub fn admin_ok(&self, args: &[&str]) -> String {
        self.console.admin_ok(args)
    }

    /// `identity add --role ROLE NAME --out KIT --url URL`: the kit's directory (the
    /// credential, the console's CA and bundle key, and the settings file to start from).
    pub fn add(&self, role: Role, name: &str) -> PathBuf {
        let kit = self.kits.path().join(format!("{}-{name}", role.as_str()));
        self.console.add_identity(role, name, &kit);
        kit
    }

    pub fn add_station(&self, name: &str) -> PathBuf {
        self.add(Role::Station, name)
    }

    pub fn add_gateway(&self, name: &str) -> PathBuf {
        self.add(Role::Gateway, name)
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.db.count(self.data(), sql)
    }
}

/// `cardstation-console ca init --name NAME --data DATA`: the issuing CA a console with
/// `issuance = "ca"` needs before it starts (for [`Site::start_after`]).
pub fn ca_init(data: &Path, name: &str) {
    let out = std::process::Command::new(crate::console::console_binary())
        .args(["ca", "init", "--name", name, "--data"])
        .arg(data)
        .output()
        .expect("cardstation-console ca init");
    assert!(
        out.status.success(),
        "ca init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `cardstation.toml` a station kit holds (what `identity add` wrote), as a test
/// station runs it: an operator named, so no prompt waits, and short console timeouts,
/// so a test of a console that is away does not wait out the defaults.
pub fn test_station_config(written: &str) -> String {
    written
        .replacen("[station]\n", "[station]\noperator = \"op\"\n", 1)
        .replacen(
            "[console]\n",
            "[console]\nconnect_timeout_secs = 2\nrequest_timeout_secs = 5\n",
            1,
        )
}
