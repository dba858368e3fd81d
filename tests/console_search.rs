//! Finding cards on the console, over real mutual TLS on both storage backends:
//! by label, subject, card serial, CHUID GUID, fingerprint prefix and station,
//! newest first, page by page; what a station and the administrator may ask, and
//! what a search refuses. The station's `cards` and `replace --old SEARCH`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod console_support;

use std::collections::HashSet;

use cardstation::console::{ConsoleClient, ConsoleError};
use cardstation_protocol::messages::{
    CertificateRecord, CertificateStatus, SearchPage, SearchQuery, UploadRequest,
};
use console_support::{device_params, free_port, Backend, Console, Site, Station};

on_both_backends!(
    cards_are_found_by_every_kind_of_word_and_paged_newest_first,
    a_search_is_bounded_and_its_text_is_never_sql,
    the_administrator_lists_shows_and_revokes_on_the_console_host,
);

/// A device certificate as a card would carry it, uploaded as station-1 with `label`.
fn upload(
    client: &ConsoleClient,
    name: &str,
    label: Option<&str>,
    serial: u32,
) -> CertificateRecord {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let cert = device_params(name).self_signed(&key).expect("certificate");
    client
        .upload(&UploadRequest {
            certificate: cert.pem(),
            card_serial: Some(serial),
            chuid_guid: Some(format!("{serial:08x}{}", "ab".repeat(12))),
            slot: Some("9e".into()),
            label: label.map(String::from),
            operator: "op".into(),
            station_id: "station-1".into(),
            attestation: None,
        })
        .expect("upload")
}

fn search(client: &ConsoleClient, text: &str) -> Vec<CertificateRecord> {
    client
        .search(&SearchQuery {
            search: Some(text.into()),
            limit: Some(200),
            ..Default::default()
        })
        .expect("search")
        .records
}

