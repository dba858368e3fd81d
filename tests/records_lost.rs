//! A lost station database is noticed, not silently recreated; `--reinit` starts
//! afresh only when told to; `backup` copies a consistent database while another
//! process writes, and the copy restores.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

    fn db(&self) -> PathBuf {
        self.data().join("station.db")
    }

    fn run(&self, args: &[&str]) -> Output {
        run_in(self.root.path(), args)
    }

    fn revoke(&self, n: usize) {
        let fp = format!("{n:04x}{}", "cd".repeat(30));
        let out = self.run(&["revoke", "--fingerprint", &fp, "--reason", "lost"]);
        assert!(out.status.success(), "{}", text(&out));
    }
}

fn run_in(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cardstation"))
        .arg("--data-dir")
        .arg(root.join("data"))
        .arg("--config")
        .arg(root.join("cardstation.toml"))
        .args(args)
        .output()
        .expect("run cardstation")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn refused_as_lost(out: &Output) {
    assert_eq!(out.status.code(), Some(1), "{}", text(out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing or empty"), "{err}");
    assert!(err.contains("Restore the database from a backup"), "{err}");
    assert!(err.contains("--reinit"), "{err}");
}

#[test]
fn a_truncated_or_deleted_database_of_a_used_station_is_refused_with_the_remedy() {
    let dir = Dir::new();
    // A fresh directory is simply a new station.
    dir.revoke(1);
    dir.revoke(2);
    assert!(dir.data().join("station.db.in-use").exists());

    // Truncated to 0 bytes: every command refuses, none recreates an empty trail.
    std::fs::write(dir.db(), b"").expect("truncate");
    for args in [
        &["audit", "verify"][..],
        &["enrollments"],
        &["outbox", "list"],
        &["audit", "list"],
    ] {
        refused_as_lost(&dir.run(args));
    }
    // The window is not opened on it either.
    refused_as_lost(&dir.run(&["--demo"]));
    let out = dir.run(&["audit", "verify", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["error"]["code"], "station-database-lost", "{v}");
    assert_eq!(
        std::fs::metadata(dir.db()).expect("db").len(),
        0,
        "left as it was"
    );

    // Deleted, marker too: the site secret still shows the station was used.
    std::fs::remove_file(dir.db()).expect("delete");
    std::fs::remove_file(dir.data().join("station.db.in-use")).expect("delete marker");
    let secret = dir.data().join("site-secret");
    std::fs::write(&secret, "00".repeat(32)).expect("site secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("mode");
    }
    refused_as_lost(&dir.run(&["enrollments"]));
    assert!(!dir.db().exists(), "the refusal creates nothing");

    // --reinit starts afresh, says what is lost, keeps the site secret.
    let out = dir.run(&["--reinit", "audit", "verify"]);
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("new, empty station database"), "{err}");
    assert!(err.contains("enrollment records, the audit trail"), "{err}");
    assert!(secret.exists());
    assert!(dir.run(&["enrollments"]).status.success());
    // And it is refused on a database that is there.
    let out = dir.run(&["--reinit", "enrollments"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only starts afresh when it is lost"));
}

#[test]
fn an_overwritten_database_is_kept_aside_by_reinit() {
    let dir = Dir::new();
    dir.revoke(1);
    std::fs::write(dir.db(), b"this is not a database, it was overwritten").expect("overwrite");
    let out = dir.run(&["enrollments"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = dir.run(&["--reinit", "enrollments"]);
    assert!(out.status.success(), "{}", text(&out));
    let kept: Vec<_> = std::fs::read_dir(dir.data())
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("station.db.lost-")
        })
        .collect();
    assert_eq!(kept.len(), 1, "the old file is moved aside, not deleted");
    assert_eq!(
        std::fs::read(kept[0].path()).expect("kept"),
        b"this is not a database, it was overwritten"
    );
}

#[test]
fn a_backup_taken_while_another_process_writes_restores_whole() {
    let dir = std::sync::Arc::new(Dir::new());
    dir.revoke(0);
    let writer = {
        let dir = dir.clone();
        std::thread::spawn(move || {
            for n in 1..40 {
                dir.revoke(n);
            }
        })
    };
    let backup = dir.root.path().join("station-backup.db");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = dir.run(&["backup", "--out", backup.to_str().expect("path")]);
    assert!(out.status.success(), "{}", text(&out));
    writer.join().expect("writer");
    assert!(
        !dir.root.path().join("station-backup.db.in-use").exists(),
        "the backup is a plain copy: nothing is written beside it"
    );
    // Never over an existing file.
    let out = dir.run(&["backup", "--out", backup.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // Lose the database, restore the backup as the README says: the chain is intact.
    std::fs::write(dir.db(), b"").expect("truncate");
    refused_as_lost(&dir.run(&["audit", "verify"]));
    std::fs::copy(&backup, dir.db()).expect("restore");
    let out = dir.run(&["audit", "verify", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let rows = v["Intact"]["rows"].as_u64().expect("rows");
    assert!((1..=40).contains(&rows), "{v}");
    let items: serde_json::Value =
        serde_json::from_slice(&dir.run(&["outbox", "list", "--json"]).stdout).expect("JSON");
    assert_eq!(items.as_array().expect("items").len() as u64, rows);
}
