//! The trust bundle at fleet scale, end to end with the real console over mutual TLS:
//! deltas from the version held, 304 when nothing changed, the same lists whichever
//! way they arrived, and the published files served by an ordinary web server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod console_support;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use console_support::{certificate_file, console_binary, free_port, Console, Station};

fn upload(station: &Station, name: &str) -> String {
    let (file, fp) = certificate_file(station.dir.path(), name);
    let v = station.json(&["upload", file.to_str().expect("path"), "--json"]);
    assert_eq!(v["sync"]["delivered"], 1, "{v}");
    fp
}

/// What the station holds, as one comparable value: its lists in JSON.
fn held_lists(station: &Station) -> serde_json::Value {
    station.json(&["trust", "show", "--json"])["lists"].clone()
}

/// The console's full bundle, as the station would show it.
fn console_lists(station: &Station, console_dir: &Path) -> serde_json::Value {
    let lists = console_support::full_lists(&station.client(), console_dir);
    serde_json::json!({
        "allowed": lists.allowed().iter().map(hex::encode).collect::<Vec<_>>(),
        "revoked": lists.revoked().iter().map(|r| serde_json::json!({
            "sha256": hex::encode(r.fp), "reason": r.reason, "revoked_at": r.at,
        })).collect::<Vec<_>>(),
        "revoked_keys": lists.revoked_keys().iter().map(hex::encode).collect::<Vec<_>>(),
    })
}

fn curl_bundle(console_dir: &Path, port: u16, query: &str, etag: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "10",
        "-o",
        "/dev/null",
        "-D",
        "-",
        "--cacert",
    ])
    .arg(console_dir.join("ca.pem"))
    .arg("--cert")
    .arg(console_dir.join("station.pem"))
    .arg("--key")
    .arg(console_dir.join("station.key"));
    if let Some(tag) = etag {
        cmd.args(["-H", &format!("If-None-Match: {tag}")]);
    }
    cmd.arg(format!("https://localhost:{port}/v1/trust-bundle{query}"));
    let out = cmd.output().expect("curl is needed for this test");
    let head = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn a_station_follows_the_console_by_deltas_and_holds_the_same_lists() {
    let dir = tempfile::tempdir().expect("console dir");
    let port = free_port();
    let console = Console::start(dir.path(), port);
    let station = Station::new(port, dir.path());
    let a = upload(&station, "gw-a");
    let v = station.json(&["trust", "sync", "--json"]);
    assert_eq!(v["ok"], true, "{v}");

    // Changes since: one more card, one revoked. The station takes a delta.
    let b = upload(&station, "gw-b");
    let v = station.json(&["revoke", "--fingerprint", &a, "--reason", "lost", "--json"]);
    assert_eq!(v["sync"]["delivered"], 1, "{v}");
    let v = station.json(&["trust", "sync", "--json"]);
    // The revocation's delivery already brought the bundle along; a sync now is 304.
    assert_eq!(v["outcome"]["result"], "unchanged", "{v}");
    let upload_c = upload(&station, "gw-c");
    let v = station.json(&["trust", "sync", "--json"]);
    let outcome = &v["outcome"];
    assert!(
        outcome["result"] == "unchanged" || outcome["delta"] == true,
        "a changed bundle comes as a delta: {v}"
    );
    let kinds: Vec<String> = rusqlite::Connection::open(station.dir.path().join("data/station.db"))
        .and_then(|db| {
            db.prepare("SELECT kind FROM trust_held ORDER BY seq")?
                .query_map([], |r| r.get(0))?
                .collect()
        })
        .expect("held rows");
    assert_eq!(kinds[0], "full");
    assert!(
        kinds.len() > 1 && kinds[1..].iter().all(|k| k == "delta"),
        "later versions came as deltas: {kinds:?}"
    );
    let held = held_lists(&station);
    assert_eq!(held, console_lists(&station, dir.path()));
    assert_eq!(held["revoked"][0]["sha256"], a.as_str());
    let allowed: Vec<&str> = held["allowed"]
        .as_array()
        .expect("allowed")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(allowed.contains(&b.as_str()) && allowed.contains(&upload_c.as_str()));

    // What the console says on the wire: an ETag per version, 304 for it, deltas on
    // request, and "delta-unavailable" for a version it never had.
    let (status, head) = curl_bundle(dir.path(), port, "", None);
    assert_eq!(status, 200, "{head}");
    let tag = header(&head, "etag").expect("an ETag").to_string();
    let version = v["bundle"]["version"].as_u64().expect("version");
    assert!(tag.starts_with(&format!("\"{version}-")), "{tag}");
    assert_eq!(curl_bundle(dir.path(), port, "", Some(&tag)).0, 304);
    assert_eq!(
        curl_bundle(
            dir.path(),
            port,
            &format!("?since={}", version - 1),
            Some(&tag)
        )
        .0,
        304
    );
    let (status, head) = curl_bundle(dir.path(), port, &format!("?since={}", version - 1), None);
    assert_eq!(status, 200, "{head}");
    assert!(
        header(&head, "content-type").is_some_and(|t| t.contains("cardstation.trust-bundle")),
        "{head}"
    );
    assert_eq!(curl_bundle(dir.path(), port, "?since=999999", None).0, 404);

    // A second station starting from nothing takes the full bundle: the same lists.
    let fresh = Station::new(port, dir.path());
    let v = fresh.json(&["trust", "sync", "--json"]);
    assert_eq!(v["outcome"]["delta"], false, "{v}");
    assert_eq!(held_lists(&fresh), held);
    drop(console);
}

