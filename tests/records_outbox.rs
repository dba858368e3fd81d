//! Exactly-once delivery with several station processes on one data directory,
//! against the real reference console while it is slow, killed and restarted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod console_support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;

use console_support::{certificate_file, free_port, outbox_rows, Console, Station};

/// A TCP relay in front of the console that holds back every answer for a random
/// while (now and then for most of the station's request timeout): a slow network
/// or a console under load. With the console down it drops the connection.
struct SlowRelay {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SlowRelay {
    fn start(listen: u16, upstream: u16) -> SlowRelay {
        let listener = TcpListener::bind(("127.0.0.1", listen)).expect("bind the relay");
        listener.set_nonblocking(true).expect("non-blocking");
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        std::thread::spawn(move || relay(client, upstream));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        SlowRelay {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for SlowRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn relay(client: TcpStream, upstream: u16) {
    let _ = client.set_nonblocking(false);
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let (Ok(mut c_in), Ok(mut s_out)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut c_in, &mut s_out);
        let _ = s_out.shutdown(Shutdown::Write);
    });
    let (mut server, mut client) = (server, client);
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let delay = {
            let mut rng = rand::thread_rng();
            if rng.gen_ratio(1, 6) {
                rng.gen_range(1200..2400)
            } else {
                rng.gen_range(0..250)
            }
        };
        std::thread::sleep(Duration::from_millis(delay));
        if client.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
}

#[test]
fn three_processes_deliver_every_upload_exactly_once_through_a_slow_killed_and_restarted_console() {
    const PROCESSES: usize = 3;
    const EACH: usize = 8;

    let console_dir = tempfile::tempdir().expect("console dir");
    let console_port = free_port();
    let relay_port = free_port();
    let mut console = Some(Console::start(console_dir.path(), console_port));
    let _relay = SlowRelay::start(relay_port, console_port);
    let station = Arc::new(Station::new(relay_port, console_dir.path()));

    // Distinct certificates for each process.
    let mut expected = BTreeSet::new();
    let mut work: Vec<Vec<PathBuf>> = vec![Vec::new(); PROCESSES];
    for (p, files) in work.iter_mut().enumerate() {
        for i in 0..EACH {
            let (file, fp) = certificate_file(station.dir.path(), &format!("p{p}-gw{i}"));
            files.push(file);
            expected.insert(fp);
        }
    }

    let workers: Vec<_> = work
        .into_iter()
        .enumerate()
        .map(|(p, files)| {
            let station = station.clone();
            std::thread::spawn(move || {
                for (i, file) in files.iter().enumerate() {
                    let out = station.run(&["upload", file.to_str().expect("path"), "--json"]);
                    assert!(
                        out.status.success(),
                        "process {p}, upload {i}: {}\n{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    );
                    if i % 3 == 2 {
                        // Delivery may fail while the console is away (exit 1), never panic.
                        let out = station.run(&["outbox", "sync"]);
                        assert!(
                            matches!(out.status.code(), Some(0 | 1)),
                            "process {p}: outbox sync: {}",
                            String::from_utf8_lossy(&out.stderr)
                        );
                    }
                }
            })
        })
        .collect();

    // The console goes away and comes back while the stations work.
    let mut restarts = 0;
    while workers.iter().any(|w| !w.is_finished()) {
        std::thread::sleep(Duration::from_millis(1500));
        if let Some(c) = console.take() {
            let (dir, port) = c.kill();
            std::thread::sleep(Duration::from_millis(700));
            console = Some(Console::start(&dir, port));
            restarts += 1;
        }
    }
    for w in workers {
        w.join().expect("worker");
    }
    assert!(restarts > 0, "the console was never killed during the run");

    // With the console back, what is still queued goes out.
    let deadline = Instant::now() + Duration::from_secs(120);
    while outbox_rows(station.dir.path()) > 0 {
        assert!(
            Instant::now() < deadline,
            "the outbox did not drain: {}",
            String::from_utf8_lossy(&station.run(&["outbox", "list"]).stdout)
        );
        let _ = station.run(&["outbox", "sync"]);
    }

    let console = console.expect("console running");
    let held: Vec<String> = console.fingerprints();
    let held_set: BTreeSet<String> = held.iter().cloned().collect();
    assert_eq!(held.len(), held_set.len(), "a certificate is held twice");
    let missing: Vec<_> = expected.difference(&held_set).collect();
    assert!(
        missing.is_empty(),
        "{} of {} uploads never reached the console: {missing:?}",
        missing.len(),
        expected.len()
    );
    assert_eq!(held_set, expected);
    assert_eq!(outbox_rows(station.dir.path()), 0);

    // Every upload is on the audit trail once, and the trail is whole.
    let db = rusqlite::Connection::open(station.dir.path().join("data").join("station.db"))
        .expect("station db");
    let queued: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM audit WHERE action = 'upload' AND outcome = 'queued'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(queued as usize, PROCESSES * EACH);
    let out = station.run(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
