//! Several real `cardstation` processes on one data directory at once: starting
//! together on a fresh directory, and writing the audit trail side by side.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

/// A station directory with settings and no console.
struct Dir {
    root: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            root.path().join("cardstation.toml"),
            "[station]\nid = \"desk-1\"\noperator = \"op\"\n",
        )
        .expect("config");
        Dir { root }
    }

    fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }

    fn command(&self, args: &[&str]) -> Command {
        command(self.root.path(), args)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run cardstation")
    }
}

fn command(root: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cardstation"));
    cmd.arg("--data-dir")
        .arg(root.join("data"))
        .arg("--config")
        .arg(root.join("cardstation.toml"))
        .args(args);
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn processes_starting_together_on_a_fresh_data_dir_all_succeed() {
    const TRIALS: usize = 40;
    for trial in 0..TRIALS {
        let dir = Dir::new();
        // Three processes spawned back to back: they open and migrate the same new file at once.
        let children: Vec<_> = (0..3)
            .map(|_| {
                dir.command(&["outbox", "list", "--json"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().expect("wait");
            assert!(out.status.success(), "trial {trial}: {}", text(&out));
        }
        // One schema, one database identity, and the marker of a station in use.
        let db = rusqlite::Connection::open(dir.data().join("station.db")).expect("db");
        let version: i64 = db
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(version, cardstation::store::SCHEMA_VERSION, "trial {trial}");
        let ids: i64 = db
            .query_row(
                "SELECT COUNT(*) FROM station_meta WHERE key = 'database_id'",
                [],
                |r| r.get(0),
            )
            .expect("ids");
        assert_eq!(ids, 1, "trial {trial}");
        assert!(dir.data().join("station.db.in-use").exists());
    }
}

#[test]
fn concurrent_writers_lose_no_audit_row_and_the_chain_stays_whole() {
    const PROCESSES: usize = 3;
    const EACH: usize = 15;
    let dir = Arc::new(Dir::new());
    // Create the database first, so the writers below only compete for writes.
    assert!(dir.run(&["audit", "verify"]).status.success());

    let writers: Vec<_> = (0..PROCESSES)
        .map(|p| {
            let dir = dir.clone();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    // A revocation with no console configured: queued, and an audit row.
                    let fp = format!("{p:02x}{i:02x}{}", "ab".repeat(30));
                    let out = dir.run(&["revoke", "--fingerprint", &fp, "--reason", "lost"]);
                    assert!(
                        out.status.success(),
                        "process {p}, revoke {i}: {}",
                        text(&out)
                    );
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }

    let out = dir.run(&["audit", "verify", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let verdict: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        verdict["Intact"]["rows"],
        PROCESSES * EACH,
        "every action has its row: {verdict}"
    );

    // Every revocation is queued once, under its own id.
    let items: serde_json::Value =
        serde_json::from_slice(&dir.run(&["outbox", "list", "--json"]).stdout).expect("JSON");
    let items = items.as_array().expect("array");
    assert_eq!(items.len(), PROCESSES * EACH);
    let mut ids: Vec<i64> = items
        .iter()
        .map(|i| i["id"].as_i64().expect("id"))
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), PROCESSES * EACH);
}
