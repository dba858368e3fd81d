//! The console on a real PostgreSQL server: two instances on one database under
//! parallel uploads and revocations, a database restart while the console runs,
//! moving a site from SQLite with `migrate`, and a schema newer than the console.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod console_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use cardstation::console::{ConsoleClient, ConsoleError};
use cardstation_protocol::messages::UploadRequest;
use cardstation_protocol::trust_lists::TrustLists;
use console_support::pg::PgCluster;
use console_support::{certificate_file, console_binary, free_port, Console, Station, TestDb};

fn pg_db(cluster: &Arc<PgCluster>, name: &str) -> TestDb {
    cluster.create_database(name);
    TestDb::Postgres {
        cluster: cluster.clone(),
        database: name.into(),
    }
}

fn upload_request(pem: String) -> UploadRequest {
    UploadRequest {
        certificate: pem,
        card_serial: None,
        chuid_guid: None,
        slot: Some("9a".into()),
        label: None,
        operator: "op".into(),
        station_id: "station-1".into(),
        attestation: None,
    }
}

/// `n` P-256 certificates as a card would hold them: (PEM, fingerprint).
fn certificates(dir: &Path, prefix: &str, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let (file, fp) = certificate_file(dir, &format!("{prefix}-{i}"));
            (std::fs::read_to_string(file).expect("read"), fp)
        })
        .collect()
}

/// The bundle from `client`, verified with the console's bundle key.
fn bundle_of(client: &ConsoleClient, console_dir: &Path) -> Bundle {
    let f = console_support::full_bundle(client, console_dir);
    Bundle {
        version: f.header.version,
        lists: f.lists,
    }
}

struct Bundle {
    version: u64,
    lists: TrustLists,
}

/// What a bundle says, as one comparable value.
fn content(b: &Bundle) -> [u8; 32] {
    b.lists.digest()
}

