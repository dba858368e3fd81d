//! Crash safety: the station process is killed (SIGKILL) at random points of an
//! enroll-and-upload loop. Afterwards the console holds every certificate the
//! station committed exactly once, nothing committed is lost, the database is
//! intact and the audit chain verifies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod console_support;
mod pcscd;

use std::process::Stdio;
use std::time::Duration;

use console_support::{free_port, Console, Station};
use pcscd::{exclusive, pcscd_or_skip, CardProcess, PORT_0, READER_0};
use rand::Rng;

const ROUNDS: usize = 50;

#[test]
fn killing_the_station_anywhere_loses_nothing_and_duplicates_nothing() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let console_dir = tempfile::tempdir().expect("console dir");
    let port = free_port();
    let console = Console::start(console_dir.path(), port);
    let station = Station::new(port, console_dir.path());
    let state = tempfile::tempdir().expect("card state");
    let card = CardProcess::start(PORT_0, Some(state.path()));
    let mut rng = rand::thread_rng();

    // How long one enroll-and-upload takes here: the kills land anywhere inside it, on a
    // fast machine as on a slow one (a fixed window let most runs finish first).
    let started = std::time::Instant::now();
    let probe = station.run(&[
        "enroll", "--reader", READER_0, "--force", "--upload", "--json",
    ]);
    assert!(
        probe.status.success(),
        "a clean enrollment first: {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let window_ms = u64::try_from(started.elapsed().as_millis())
        .unwrap_or(250)
        .max(20);

    let mut killed = 0;
    for _ in 0..ROUNDS {
        let mut child = station
            .command(&[
                "enroll", "--reader", READER_0, "--force", "--upload", "--json",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("enroll");
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..window_ms)));
        if let Ok(None) = child.try_wait() {
            child.kill().expect("SIGKILL");
            killed += 1;
        }
        let _ = child.wait();
    }
    assert!(
        killed > ROUNDS / 4,
        "only {killed} of {ROUNDS} runs were interrupted: the test proves little"
    );

    // One clean run after the storm: the card is still manageable by the station.
    let last = station.run(&[
        "enroll", "--reader", READER_0, "--force", "--upload", "--json",
    ]);
    assert!(
        last.status.success(),
        "{}",
        String::from_utf8_lossy(&last.stdout)
    );
    let v = station.json(&["outbox", "sync", "--json"]);
    assert_eq!(v["sync"]["pending"], 0, "{v}");

    // Every enrollment the station committed is at the console, once.
    let db =
        rusqlite::Connection::open(station.dir.path().join("data").join("station.db")).expect("db");
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity");
    assert_eq!(integrity, "ok");
    let enrolled: Vec<String> = db
        .prepare("SELECT fingerprint FROM enrollments WHERE state = 'enrolled'")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("enrolled");
    assert!(!enrolled.is_empty());
    let console_db =
        rusqlite::Connection::open(console_dir.path().join("console.db")).expect("console db");
    for fp in &enrolled {
        let n: i64 = console_db
            .query_row(
                "SELECT COUNT(*) FROM certificates WHERE sha256 = ?1",
                [fp],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(
            n, 1,
            "enrolled certificate {fp} is at the console {n} times"
        );
    }
    assert_eq!(
        console.records(),
        enrolled.len() as i64,
        "the console holds only what was enrolled"
    );

    let audit = station.run(&["audit", "verify"]);
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    card.stop();
}