fn refusal<T: std::fmt::Debug>(r: Result<T, ConsoleError>) -> (u16, String) {
    match r {
        Err(ConsoleError::Rejected { status, code, .. }) => (status, code),
        Err(ConsoleError::Settings(m)) => (0, m),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn cards_are_found_by_every_kind_of_word_and_paged_newest_first(backend: Backend) {
    let site = Site::start(backend);
    let client = site.console.client();
    // More than two pages of devices, then one person's card.
    let mut all = Vec::new();
    for i in 0..120u32 {
        let plant = if i % 2 == 0 { "A" } else { "B" };
        let label = format!("gw-{i} Plant {plant}");
        all.push(upload(&client, &format!("gw-{i}"), Some(&label), 5000 + i));
    }
    let smith = upload(&client, "badge-7", Some("J. Smith"), 4711);
    all.push(smith.clone());

    // Each kind of word finds the card it belongs to.
    let one = |text: &str| {
        let found = search(&client, text);
        assert_eq!(found.len(), 1, "{text:?} → {found:?}");
        found[0].sha256.clone()
    };
    assert_eq!(one("j. smith"), smith.sha256, "label");
    assert_eq!(one("SMITH"), smith.sha256, "case-insensitive");
    assert_eq!(one("badge-7"), smith.sha256, "subject");
    assert_eq!(one("4711"), smith.sha256, "card serial");
    assert_eq!(
        one(&smith.chuid_guid.clone().unwrap()[..8]),
        smith.sha256,
        "GUID prefix"
    );
    assert_eq!(one(&smith.sha256[..12]), smith.sha256, "fingerprint prefix");
    assert_eq!(
        one("gw-17 plant"),
        all[17].sha256,
        "several words, each a prefix"
    );
    assert_eq!(search(&client, "plant b").len(), 60);
    assert_eq!(
        search(&client, "station-1").len(),
        121,
        "the station's name"
    );
    assert!(search(&client, "nobody").is_empty());
    // Attribute names are not words: "cn" finds nothing.
    assert!(search(&client, "cn").is_empty());
    // The label comes back with the record, as uploaded.
    assert_eq!(smith.label.as_deref(), Some("J. Smith"));

    // Pages: newest first, each record once, the last page without a cursor.
    let mut seen = HashSet::new();
    let mut order = Vec::new();
    let mut q = SearchQuery {
        limit: Some(50),
        ..Default::default()
    };
    let mut pages = 0;
    loop {
        let page: SearchPage = client.search(&q).expect("page");
        pages += 1;
        assert!(page.records.len() <= 50);
        for r in &page.records {
            assert!(seen.insert(r.sha256.clone()), "{} twice", r.sha256);
            order.push((r.uploaded_at, r.sha256.clone()));
        }
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!((pages, seen.len()), (3, 121));
    let mut sorted = order.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(order, sorted, "newest first, ties by fingerprint");
    assert_eq!(
        order[0].0,
        order.iter().map(|o| o.0).max().unwrap(),
        "the last uploads come first"
    );

    // Status and station filters; a revocation says who made it.
    for r in &all[..3] {
        client.revoke(&r.sha256, "lost").expect("revoke");
    }
    let revoked = client
        .search(&SearchQuery {
            status: Some(CertificateStatus::Revoked),
            ..Default::default()
        })
        .expect("revoked");
    assert_eq!(revoked.records.len(), 3);
    assert!(revoked
        .records
        .iter()
        .all(|r| r.revoked_by.as_deref() == Some("station:station-1")
            && r.revocation_reason.as_deref() == Some("lost")));
    let active_plant_a = client
        .search(&SearchQuery {
            search: Some("plant a".into()),
            status: Some(CertificateStatus::Active),
            limit: Some(200),
            ..Default::default()
        })
        .expect("active");
    assert_eq!(
        active_plant_a.records.len(),
        58,
        "gw-0 and gw-2 are revoked"
    );
    let elsewhere = client
        .search(&SearchQuery {
            station: Some("desk-9".into()),
            ..Default::default()
        })
        .expect("station filter");
    assert!(elsewhere.records.is_empty());
    // None of these keys was proven born on a card: the attestation filter splits them so.
    let attested = |a: bool| {
        client
            .search(&SearchQuery {
                attested: Some(a),
                limit: Some(200),
                ..Default::default()
            })
            .expect("attestation filter")
            .records
            .len()
    };
    assert_eq!((attested(true), attested(false)), (0, 121));
}

fn a_search_is_bounded_and_its_text_is_never_sql(backend: Backend) {
    let site = Site::start(backend);
    let client = site.console.client();
    upload(&client, "gw-1", Some("gw-1 Plant A"), 1);
    let bad = |q: SearchQuery| refusal(client.search(&q));
    assert_eq!(
        bad(SearchQuery {
            limit: Some(201),
            ..Default::default()
        }),
        (400, "bad-limit".into())
    );
    assert_eq!(
        bad(SearchQuery {
            limit: Some(0),
            ..Default::default()
        }),
        (400, "bad-limit".into())
    );
    assert_eq!(
        bad(SearchQuery {
            cursor: Some("1.'; DROP TABLE certificates; --".into()),
            ..Default::default()
        }),
        (400, "bad-cursor".into())
    );
    assert_eq!(
        bad(SearchQuery {
            search: Some("a b c d e f g h i".into()),
            ..Default::default()
        }),
        (400, "bad-search".into())
    );
    assert_eq!(
        bad(SearchQuery {
            station: Some("x' OR '1'='1".into()),
            ..Default::default()
        }),
        (400, "bad-station".into())
    );
    // Quotes and SQL in the words are just words: nothing matches, nothing breaks.
    for text in ["x' OR '1'='1", "'; DROP TABLE certificates; --"] {
        assert!(search(&client, text).is_empty(), "{text:?}");
    }
    // LIKE's wildcards mean nothing either: no words, so every card is listed.
    for text in ["%", "_", "\\", "*"] {
        assert_eq!(search(&client, text).len(), 1, "{text:?}");
    }
    assert_eq!(site.console.records(), 1);
    assert_eq!(search(&client, "plant").len(), 1);

    // Parameters the console does not know are refused, not ignored (a typo must not
    // list every card).
    let raw = console_support::Station::new(site.console.port, site.data());
    let out = raw.run(&["cards", "--search", "plant", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A label is checked on upload.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let cert = device_params("gw-2")
        .self_signed(&key)
        .expect("certificate");
    let r = client.upload(&UploadRequest {
        certificate: cert.pem(),
        card_serial: None,
        chuid_guid: None,
        slot: None,
        label: Some("line\nbreak".into()),
        operator: "op".into(),
        station_id: "station-1".into(),
        attestation: None,
    });
    assert_eq!(refusal(r), (400, "bad-label".into()));

    // A revoked station learns nothing more.
    let kit = site.data().parent().unwrap().join(format!(
        "{}-kit",
        site.data().file_name().unwrap().to_string_lossy()
    ));
    site.admin_ok(&["station", "add", "desk-2", "--out", kit.to_str().unwrap()]);
    let desk = Station::from_kit(&kit);
    let desk_config = std::fs::read_to_string(desk.dir.path().join("cardstation.toml")).unwrap();
    std::fs::write(
        desk.dir.path().join("cardstation.toml"),
        desk_config.replace(
            "https://localhost:8443",
            &format!("https://localhost:{}", site.console.port),
        ),
    )
    .unwrap();
    assert_eq!(search(&desk.client(), "plant").len(), 1);
    site.admin_ok(&["station", "revoke", "desk-2"]);
    let (status, message) = refusal(desk.client().search(&SearchQuery::default()));
    assert_eq!(status, 0);
    assert!(message.contains("revoked"), "{message}");
    let _ = std::fs::remove_dir_all(kit);
}

fn the_administrator_lists_shows_and_revokes_on_the_console_host(backend: Backend) {
    let site = Site::start(backend);
    let client = site.console.client();
    let smith = upload(&client, "badge-1", Some("J. Smith"), 11);
    for i in 0..5 {
        upload(
            &client,
            &format!("gw-{i}"),
            Some(&format!("gw-{i} Plant B")),
            20 + i,
        );
    }
    let listed = site.admin_ok(&["cards", "list", "--search", "smith"]);
    assert!(
        listed.contains(&smith.sha256) && listed.contains("J. Smith") && listed.contains("active"),
        "{listed}"
    );
    assert_eq!(listed.lines().count(), 1, "{listed}");
    let page = site.admin_ok(&["cards", "list", "--limit", "2"]);
    assert!(page.contains("More: --cursor"), "{page}");
    let every: SearchPage =
        serde_json::from_str(&site.admin_ok(&["cards", "list", "--limit", "2", "--all", "--json"]))
            .expect("json");
    assert_eq!(every.records.len(), 6);

    let shown = site.admin_ok(&["cards", "show", &smith.sha256.to_uppercase()]);
    assert!(
        shown.contains("J. Smith") && shown.contains("station station-1"),
        "{shown}"
    );
    let said = site.admin_ok(&["cards", "revoke", &smith.sha256, "--reason", "stolen"]);
    assert!(said.contains("revoked (stolen)"), "{said}");
    let shown = site.admin_ok(&["cards", "show", &smith.sha256]);
    assert!(
        shown.contains("REVOKED (stolen)") && shown.contains("by admin"),
        "{shown}"
    );
    let revoked = site.admin_ok(&["cards", "list", "--status", "revoked"]);
    assert!(revoked.contains(&smith.sha256), "{revoked}");
    // And the station sees the same on the console.
    let rec = client.get(&smith.sha256).expect("get");
    assert_eq!(rec.revoked_by.as_deref(), Some("administrator"));
    site.admin_ok(&["cards", "reinstate", &smith.sha256]);
    assert_eq!(
        client.get(&smith.sha256).expect("get").status,
        CertificateStatus::Active
    );
    let out = site.admin(&["cards", "show", &"0".repeat(64)]);
    assert_eq!(out.status.code(), Some(1));
}

/// The station's own commands against a real console (the default backend).
#[test]
fn station_cards_and_replace_by_search_name_exactly_one_card_or_stop() {
    let dir = tempfile::tempdir().expect("console dir");
    let console = Console::start(dir.path(), free_port());
    let client = console.client();
    let john = upload(&client, "badge-1", Some("John Smith"), 1);
    let jane = upload(&client, "badge-2", Some("Jane Smith"), 2);
    let station = Station::new(console.port, dir.path());

    let v = station.json(&["cards", "--search", "smith", "--json"]);
    assert_eq!(v["records"].as_array().unwrap().len(), 2, "{v}");
    let out = station.run(&["cards", "--search", "john"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains(&john.sha256) && text.contains("John Smith"),
        "{text}"
    );
    assert!(!text.contains(&jane.sha256), "{text}");

    // Several matches: listed, and nothing is done (no card is even looked for).
    let out = station.run(&[
        "replace", "--reader", "nowhere", "--old", "smith", "--reason", "lost",
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout.contains(&john.sha256) && stdout.contains(&jane.sha256),
        "{stdout}"
    );
    assert!(stderr.contains("2 active cards match"), "{stderr}");
    // None: said so.
    let out = station.run(&[
        "replace", "--reader", "nowhere", "--old", "nobody", "--reason", "lost", "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["error"]["code"], "no-matching-card", "{v}");
    // A revoked card is not a candidate: "smith" is now Jane's alone, and the
    // replacement goes on to the reader (there is none here).
    client.revoke(&john.sha256, "lost").expect("revoke");
    let out = station.run(&[
        "replace", "--reader", "nowhere", "--old", "smith", "--reason", "lost",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the card to replace: Jane Smith"),
        "{stderr}"
    );
    assert_eq!(station.outbox_len(), 0, "nothing was queued without a card");
}