#[test]
fn two_instances_on_one_database_agree_under_parallel_uploads_and_revocations() {
    if !console_support::pg::available_or_skip() {
        return;
    }
    let cluster = PgCluster::start();
    let db = pg_db(&cluster, "site");
    let dir = tempfile::tempdir().expect("console dir");
    // The identity files exist before both instances start at once on the empty
    // database: the migrations must run exactly once between them.
    cardstation_console::setup::ensure(dir.path()).expect("console files");
    let (pa, pb) = (free_port(), free_port());
    let (dir_a, dir_b) = (dir.path().to_path_buf(), dir.path().to_path_buf());
    let (db_a, db_b) = (db.clone(), db.clone());
    let a = std::thread::spawn(move || Console::start_on(&dir_a, pa, &db_a));
    let b = std::thread::spawn(move || Console::start_on(&dir_b, pb, &db_b));
    let (a, b) = (a.join().expect("instance A"), b.join().expect("instance B"));
    assert_eq!(
        cluster.psql(
            "site",
            "SELECT COUNT(*) = COUNT(DISTINCT version) AND COUNT(*) = MAX(version) AND COUNT(*) > 1
             FROM schema_migrations"
        ),
        "t",
        "each migration applied once, in order"
    );

    const N: usize = 24;
    let certs = Arc::new(certificates(dir.path(), "gw", N));
    let stop = Arc::new(AtomicBool::new(false));
    // Bundles seen while the storm runs, per instance, in the order they came.
    let seen: Arc<Mutex<Vec<(char, Bundle)>>> = Arc::default();
    let readers: Vec<_> = [('A', a.port), ('B', b.port)]
        .into_iter()
        .map(|(name, port)| {
            let (stop, seen, dir) = (stop.clone(), seen.clone(), dir.path().to_path_buf());
            let console = Console::client_for(&dir, port);
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) && n < 2000 {
                    let p = bundle_of(&console, &dir);
                    seen.lock().unwrap().push((name, p));
                    n += 1;
                }
            })
        })
        .collect();

    // Every certificate uploaded through both instances at the same moment.
    let barrier = Arc::new(Barrier::new(2 * N));
    let uploads: Vec<_> = (0..2 * N)
        .map(|i| {
            let (certs, barrier) = (certs.clone(), barrier.clone());
            let client = if i % 2 == 0 { a.client() } else { b.client() };
            std::thread::spawn(move || {
                let req = upload_request(certs[i / 2].0.clone());
                barrier.wait();
                client.upload(&req)
            })
        })
        .collect();
    for u in uploads {
        let rec = u.join().expect("upload thread").expect("upload accepted");
        assert_eq!(
            rec.status,
            cardstation_protocol::messages::CertificateStatus::Active
        );
    }
    assert_eq!(a.records(), N as i64, "one record per certificate");

    // Half of them revoked, each through both instances at the same moment.
    let barrier = Arc::new(Barrier::new(N));
    let revokes: Vec<_> = (0..N)
        .map(|i| {
            let (certs, barrier) = (certs.clone(), barrier.clone());
            let client = if i % 2 == 0 { a.client() } else { b.client() };
            std::thread::spawn(move || {
                let fp = certs[i / 2].1.clone();
                barrier.wait();
                client.revoke(&fp, "lost")
            })
        })
        .collect();
    for r in revokes {
        r.join()
            .expect("revoke thread")
            .expect("revocation accepted");
    }
    stop.store(true, Ordering::SeqCst);
    for r in readers {
        r.join().expect("reader");
    }

    // Exactly one version step per change: N uploads, N/2 revocations, from 1.
    let expected = 1 + N as u64 + (N / 2) as u64;
    let (final_a, final_b) = (
        bundle_of(&a.client(), dir.path()),
        bundle_of(&b.client(), dir.path()),
    );
    assert_eq!(final_a.version, expected);
    assert_eq!(final_b.version, expected);
    assert_eq!(content(&final_a), content(&final_b));
    assert_eq!(final_a.lists.allowed().len(), N / 2);
    assert_eq!(final_a.lists.revoked().len(), N / 2);

    // One content per version across both instances; each instance's versions never go back.
    let seen = seen.lock().unwrap();
    assert!(
        seen.len() > 10,
        "the readers saw too few bundles ({})",
        seen.len()
    );
    let mut by_version: BTreeMap<u64, [u8; 32]> = BTreeMap::new();
    let mut last: BTreeMap<char, u64> = BTreeMap::new();
    for (who, p) in seen.iter() {
        let c = content(p);
        let known = by_version.entry(p.version).or_insert(c);
        assert_eq!(*known, c, "version {} has two contents", p.version);
        let prev = last.insert(*who, p.version).unwrap_or(0);
        assert!(
            p.version >= prev,
            "instance {who} went back from {prev} to {}",
            p.version
        );
        // A version's content is the changes up to it: allowed + revoked counts match.
        assert_eq!(
            (p.lists.allowed().len() + 2 * p.lists.revoked().len()) as u64,
            p.version - 1,
            "version {} does not hold exactly its changes",
            p.version
        );
    }

    // A revocation through one instance is in the very next bundle of the other,
    // which had the previous version cached.
    let before = bundle_of(&b.client(), dir.path());
    let target = hex::encode(final_a.lists.allowed()[0]);
    a.client()
        .revoke(&target, "stolen")
        .expect("revoke through A");
    let after = bundle_of(&b.client(), dir.path());
    assert_eq!(after.version, before.version + 1);
    assert!(after
        .lists
        .revocation_hex(&target)
        .is_some_and(|r| r.reason == "stolen"));
    assert!(!after.lists.is_allowed_hex(&target));
    assert_eq!(
        cluster.psql(
            "site",
            "SELECT value FROM meta WHERE key = 'bundle_version'"
        ),
        after.version.to_string()
    );
}

