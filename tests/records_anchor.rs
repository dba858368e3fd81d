//! The station's audit trail anchored at the real console: each delivery sends the
//! chain head, and `audit verify` finds a trail whose newest rows were deleted, or
//! that was rewritten into a chain that verifies on its own, after it was anchored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod console_support;

use sha2::{Digest, Sha256};

use console_support::{certificate_file, free_port, Console, Station};

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A station that uploaded two certificates: its trail is anchored at the console.
fn anchored() -> (tempfile::TempDir, Console, Station) {
    let console_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let console = Console::start(console_dir.path(), port);
    let station = Station::new(port, console_dir.path());
    for name in ["gw-a", "gw-b"] {
        let (file, _) = certificate_file(station.dir.path(), name);
        let v = station.json(&["upload", file.to_str().unwrap(), "--json"]);
        assert_eq!(v["sync"]["delivered"], 1, "{v}");
        assert!(v["sync"].get("anchor_error").is_none(), "{v}");
    }
    (console_dir, console, station)
}

fn db(station: &Station) -> rusqlite::Connection {
    rusqlite::Connection::open(station.dir.path().join("data").join("station.db")).unwrap()
}

#[test]
fn verify_compares_with_the_console_and_finds_deleted_newest_rows() {
    let (_dir, console, station) = anchored();
    let anchor = console.client().audit_anchor().unwrap().expect("anchored");
    let rows: i64 = db(&station)
        .query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0))
        .unwrap();
    assert_eq!(anchor.rows, rows as u64, "the head after the last delivery");

    let out = station.run(&["audit", "verify"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Anchored at the console"),
        "{}",
        text(&out)
    );
    let v = station.json(&["audit", "verify", "--json"]);
    assert_eq!(v["anchor"]["state"], "holds", "{v}");

    // More rows after the anchor are fine (they are anchored with the next delivery).
    let out = station.run(&[
        "revoke",
        "--fingerprint",
        &"ab".repeat(32),
        "--reason",
        "lost",
    ]);
    drop(out);
    assert!(station.run(&["audit", "verify"]).status.success());

    // The newest rows deleted: the chain still verifies locally, the anchor does not hold.
    let kept = anchor.rows - 1;
    db(&station)
        .execute(
            "DELETE FROM audit WHERE id NOT IN (SELECT id FROM audit ORDER BY id LIMIT ?1)",
            [kept as i64],
        )
        .unwrap();
    let out = station.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("rows were removed or rewritten"),
        "{}",
        text(&out)
    );
    let v = station.json(&["audit", "verify", "--json"]);
    assert_eq!(v["error"]["code"], "audit-anchor-mismatch", "{v}");

    // The next delivery cannot move the anchor back either: it says so.
    let (file, _) = certificate_file(station.dir.path(), "gw-c");
    let v = station.json(&["upload", file.to_str().unwrap(), "--json"]);
    assert_eq!(v["sync"]["delivered"], 1, "{v}");
    let warning = v["sync"]["anchor_error"].as_str().unwrap_or_default();
    assert!(warning.contains("audit-trail-changed"), "{v}");
    assert_eq!(console.client().audit_anchor().unwrap().unwrap(), anchor);
}

/// The station's row hash (store/audit.rs), as someone rewriting the file would compute it.
fn row_hash(prev: &str, at: i64, fields: [&str; 6]) -> String {
    let mut h = Sha256::new();
    let at = at.to_string();
    for field in [prev, at.as_str()].into_iter().chain(fields) {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize())
}

#[test]
fn a_trail_rewritten_into_a_valid_chain_is_found_by_the_anchor() {
    let (_dir, _console, station) = anchored();
    // Change the first row and re-hash every row after it: locally a perfect chain.
    let conn = db(&station);
    conn.execute(
        "UPDATE audit SET operator = 'someone-else' WHERE id = (SELECT MIN(id) FROM audit)",
        [],
    )
    .unwrap();
    let rows: Vec<(i64, i64, [String; 6])> = {
        let mut stmt = conn
            .prepare(
                "SELECT id, at, operator, station_id, action, subject, outcome, details
                 FROM audit ORDER BY id",
            )
            .unwrap();
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                [
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ],
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    };
    let mut prev = "0".repeat(64);
    for (id, at, f) in rows {
        let hash = row_hash(
            &prev,
            at,
            [&f[0], &f[1], &f[2], &f[3], &f[4], &f[5]].map(String::as_str),
        );
        conn.execute(
            "UPDATE audit SET prev_hash = ?2, hash = ?3 WHERE id = ?1",
            rusqlite::params![id, prev, hash],
        )
        .unwrap();
        prev = hash;
    }
    drop(conn);

    let out = station.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("hashes differently"), "{}", text(&out));
    let v = station.json(&["audit", "verify", "--json"]);
    assert_eq!(v["error"]["code"], "audit-anchor-mismatch", "{v}");
}

#[test]
fn without_the_console_verify_checks_the_local_chain_and_says_it_did_not_compare() {
    let (_dir, console, station) = anchored();
    console.stop();
    let out = station.run(&["audit", "verify"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("not compared with the console's anchor"),
        "{}",
        text(&out)
    );
}