/// `python3 -m http.server` serving `dir`: any web server will do.
struct WebServer {
    child: Child,
    port: u16,
}

impl WebServer {
    fn start(dir: &Path) -> WebServer {
        let port = free_port();
        let mut child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 is needed for this test");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return WebServer { child, port };
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the web server did not start");
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn publish(console_dir: &Path, out: &Path) {
    let o = Command::new(console_binary())
        .args(["publish", "--data"])
        .arg(console_dir)
        .arg("--out")
        .arg(out)
        .output()
        .expect("publish");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn published_files_serve_a_station_from_a_plain_web_server_and_tampering_is_refused() {
    let dir = tempfile::tempdir().expect("console dir");
    let port = free_port();
    let console = Console::start(dir.path(), port);
    let uploader = Station::new(port, dir.path());
    upload(&uploader, "gw-1");
    let site = tempfile::tempdir().expect("published files");
    publish(dir.path(), site.path());
    let web = WebServer::start(site.path());

    // A station that fetches bundles from the web server, not from the console.
    let station = Station::new(port, dir.path());
    let config = station.dir.path().join("cardstation.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replacen(
            "[console]\n",
            &format!(
                "[console]\nbundle_url = \"http://127.0.0.1:{}/\"\n",
                web.port
            ),
            1,
        ),
    )
    .expect("config");
    let v = station.json(&["trust", "sync", "--json"]);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["bundle"]["allowed"], 1, "{v}");

    // Nothing new published: the delta from the version held says so.
    let v = station.json(&["trust", "sync", "--json"]);
    assert_eq!(v["outcome"]["result"], "unchanged", "{v}");

    // A change, published again: the station takes the delta from the web server.
    upload(&uploader, "gw-2");
    publish(dir.path(), site.path());
    let v = station.json(&["trust", "sync", "--json"]);
    assert_eq!(v["outcome"]["delta"], true, "{v}");
    assert_eq!(held_lists(&station), console_lists(&station, dir.path()));

    // Whoever controls the web server cannot change what the station believes.
    upload(&uploader, "gw-3");
    publish(dir.path(), site.path());
    let held = v["bundle"]["version"].as_u64().expect("version");
    let delta = site.path().join("deltas").join(format!("{held}.cstb"));
    let mut bytes = std::fs::read(&delta).expect("the delta from the held version");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&delta, &bytes).expect("tamper");
    let out = station.run(&["trust", "sync", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["error"]["code"], "bundle-bad-signature", "{v}");
    let shown = station.json(&["trust", "show", "--json"]);
    assert_eq!(shown["bundle"]["version"].as_u64(), Some(held));
    drop(console);
}