/// A new chain starts only on an empty history or an explicit `bundle reset`: two
/// instances serving bundles while versions are cut by uploads through both and by
/// a `publish` loop on the same database never serve a second chain (a read of the
/// newest version that raced a cut once made an instance start a fresh one, which
/// every station and gateway then refused as a fork).
#[test]
fn versions_cut_while_bundles_are_served_stay_on_one_chain() {
    if !console_support::pg::available_or_skip() {
        return;
    }
    let cluster = PgCluster::start();
    let db = pg_db(&cluster, "site");
    let dir = tempfile::tempdir().expect("console dir");
    cardstation_console::setup::ensure(dir.path()).expect("console files");
    let a = Console::start_on(dir.path(), free_port(), &db);
    let b = Console::start_on(dir.path(), free_port(), &db);
    const REQUESTS: usize = 1000;
    const UPLOADS: usize = 40;
    let certs = Arc::new(certificates(dir.path(), "race", UPLOADS));
    let stop = Arc::new(AtomicBool::new(false));

    // Versions cut by changes through both instances…
    let writers: Vec<_> = [a.client(), b.client()]
        .into_iter()
        .enumerate()
        .map(|(w, client)| {
            let certs = certs.clone();
            std::thread::spawn(move || {
                for (pem, _) in certs.iter().skip(w).step_by(2) {
                    client.upload(&upload_request(pem.clone())).expect("upload");
                }
            })
        })
        .collect();
    // …and by `publish` (run from cron on a console host) on the same database.
    let publisher = {
        let (stop, dir, args) = (stop.clone(), dir.path().to_path_buf(), db.database_args());
        std::thread::spawn(move || {
            let out = dir.join("published");
            let mut runs = 0;
            while !stop.load(Ordering::SeqCst) && runs < 200 {
                let status = std::process::Command::new(console_binary())
                    .args(["publish", "--data"])
                    .arg(&dir)
                    .args(&args)
                    .arg("--out")
                    .arg(&out)
                    .stdout(std::process::Stdio::null())
                    .status()
                    .expect("publish");
                assert!(status.success(), "publish failed");
                runs += 1;
            }
            runs
        })
    };
    // 1,000 bundle requests across both instances while all that runs.
    let readers: Vec<_> = [a.port, b.port]
        .into_iter()
        .map(|port| {
            let dir = dir.path().to_path_buf();
            let console = Console::client_for(&dir, port);
            std::thread::spawn(move || {
                (0..REQUESTS / 2)
                    .map(|_| {
                        let f = console_support::full_bundle(&console, &dir);
                        (f.header.chain, f.header.version)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let seen: Vec<([u8; 16], u64)> = readers
        .into_iter()
        .flat_map(|r| r.join().expect("reader"))
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    stop.store(true, Ordering::SeqCst);
    let publishes = publisher.join().expect("publisher");
    assert!(publishes > 0);
    let last = console_support::full_bundle(&a.client(), dir.path());

    assert_eq!(seen.len(), REQUESTS);
    let chains: std::collections::BTreeSet<_> = seen.iter().map(|(c, _)| *c).collect();
    assert_eq!(
        chains.len(),
        1,
        "bundles were served from {} chains: {chains:02x?}",
        chains.len()
    );
    assert!(
        chains.contains(&last.header.chain),
        "the final bundle left the chain"
    );
    let versions: std::collections::BTreeSet<_> = seen.iter().map(|(_, v)| *v).collect();
    assert!(
        versions.len() > 1,
        "no version was cut while bundles were served"
    );
    // Every stored version names the one before it: one unbroken chain.
    assert_eq!(
        cluster.psql(
            "site",
            "SELECT COUNT(*) FROM bundle_versions v WHERE changes IS NULL"
        ),
        "1",
        "only the first version of the history starts a chain"
    );
}

#[test]
fn a_postgresql_restart_fails_requests_cleanly_and_the_console_recovers() {
    if !console_support::pg::available_or_skip() {
        return;
    }
    let cluster = PgCluster::start();
    let db = pg_db(&cluster, "site");
    let dir = tempfile::tempdir().expect("console dir");
    // The database chosen in the console's settings file this time, not on the command line.
    std::fs::write(
        dir.path().join("console.toml"),
        format!("database = {:?}\n", db.url().expect("url")),
    )
    .expect("settings");
    let console = Console::start(dir.path(), free_port());
    let client = console.client();
    let certs = Arc::new(certificates(dir.path(), "gw", 40));
    client
        .upload(&upload_request(certs[0].0.clone()))
        .expect("upload while the database is up");
    assert_eq!(
        cluster.psql("site", "SELECT COUNT(*) FROM certificates"),
        "1",
        "the settings file chose PostgreSQL"
    );

    // Uploads keep coming while the database goes away and comes back.
    let writer = {
        let (certs, client) = (certs.clone(), console.client());
        std::thread::spawn(move || {
            let mut results = Vec::new();
            for (pem, fp) in certs.iter().skip(1) {
                results.push((fp.clone(), client.upload(&upload_request(pem.clone()))));
                std::thread::sleep(Duration::from_millis(40));
            }
            results
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    cluster.stop_server();

    // While it is down: a JSON 503 that says what happened, and the console stays up.
    let err = client
        .upload(&upload_request(certs[0].0.clone()))
        .expect_err("no database, no answer");
    assert!(
        matches!(err, ConsoleError::ServerError { status: 503, .. }),
        "{err:?}"
    );
    assert!(
        err.is_transient(),
        "a station keeps the item and tries again"
    );
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(dir.path().join("ca.pem"))
        .arg("--cert")
        .arg(dir.path().join("station.pem"))
        .arg("--key")
        .arg(dir.path().join("station.key"))
        .args(["-w", "\n%{http_code}"])
        .arg(format!(
            "https://localhost:{}/v1/trust-bundle",
            console.port
        ))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, status) = text.rsplit_once('\n').expect("status line");
    assert_eq!(status, "503", "{text}");
    let body: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(body["error"]["code"], "storage-unavailable", "{body}");

    std::thread::sleep(Duration::from_millis(500));
    cluster.start_again();
    // Back: the next request succeeds (no console restart).
    client
        .upload(&upload_request(certs[0].0.clone()))
        .expect("the first request after the restart");
    let results = writer.join().expect("writer");
    let ok: Vec<&String> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(fp, _)| fp)
        .collect();
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    assert!(failed > 0, "the outage was never seen by the writer");
    assert!(
        ok.len() > 1,
        "nothing got through before or after the outage"
    );
    for (_, r) in &results {
        if let Err(e) = r {
            assert!(
                matches!(e, ConsoleError::ServerError { status: 503, .. }),
                "a failure other than a clean 503: {e:?}"
            );
        }
    }

    // Nothing half-written: every acknowledged upload is there, and the bundle
    // version counts exactly the records stored (no record without its step).
    for fp in &ok {
        assert_eq!(
            cluster.psql(
                "site",
                &format!("SELECT COUNT(*) FROM certificates WHERE sha256 = '{fp}'")
            ),
            "1"
        );
    }
    let stored: u64 = cluster
        .psql("site", "SELECT COUNT(*) FROM certificates")
        .parse()
        .unwrap();
    let p = bundle_of(&client, dir.path());
    assert_eq!(p.version, 1 + stored);
    assert_eq!(p.lists.allowed().len() as u64, stored);

    // The failed ones go through now, exactly once.
    for (pem, _) in certs.iter() {
        client.upload(&upload_request(pem.clone())).expect("retry");
    }
    assert_eq!(
        db.count(dir.path(), "SELECT COUNT(*) FROM certificates"),
        40
    );
    assert_eq!(bundle_of(&client, dir.path()).version, 41);
}

/// An independent summary of a console database's records, in SQL both databases speak.
const RECORDS_SQL: &str =
    "SELECT COUNT(*) || ':' || COALESCE(SUM(LENGTH(pem)), 0) FROM certificates";

fn listing_sqlite(path: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).expect("sqlite");
    let mut stmt = conn
        .prepare(
            "SELECT sha256 || '|' || status || '|' || COALESCE(reason, '') || '|' || station_id \
             || '|' || pem FROM certificates ORDER BY sha256",
        )
        .expect("prepare");
    stmt.query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[test]
fn migrate_moves_a_site_from_sqlite_to_postgresql_and_checks_it() {
    if !console_support::pg::available_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("console dir");
    let port = free_port();
    let console = Console::start(dir.path(), port);
    let station = Station::new(port, dir.path());
    let mut fps = Vec::new();
    for i in 0..5 {
        let (file, fp) = certificate_file(station.dir.path(), &format!("gw-{i}"));
        let v = station.json(&["upload", file.to_str().expect("path"), "--json"]);
        assert_eq!(v["sync"]["delivered"], 1, "{v}");
        fps.push(fp);
    }
    let v = station.json(&[
        "revoke",
        "--fingerprint",
        &fps[0],
        "--reason",
        "lost",
        "--json",
    ]);
    assert_eq!(v["sync"]["delivered"], 1, "{v}");
    let held = station.json(&["trust", "sync", "--json"]);
    let version = held["bundle"]["version"].as_u64().expect("version");
    console.stop();

    let cluster = PgCluster::start();
    let target = pg_db(&cluster, "site");
    let url = target.url().expect("url");
    let sqlite = dir.path().join("console.db");
    // What a CA site requiring attestation holds: since when its CA has signed only for
    // attested keys. It moves with the records (the digest covers it).
    rusqlite::Connection::open(&sqlite)
        .expect("sqlite")
        .execute(
            "INSERT INTO meta (key, value) VALUES ('attested_since', 1700000000)",
            [],
        )
        .expect("mark");
    let migrate = |to: &str| {
        std::process::Command::new(console_binary())
            .args([
                "migrate",
                "--from",
                &format!("sqlite:{}", sqlite.display()),
                "--to",
                to,
            ])
            .output()
            .expect("cardstation-console migrate")
    };
    let out = migrate(&url);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Moved 5 certificates"), "{stdout}");
    assert!(stdout.contains("5 records on both sides"), "{stdout}");

    // Checked here independently of the command: the same records, byte for byte.
    let pg_listing = cluster.psql(
        "site",
        "SELECT sha256 || '|' || status || '|' || COALESCE(reason, '') || '|' || station_id \
         || '|' || pem FROM certificates ORDER BY sha256",
    );
    let sqlite_listing = listing_sqlite(&sqlite).join("\n");
    assert_eq!(pg_listing.trim(), sqlite_listing.trim());
    let conn = rusqlite::Connection::open(&sqlite).expect("sqlite");
    let sqlite_summary: String = conn
        .query_row(RECORDS_SQL, [], |r| r.get(0))
        .expect("summary");
    assert_eq!(cluster.psql("site", RECORDS_SQL), sqlite_summary);
    drop(conn);
    assert_eq!(
        cluster.psql(
            "site",
            "SELECT value FROM meta WHERE key = 'attested_since'"
        ),
        "1700000000"
    );
    // This site does not require attestation: the console would forget the mark (and
    // cut a version) at start; take it out so the chain below is the records' alone.
    cluster.psql("site", "DELETE FROM meta WHERE key = 'attested_since'");

    // The console on PostgreSQL: the station's held bundle is not rolled back, and it goes on.
    let console = Console::start_on(dir.path(), port, &target);
    let v = station.json(&["trust", "sync", "--json"]);
    assert_eq!(v["bundle"]["version"].as_u64(), Some(version), "{v}");
    let v = station.json(&[
        "revoke",
        "--fingerprint",
        &fps[1],
        "--reason",
        "stolen",
        "--json",
    ]);
    assert_eq!(v["sync"]["delivered"], 1, "{v}");
    let v = station.json(&["trust", "sync", "--json"]);
    assert_eq!(v["bundle"]["version"].as_u64(), Some(version + 1), "{v}");
    assert_eq!(console.records(), 5);
    console.stop();

    // Into a database that already holds records: refused, nothing changed.
    let out = migrate(&url);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already holds 5 certificates"), "{stderr}");
    assert_eq!(
        cluster.psql("site", "SELECT COUNT(*) FROM certificates"),
        "5"
    );

    // A source that does not exist is an error, not an empty site.
    let out = std::process::Command::new(console_binary())
        .args([
            "migrate",
            "--from",
            "sqlite:/nonexistent/console.db",
            "--to",
        ])
        .arg(cluster.create_database("other"))
        .output()
        .expect("migrate");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not exist"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_schema_newer_than_the_console_knows_is_refused_at_start() {
    if !console_support::pg::available_or_skip() {
        return;
    }
    let cluster = PgCluster::start();
    let db = pg_db(&cluster, "site");
    let dir = tempfile::tempdir().expect("console dir");
    Console::start_on(dir.path(), free_port(), &db).stop();
    cluster.psql(
        "site",
        "INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)",
    );
    let out = std::process::Command::new(console_binary())
        .args(["serve", "--data"])
        .arg(dir.path())
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--database", &db.url().expect("url")])
        .output()
        .expect("serve");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("schema version 99"), "{stderr}");
    assert!(!stderr.contains("password"), "{stderr}");
    // Nothing was touched.
    assert_eq!(
        cluster.psql("site", "SELECT MAX(version) FROM schema_migrations"),
        "99"
    );
}

#[test]
fn the_console_reaches_postgresql_over_verified_tls_only() {
    if !console_support::pg::available_or_skip() {
        return;
    }
    let cluster = PgCluster::start_tls();
    cluster.create_database("site");
    let ca = cluster.ca.clone().expect("the cluster's CA");
    let dir = tempfile::tempdir().expect("console dir");
    let serve = |url: &str| {
        std::process::Command::new(console_binary())
            .args(["serve", "--data"])
            .arg(dir.path())
            .args(["--listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--database", url])
            .output()
            .expect("serve")
    };
    // The server takes TLS only: without it the console cannot start, and says why.
    let out = serve(&cluster.url("site"));
    assert_eq!(out.status.code(), Some(1));
    // TLS asked for without a CA to check the server against: refused, never "any certificate".
    let out = serve(&format!("{}?sslmode=require", cluster.url("site")));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sslrootcert"));
    // A CA that did not issue the server's certificate: refused.
    let other = PgCluster::start_tls();
    let out = serve(&format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        cluster.url("site"),
        other.ca.as_ref().unwrap().display()
    ));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unavailable"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // With the right CA: works, and the sessions are encrypted.
    let db = TestDb::Postgres {
        cluster: cluster.clone(),
        database: "site".into(),
    };
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        cluster.url("site"),
        ca.display()
    );
    let console = Console::start_with_database(dir.path(), free_port(), &db, &url);
    let (pem, _) = certificates(dir.path(), "gw", 1).remove(0);
    console
        .client()
        .upload(&upload_request(pem))
        .expect("upload over TLS");
    assert_eq!(console.records(), 1);
    assert_eq!(
        cluster.psql(
            "site",
            "SELECT bool_and(s.ssl)::text FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'cardstation-console'"
        ),
        "true"
    );
}
