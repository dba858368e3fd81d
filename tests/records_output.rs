//! Output into a closed pipe (`cardstation … | head -1`): every list command ends
//! quietly, as Unix tools do, instead of panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn command(root: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cardstation"));
    cmd.arg("--data-dir")
        .arg(root.join("data"))
        .arg("--config")
        .arg(root.join("cardstation.toml"))
        .args(args);
    cmd
}

/// Run with standard output a pipe whose reading end is already closed: the
/// first write fails with EPIPE, every time.
fn into_closed_pipe(root: &Path, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    command(root, args)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .expect("run cardstation")
}

fn station_with_rows() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        root.path().join("cardstation.toml"),
        "[station]\nid = \"desk-1\"\noperator = \"op\"\n",
    )
    .expect("config");
    for n in 0..30 {
        let fp = format!("{n:04x}{}", "ef".repeat(30));
        let out = command(
            root.path(),
            &["revoke", "--fingerprint", &fp, "--reason", "lost"],
        )
        .output()
        .expect("revoke");
        assert!(out.status.success());
    }
    root
}

#[test]
fn list_commands_into_a_closed_pipe_exit_quietly() {
    let root = station_with_rows();
    for args in [
        &["outbox", "list"][..],
        &["outbox", "list", "--json"],
        &["audit", "list"],
        &["audit", "list", "--json"],
        &["audit", "export", "--csv"],
        &["audit", "verify"],
        &["enrollments"],
        &["enrollments", "--json"],
        &["trust", "show"],
    ] {
        let out = into_closed_pipe(root.path(), args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
        // `trust show` needs a pinned key: its failure is an error message, not a pipe problem.
        if args[0] == "trust" {
            assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        } else {
            assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        }
    }
}

#[test]
fn head_dash_one_gets_its_line_and_the_pipeline_succeeds() {
    let root = station_with_rows();
    let bin = env!("CARGO_BIN_EXE_cardstation");
    let dir = root.path().display().to_string();
    for list in ["outbox list", "audit list", "audit export --csv"] {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "set -o pipefail; '{bin}' --data-dir '{dir}/data' --config '{dir}/cardstation.toml' {list} | head -1"
            ))
            .output()
            .expect("bash");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{list}: {err}");
        assert!(!err.contains("panicked"), "{list}: {err}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    }
}
