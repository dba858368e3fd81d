//! Gateways at the console, over real mutual TLS on both storage backends, met with
//! the credentials an attacker would hold: a gateway credential reaches the trust
//! bundle and its own events and nothing else, a station cannot post events, a
//! revoked gateway is refused; events are kept once by id, checked field by field
//! and listed newest first; stations' audit anchors only ever grow; `migrate`
//! carries all of it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod console_support;

use std::path::Path;
use std::process::Command;

use cardstation::console::ConsoleError;
use cardstation_gateway::client::ConsoleClient as GatewayClient;
use cardstation_gateway::client::ConsoleError as GatewayError;
use cardstation_protocol::messages::{
    AuditHead, Decision, EventBatch, GatewayEvent, UploadRequest,
};
use console_support::{certificate_file, console_binary, Backend, Console, Site, Station, TestDb};

on_both_backends!(
    a_stolen_gateway_credential_reaches_the_bundle_and_events_and_nothing_else,
    a_station_cannot_post_events_and_a_revoked_gateway_is_refused,
    events_are_kept_once_checked_and_listed_newest_first,
    an_audit_anchor_only_grows_and_belongs_to_the_calling_station,
);

/// The first-start station, configured as a station is.
fn first_station(site: &Site) -> Station {
    Station::new(site.console.port, site.data())
}

/// The gateway agent's own client with the credential in `cert`/`key`.
fn gateway_client(site: &Site, cert: &Path, key: &Path) -> GatewayClient {
    GatewayClient::new(&cardstation_gateway::config::ConsoleConfig {
        url: Some(format!("https://localhost:{}", site.console.port)),
        ca: Some(site.data().join("ca.pem")),
        client_cert: Some(cert.to_path_buf()),
        client_key: Some(key.to_path_buf()),
        bundle_key: None,
        bundle_url: None,
        connect_timeout_secs: 2,
        request_timeout_secs: 5,
        ..Default::default()
    })
    .expect("gateway client")
}

fn gateway_of(site: &Site, kit: &Path) -> GatewayClient {
    gateway_client(site, &kit.join("gateway.pem"), &kit.join("gateway.key"))
}

/// The station's client holding a gateway's credential: what a thief would try with it.
fn station_client_with(site: &Site, kit: &Path) -> cardstation::console::ConsoleClient {
    cardstation::console::ConsoleClient::new(&cardstation::config::ConsoleConfig {
        url: Some(format!("https://localhost:{}", site.console.port)),
        ca: Some(site.data().join("ca.pem")),
        client_cert: Some(kit.join("gateway.pem")),
        client_key: Some(kit.join("gateway.key")),
        bundle_key: None,
        ..Default::default()
    })
    .expect("client")
}

/// One way to spoil an event.
type Spoil = Box<dyn Fn(&mut GatewayEvent)>;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn event(n: u8, at: i64, fingerprint: &str, decision: Decision) -> GatewayEvent {
    GatewayEvent {
        id: format!("{:032x}", 0xe7e0_0000_u128 + u128::from(n)),
        at,
        reader: "Virtual PCD 00 00".into(),
        decision,
        fingerprint: Some(fingerprint.to_string()),
        subject: Some("CN=gateway-7".into()),
        reasons: match decision {
            Decision::Grant => vec![],
            Decision::Deny => vec!["revoked".into()],
        },
        bundle_version: Some(4),
    }
}

/// The times of the events the console holds for `fingerprint`.
fn station_events_at(site: &Site, fingerprint: &str) -> Vec<i64> {
    first_station(site)
        .client()
        .events(Some(fingerprint), 100)
        .unwrap()
        .events
        .iter()
        .map(|r| r.event.at)
        .collect()
}

fn refused<T: std::fmt::Debug>(r: Result<T, ConsoleError>) -> (u16, String) {
    match r {
        Err(ConsoleError::Rejected { status, code, .. }) => (status, code),
        Err(ConsoleError::Settings(message)) => (0, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn gateway_refused<T: std::fmt::Debug>(r: Result<T, GatewayError>) -> (u16, String) {
    match r {
        Err(GatewayError::Rejected { status, code, .. }) => (status, code),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn upload_request(pem: String, station: &str) -> UploadRequest {
    UploadRequest {
        certificate: pem,
        card_serial: None,
        chuid_guid: None,
        slot: Some("9a".into()),
        label: None,
        operator: "op".into(),
        station_id: station.into(),
        attestation: None,
    }
}

fn a_stolen_gateway_credential_reaches_the_bundle_and_events_and_nothing_else(backend: Backend) {
    let site = Site::start(backend);
    let kit = site.add_gateway("gw-north");
    for f in [
        "gateway.pem",
        "gateway.key",
        "ca.pem",
        "bundle-signing.pub.pem",
        "gateway.toml",
    ] {
        assert!(
            kit.join(f).is_file(),
            "{f} missing from the gateway's files"
        );
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(kit.join("gateway.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let toml = std::fs::read_to_string(kit.join("gateway.toml")).unwrap();
    assert!(toml.contains("id = \"gw-north\""), "{toml}");

    // A certificate uploaded by the station, for the thief to go after.
    let station = first_station(&site);
    let (file, fp) = certificate_file(station.dir.path(), "card-1");
    let v = station.json(&["upload", file.to_str().unwrap(), "--json"]);
    assert_eq!(v["sync"]["delivered"], 1, "{v}");
    let audit_rows = site.count("SELECT COUNT(*) FROM audit");

    // What a gateway needs works at once (no restart).
    let gw = gateway_of(&site, &kit);
    assert!(matches!(
        gw.trust_bundle(None, None),
        Ok(cardstation_gateway::client::Fetched::Bundle { .. })
    ));
    let accepted = gw
        .post_events(&EventBatch {
            events: vec![event(1, now(), &fp, Decision::Grant)],
        })
        .expect("events");
    assert_eq!(
        (accepted.counts.accepted, accepted.counts.duplicates),
        (1, 0)
    );

    // Everything else is refused, whatever client the thief uses.
    let thief = station_client_with(&site, &kit);
    let (other, _) = certificate_file(station.dir.path(), "thief-card");
    let pem = std::fs::read_to_string(other).unwrap();
    for station_name in ["gw-north", "station-1"] {
        let r = thief.upload(&upload_request(pem.clone(), station_name));
        assert_eq!(refused(r), (403, "gateway-not-allowed".into()));
    }
    assert_eq!(
        refused(thief.revoke(&fp, "lost")),
        (403, "gateway-not-allowed".into())
    );
    assert_eq!(refused(thief.get(&fp)), (403, "gateway-not-allowed".into()));
    assert_eq!(
        refused(thief.events(Some(&fp), 10)),
        (403, "gateway-not-allowed".into())
    );
    assert_eq!(
        refused(thief.audit_anchor()),
        (403, "gateway-not-allowed".into())
    );
    assert_eq!(
        refused(thief.post_audit_head(&AuditHead {
            rows: 1,
            hash: "0".repeat(64)
        })),
        (403, "gateway-not-allowed".into())
    );
    // Nothing changed: one certificate, active; no audit row from the thief.
    assert_eq!(site.count("SELECT COUNT(*) FROM certificates"), 1);
    assert_eq!(
        site.count("SELECT COUNT(*) FROM certificates WHERE status = 'active'"),
        1
    );
    assert_eq!(site.count("SELECT COUNT(*) FROM audit"), audit_rows);
}

fn a_station_cannot_post_events_and_a_revoked_gateway_is_refused(backend: Backend) {
    let site = Site::start(backend);
    let kit = site.add_gateway("gw-south");
    let fp = "ab".repeat(32);

    // The station's credential in the gateway agent: it may not report decisions.
    let as_station = gateway_client(
        &site,
        &site.data().join("station.pem"),
        &site.data().join("station.key"),
    );
    let r = as_station.post_events(&EventBatch {
        events: vec![event(1, now(), &fp, Decision::Grant)],
    });
    assert_eq!(gateway_refused(r), (403, "not-a-gateway".into()));
    assert_eq!(site.count("SELECT COUNT(*) FROM gateway_events"), 0);

    // A second credential for a name in use is refused; a bad name too.
    let out = site.admin(&["gateway", "add", "gw-south", "--out", "/tmp/unused-gw-kit"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already has an active credential"));
    let out = site.admin(&["gateway", "add", "../x", "--out", "/tmp/unused-gw-kit"]);
    assert_eq!(out.status.code(), Some(1));

    let gw = gateway_of(&site, &kit);
    assert!(gw.trust_bundle(None, None).is_ok());
    let listed = site.admin_ok(&["gateway", "list"]);
    assert!(
        listed.contains("gw-south") && listed.contains("active"),
        "{listed}"
    );

    // Revoked while the console runs: refused on the very next request, told why.
    let out = site.admin_ok(&["gateway", "revoke", "gw-south"]);
    assert!(out.contains("1 credential(s) revoked"), "{out}");
    assert_eq!(
        gateway_refused(gw.trust_bundle(None, None).map(|_| ())),
        (403, "gateway-revoked".into())
    );
    let r = gw.post_events(&EventBatch {
        events: vec![event(2, now(), &fp, Decision::Deny)],
    });
    assert_eq!(gateway_refused(r), (403, "gateway-revoked".into()));
    assert_eq!(site.count("SELECT COUNT(*) FROM gateway_events"), 0);
    let v: serde_json::Value =
        serde_json::from_str(&site.admin_ok(&["gateway", "list", "--json"])).unwrap();
    assert!(v[0]["revoked_at"].is_i64(), "{v}");
    let out = site.admin(&["gateway", "revoke", "gw-south"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already revoked"));
    // The administrator's changes are in the console's audit trail.
    let audit = site.admin_ok(&["audit"]);
    assert!(
        audit.contains("gateway-add") && audit.contains("gateway-revoke"),
        "{audit}"
    );
}

fn events_are_kept_once_checked_and_listed_newest_first(backend: Backend) {
    let site = Site::start(backend);
    let north = gateway_of(&site, &site.add_gateway("gw-north"));
    let south = gateway_of(&site, &site.add_gateway("gw-south"));
    let card = "cd".repeat(32);
    let other = "ef".repeat(32);
    let t = now() - 600;
    let batch = EventBatch {
        events: vec![
            event(1, t, &card, Decision::Grant),
            event(2, t + 10, &card, Decision::Deny),
            event(3, t + 20, &other, Decision::Grant),
        ],
    };
    let a = north.post_events(&batch).unwrap();
    assert_eq!((a.counts.accepted, a.counts.duplicates), (3, 0));
    // The answer was lost and the batch is sent again, then one more overlapping one.
    let a = north.post_events(&batch).unwrap();
    assert_eq!((a.counts.accepted, a.counts.duplicates), (0, 3));
    let mut more = batch.events[2..].to_vec();
    more.push(event(4, t + 30, &card, Decision::Grant));
    let a = north.post_events(&EventBatch { events: more }).unwrap();
    assert_eq!((a.counts.accepted, a.counts.duplicates), (1, 1));
    // The same id from another gateway is that gateway's own event.
    let a = south
        .post_events(&EventBatch {
            events: vec![event(1, t + 40, &card, Decision::Deny)],
        })
        .unwrap();
    assert_eq!((a.counts.accepted, a.counts.duplicates), (1, 0));
    assert_eq!(site.count("SELECT COUNT(*) FROM gateway_events"), 5);

    // A bad event is refused and named; the good events of its batch are kept, so one
    // bad event cannot hold back a gateway's later reports.
    let good = "ab".repeat(32);
    let bad_cases: Vec<Spoil> = vec![
        Box::new(|e| e.id = "not-hex".into()),
        Box::new(|e| e.at = now() + 7200),
        Box::new(|e| e.at = 12),
        Box::new(|e| e.fingerprint = Some("ZZ".into())),
        Box::new(|e| e.reader = "\u{1b}[2Jreader".into()),
        Box::new(|e| e.reasons = vec!["x".repeat(65)]),
        Box::new(|e| e.subject = Some("s".repeat(5000))),
    ];
    for (i, spoil) in bad_cases.iter().enumerate() {
        let mut bad = event(90 + i as u8, t, &card, Decision::Deny);
        spoil(&mut bad);
        let bad_id = bad.id.clone();
        let a = north
            .post_events(&EventBatch {
                events: vec![event(50 + i as u8, t, &good, Decision::Grant), bad],
            })
            .unwrap();
        assert_eq!((a.counts.accepted, a.counts.duplicates), (1, 0), "case {i}");
        assert_eq!(a.refused.len(), 1, "case {i}: {a:?}");
        assert_eq!((a.refused[0].index, &a.refused[0].id), (1, &bad_id));
        // Only a time ahead of the console's clock may pass later.
        assert_eq!(a.refused[0].for_good(), i != 1, "case {i}: {a:?}");
    }
    // A gateway that cannot vouch for its clock says so (at = 0): the event is kept at
    // the console's receive time.
    let mut unknown = event(
        70,
        cardstation_protocol::messages::AT_UNKNOWN,
        &good,
        Decision::Deny,
    );
    unknown.subject = None;
    let a = south
        .post_events(&EventBatch {
            events: vec![unknown],
        })
        .unwrap();
    assert_eq!((a.counts.accepted, a.refused.len()), (1, 0), "{a:?}");
    let kept = station_events_at(&site, &good);
    assert!(kept.iter().all(|at| *at >= t), "{kept:?}");
    let too_many: Vec<_> = (0..501)
        .map(|i| {
            let mut e = event(0, t, &card, Decision::Grant);
            e.id = format!("{:032x}", 0xba7c_0000_u128 + i);
            e
        })
        .collect();
    let r = north.post_events(&EventBatch { events: too_many });
    assert_eq!(gateway_refused(r), (400, "batch-too-large".into()));
    let r = north.post_events(&EventBatch { events: vec![] });
    assert_eq!(gateway_refused(r), (400, "empty-batch".into()));
    assert_eq!(site.count("SELECT COUNT(*) FROM gateway_events"), 5 + 7 + 1);

    // A station reads them: by card, newest first, bounded; the gateway from its certificate.
    let station = first_station(&site).client();
    let list = station.events(Some(&card), 100).unwrap().events;
    let seen: Vec<(String, i64)> = list
        .iter()
        .map(|r| (r.gateway.clone(), r.event.at))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("gw-south".to_string(), t + 40),
            ("gw-north".to_string(), t + 30),
            ("gw-north".to_string(), t + 10),
            ("gw-north".to_string(), t),
        ]
    );
    assert_eq!(list[2].event.reasons, vec!["revoked".to_string()]);
    assert_eq!(list[2].event.bundle_version, Some(4));
    assert_eq!(station.events(Some(&card), 2).unwrap().events.len(), 2);
    for limit in [0, 1001] {
        assert_eq!(
            refused(station.events(Some(&card), limit)),
            (400, "bad-limit".into())
        );
    }
    assert_eq!(station.events(None, 100).unwrap().events.len(), 5 + 7 + 1);

    // The administrator's view at the console host.
    let v: serde_json::Value = serde_json::from_str(&site.admin_ok(&[
        "events",
        "--gateway",
        "gw-north",
        "--since",
        &(t + 10).to_string(),
        "--json",
    ]))
    .unwrap();
    let ats: Vec<i64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["at"].as_i64().unwrap())
        .collect();
    assert_eq!(ats, vec![t + 30, t + 20, t + 10]);
    let table = site.admin_ok(&["events", "--fingerprint", &card]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5, "{table}");
    assert!(lines[0].starts_with("DECIDED"), "{table}");
    assert!(
        lines[1].contains("gw-south") && lines[1].contains("deny") && lines[1].contains("revoked"),
        "{table}"
    );
    let out = site.admin(&["events", "--fingerprint", "nope"]);
    assert_eq!(out.status.code(), Some(1));
}

fn an_audit_anchor_only_grows_and_belongs_to_the_calling_station(backend: Backend) {
    let site = Site::start(backend);
    let station = first_station(&site).client();
    assert_eq!(station.audit_anchor().unwrap(), None);
    let h = |n: u8| format!("{n:02x}").repeat(32);
    let a = station
        .post_audit_head(&AuditHead {
            rows: 5,
            hash: h(5),
        })
        .unwrap();
    assert_eq!((a.rows, a.hash.as_str()), (5, h(5).as_str()));
    // The same head again is fine; more rows replace it.
    station
        .post_audit_head(&AuditHead {
            rows: 5,
            hash: h(5),
        })
        .unwrap();
    station
        .post_audit_head(&AuditHead {
            rows: 9,
            hash: h(9),
        })
        .unwrap();
    // Fewer rows, or another hash for as many: refused, the anchor stays.
    let r = station.post_audit_head(&AuditHead {
        rows: 7,
        hash: h(7),
    });
    assert_eq!(refused(r), (409, "audit-trail-shorter".into()));
    let r = station.post_audit_head(&AuditHead {
        rows: 9,
        hash: h(1),
    });
    assert_eq!(refused(r), (409, "audit-trail-changed".into()));
    let r = station.post_audit_head(&AuditHead {
        rows: 10,
        hash: "short".into(),
    });
    assert_eq!(refused(r), (400, "bad-audit-head".into()));
    let held = station.audit_anchor().unwrap().unwrap();
    assert_eq!((held.rows, held.hash), (9, h(9)));

    // The station's database restored from an older backup: the administrator forgets
    // the anchor (audited), and the next head anchors afresh.
    let out = site.admin_ok(&["station", "reset-anchor", "station-1"]);
    assert!(out.contains("anchored at 9 rows"), "{out}");
    station
        .post_audit_head(&AuditHead {
            rows: 7,
            hash: h(7),
        })
        .unwrap();
    assert_eq!(station.audit_anchor().unwrap().unwrap().rows, 7);
    assert!(site.admin_ok(&["audit"]).contains("anchor-reset"));
    let out = site.admin(&["station", "reset-anchor", "desk-9"]);
    assert_eq!(out.status.code(), Some(1));

    // Another station has an anchor of its own: named by its certificate.
    let kit = site.add_station("desk-2");
    let desk = cardstation::console::ConsoleClient::new(&cardstation::config::ConsoleConfig {
        url: Some(format!("https://localhost:{}", site.console.port)),
        ca: Some(site.data().join("ca.pem")),
        client_cert: Some(kit.join("station.pem")),
        client_key: Some(kit.join("station.key")),
        bundle_key: None,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(desk.audit_anchor().unwrap(), None);
    desk.post_audit_head(&AuditHead {
        rows: 1,
        hash: h(1),
    })
    .unwrap();
    assert_eq!(station.audit_anchor().unwrap().unwrap().rows, 7);
}

#[test]
fn migrate_carries_gateways_events_and_audit_anchors() {
    if !console_support::pg::available_or_skip() {
        return;
    }
    let site = Site::start(Backend::Sqlite);
    let kit = site.add_gateway("gw-west");
    let gw = gateway_of(&site, &kit);
    let t = now() - 100;
    let events: Vec<_> = (0..3)
        .map(|i| event(i, t + i64::from(i), &"aa".repeat(32), Decision::Grant))
        .collect();
    gw.post_events(&EventBatch {
        events: events.clone(),
    })
    .unwrap();
    let station = first_station(&site).client();
    station
        .post_audit_head(&AuditHead {
            rows: 3,
            hash: "3c".repeat(32),
        })
        .unwrap();
    let port = site.console.port;
    let Site {
        dir, console, kits, ..
    } = site;
    console.stop();

    let cluster = console_support::pg::PgCluster::start();
    cluster.create_database("site");
    let target = TestDb::Postgres {
        cluster: cluster.clone(),
        database: "site".into(),
    };
    let out = Command::new(console_binary())
        .args([
            "migrate",
            "--from",
            &format!("sqlite:{}", dir.path().join("console.db").display()),
            "--to",
            &target.url().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 gateway credential(s), 3 gateway event(s), 1 station audit anchor(s)"),
        "{stdout}"
    );
    assert_eq!(
        cluster.psql("site", "SELECT COUNT(*) FROM gateway_events"),
        "3"
    );
    assert_eq!(
        cluster.psql(
            "site",
            "SELECT name FROM identities WHERE role = 'gateway' AND revoked_at IS NULL"
        ),
        "gw-west"
    );

    // On PostgreSQL: the gateway's credential still works, its events are not taken
    // twice, and the station's anchor is where it was.
    let console = Console::start_on(dir.path(), port, &target);
    let a = gw.post_events(&EventBatch { events }).unwrap();
    assert_eq!((a.counts.accepted, a.counts.duplicates), (0, 3));
    let held = station.audit_anchor().unwrap().unwrap();
    assert_eq!((held.rows, held.hash), (3, "3c".repeat(32)));
    assert_eq!(station.events(None, 10).unwrap().events.len(), 3);
    console.stop();
    drop(kits);
}
