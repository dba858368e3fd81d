//! The window with a real console: the wizard's upload step and the console status;
//! the demo card and its in-process demo console, kept apart from the real one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod console_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cardstation::app::console_worker::{CardSearch, SearchFor};
use cardstation::config::{Config, ConsoleConfig, Paths};
use cardstation::ui::{AppEvent, ReaderMode, Stage, StationApp};
use cardstation_pcsc::watcher::WatchEvent;
use cardstation_pcsc::{CardPresence, ReaderStatus};
use cardstation_protocol::messages::{CertificateRecord, CertificateStatus, UploadRequest};
use cardstation_virtual_card::{CardStorage, VirtualCard, VirtualReader};
use console_support::{free_port, Console};
use eframe::egui;
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;

fn wait_until(
    h: &mut Harness<'static, StationApp>,
    what: &str,
    done: impl Fn(&StationApp) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        h.step();
        if done(h.state()) {
            h.run_steps(2);
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn configured_for(console: &Console) -> Config {
    let mut config = Config::default();
    config.station.id = Some("station-1".into());
    config.station.operator = Some("tester".into());
    config.console = ConsoleConfig {
        url: Some(format!("https://localhost:{}", console.port)),
        ca: Some(console.dir.join("ca.pem")),
        client_cert: Some(console.dir.join("station.pem")),
        client_key: Some(console.dir.join("station.key")),
        bundle_key: Some(console.dir.join("bundle-signing.pub.pem")),
        ..Default::default()
    };
    config
}

fn window(
    dir: &tempfile::TempDir,
    config: Config,
    mode: ReaderMode,
) -> Harness<'static, StationApp> {
    let paths = Paths {
        data_dir: dir.path().join("data"),
        config_file: dir.path().join("unused.toml"),
        config_explicit: false,
    };
    let app = StationApp::new(paths, config, mode);
    Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_ui_state(|ui, app: &mut StationApp| app.frame(ui), app)
}

fn done_fingerprint(a: &StationApp) -> Option<String> {
    a.readers().iter().find_map(|p| match &p.wizard.stage {
        Stage::Done(o) => Some(o.fingerprint.clone()),
        _ => None,
    })
}

#[test]
fn enrolled_card_is_uploaded_and_the_header_shows_the_console() {
    let console_dir = tempfile::tempdir().expect("console dir");
    let console = Console::start(console_dir.path(), free_port());
    let dir = tempfile::tempdir().expect("station dir");
    let mut h = window(&dir, configured_for(&console), ReaderMode::Manual);
    // A reader served in process stands for a hardware reader here.
    let card = Arc::new(VirtualCard::start(CardStorage::Memory).expect("card"));
    h.state_mut()
        .attach_reader(VirtualReader::new(card, "Test Reader 00 00"));

    wait_until(&mut h, "the console is reached", |a| {
        a.console_status().reachable == Some(true)
    });
    h.get_by_label("Console: reachable");
    // A console is configured and a reader attached: no demo card.
    assert!(!h.state().readers().iter().any(|p| p.is_demo));
    wait_until(&mut h, "the card is read", |a| {
        a.readers().iter().any(|p| p.report.is_some())
    });
    h.get_by_label("Start enrollment").click();
    h.run_steps(3);
    h.get_by_label("Upload the certificate to the console when enrolled");
    type_into(&mut h, "Holder label", "gw-17 Plant B");
    h.get_by_label("Enroll").click();
    wait_until(&mut h, "the enrollment finishes", |a| {
        done_fingerprint(a).is_some()
    });
    let fp = done_fingerprint(h.state()).expect("fingerprint");
    wait_until(&mut h, "the upload is acknowledged", |a| {
        a.console_status().delivered.contains(&fp)
    });
    h.get_by_label("Uploaded to the console.");
    h.get_by_label("Outbox: 0");
    assert_eq!(console.records(), 1);
    // The holder label went with it, and is kept in the station's record too.
    let rec = console.client().get(&fp).expect("record");
    assert_eq!(rec.label.as_deref(), Some("gw-17 Plant B"));
    let station = cardstation::app::station::Station::with_config(
        Paths {
            data_dir: dir.path().join("data"),
            config_file: dir.path().join("unused.toml"),
            config_explicit: false,
        },
        Config::default(),
    )
    .expect("station");
    let enrolled = station.store.enrollment_by_fingerprint(&fp).expect("db");
    assert_eq!(
        enrolled.and_then(|e| e.label).as_deref(),
        Some("gw-17 Plant B")
    );
    // The trust bundle came back with the contact and lists the new certificate.
    wait_until(&mut h, "the trust bundle is held", |a| {
        a.console_status()
            .bundle
            .as_ref()
            .is_some_and(|b| b.allowed == 1)
    });
}

#[test]
fn a_configured_console_means_no_demo_card_and_empty_virtual_readers_are_not_hardware() {
    let console_dir = tempfile::tempdir().expect("console dir");
    let console = Console::start(console_dir.path(), free_port());
    let dir = tempfile::tempdir().expect("station dir");
    let mut h = window(&dir, configured_for(&console), ReaderMode::Manual);
    h.run_steps(5);
    // The PC/SC service gone: still no demo card, since a console is configured.
    h.state()
        .events()
        .send(AppEvent::Watch(WatchEvent::Unavailable(
            "pcscd stopped".into(),
        )))
        .expect("send");
    wait_until(&mut h, "the problem is shown", |a| {
        a.pcsc_problem().is_some()
    });
    std::thread::sleep(Duration::from_millis(300));
    h.run_steps(5);
    assert!(
        h.state().readers().is_empty(),
        "no demo card next to a production console"
    );

    // Without a console, the two empty readers of the virtual driver do not count.
    let dir = tempfile::tempdir().expect("station dir");
    let mut config = Config::default();
    config.station.operator = Some("tester".into());
    let mut h = window(&dir, config, ReaderMode::Manual);
    let empty = |name: &str| ReaderStatus {
        name: name.into(),
        card: CardPresence::Absent,
        atr: Vec::new(),
    };
    h.state()
        .events()
        .send(AppEvent::Watch(WatchEvent::Readers(vec![
            empty("Virtual PCD 00 00"),
            empty("Virtual PCD 00 01"),
        ])))
        .expect("send");
    wait_until(&mut h, "the demo card is offered", |a| {
        a.readers().iter().any(|p| p.is_demo)
    });
    assert_eq!(
        h.state().readers().len(),
        1,
        "empty virtual readers are not listed"
    );
    h.get_by_label_contains("DEMO");
    h.get_by_label_contains("Demo console");
}

#[test]
fn the_demo_loop_runs_on_the_demo_console_and_never_reaches_the_configured_one() {
    let console_dir = tempfile::tempdir().expect("console dir");
    let console = Console::start(console_dir.path(), free_port());
    let dir = tempfile::tempdir().expect("station dir");
    // `--demo` at a station whose settings name a production console.
    let mut h = window(&dir, configured_for(&console), ReaderMode::DemoOnly);
    wait_until(&mut h, "the demo card is read", |a| {
        a.readers().iter().any(|p| p.is_demo && p.report.is_some())
            && a.demo_console_status().reachable == Some(true)
    });
    h.get_by_label("Demo console: running in this window");
    h.get_by_label("Start enrollment").click();
    h.run_steps(3);
    h.get_by_label("Upload the certificate to the demo console when enrolled");
    h.get_by_label("Enroll").click();
    wait_until(&mut h, "the enrollment finishes", |a| {
        done_fingerprint(a).is_some()
    });
    let fp = done_fingerprint(h.state()).expect("fingerprint");
    wait_until(&mut h, "the demo console has it", |a| {
        a.demo_console_status().delivered.contains(&fp)
            && a.demo_console_status()
                .bundle
                .as_ref()
                .is_some_and(|b| b.allowed == 1)
    });
    h.get_by_label("Uploaded to the demo console.");
    h.get_by_label_contains("Demo card: recorded only in this window's throw-away demo database");

    // PASS at the spot check, then revoke in Card care, then FAIL.
    h.get_by_label("Spot check").click();
    h.run_steps(3);
    h.get_by_label("Check card").click();
    wait_until(&mut h, "the check is done", |a| !a.checks.is_empty());
    h.get_by_label("PASS — a gateway accepts this card");

    h.get_by_label("Card care").click();
    h.run_steps(3);
    h.get_by_label("Gateways must refuse this card from now on")
        .click();
    h.run_steps(2);
    h.get_by_label("Revoke certificate").click();
    wait_until(&mut h, "the revocation is in the bundle", |a| {
        a.demo_console_status()
            .bundle
            .as_ref()
            .is_some_and(|b| b.revoked == 1)
    });
    h.get_by_label_contains("Revoked on the console");
    h.get_by_label("Spot check").click();
    h.run_steps(3);
    h.get_by_label("Check card").click();
    wait_until(&mut h, "the second check is done", |a| a.checks.len() == 2);
    h.get_by_label("FAIL — a gateway refuses this card");

    // Nothing of it reached the console in the settings, nor the station's records.
    assert_eq!(console.records(), 0);
    let station = cardstation::app::station::Station::with_config(
        Paths {
            data_dir: dir.path().join("data"),
            config_file: dir.path().join("unused.toml"),
            config_explicit: false,
        },
        Config::default(),
    )
    .expect("station");
    assert!(station.store.enrollments(10).expect("list").is_empty());
    assert!(station.store.outbox_items().expect("outbox").is_empty());
}

/// A console that started a new trust-bundle chain (after a restore): the window shows
/// the offer, keeps the held bundle, and takes the new chain only after the operator
/// accepts it and confirms.
#[test]
fn a_new_bundle_chain_is_taken_only_after_the_operator_confirms_it() {
    let console_dir = tempfile::tempdir().expect("console dir");
    let console = Console::start(console_dir.path(), free_port());
    let dir = tempfile::tempdir().expect("station dir");
    let mut h = window(&dir, configured_for(&console), ReaderMode::Manual);
    wait_until(&mut h, "a trust bundle is held", |a| {
        a.console_status().bundle.is_some()
    });
    let held = h.state().console_status().bundle.clone().expect("bundle");

    let chain = console_support::reset_bundle_chain(console_dir.path(), &[]);
    let short = chain[..8].to_string();

    h.get_by_label("Outbox: 0").click();
    h.run_steps(2);
    h.get_by_label("Sync now").click();
    wait_until(&mut h, "the new chain is offered", |a| {
        a.console_status().reset_offered.is_some()
    });
    // Offered, not taken: spot checks still use the chain held.
    assert_eq!(
        h.state()
            .console_status()
            .bundle
            .as_ref()
            .map(|b| b.chain.clone()),
        Some(held.chain.clone())
    );
    h.get_by_label(&format!("Accept chain {short}…")).click();
    h.run_steps(2);
    h.get_by_label(&format!("Yes, accept {short}")).click();
    wait_until(&mut h, "the new chain is held", |a| {
        a.console_status()
            .bundle
            .as_ref()
            .is_some_and(|b| b.chain == chain)
    });
    assert!(h.state().console_status().reset_offered.is_none());
}

/// A card enrolled elsewhere: its certificate on the console, unknown to this station.
fn on_the_console(console: &Console, name: &str, label: &str, serial: u32) -> CertificateRecord {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let cert = console_support::device_params(name)
        .self_signed(&key)
        .expect("certificate");
    console
        .client()
        .upload(&UploadRequest {
            certificate: cert.pem(),
            card_serial: Some(serial),
            chuid_guid: None,
            slot: Some("9e".into()),
            label: Some(label.into()),
            operator: "someone".into(),
            station_id: "station-1".into(),
            attestation: None,
        })
        .expect("upload")
}

fn console_search(a: &StationApp, purpose: SearchFor) -> Option<&CardSearch> {
    a.console_status().search(purpose)
}

/// Type `text` into the field labelled `field`.
fn type_into(h: &mut Harness<'static, StationApp>, field: &str, text: &str) {
    h.get_by_label(field).focus();
    h.run_steps(2);
    h.get_by_label(field).type_text(text);
    h.run_steps(2);
}

/// The cards to renew: active, not renewed, ending within 30 days, with their end.
#[test]
fn the_console_tab_lists_the_cards_to_renew() {
    let console_dir = tempfile::tempdir().expect("console dir");
    let console = Console::start(console_dir.path(), free_port());
    let soon = {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = console_support::device_params("gw-31");
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(10);
        let cert = params.self_signed(&key).expect("certificate");
        console
            .client()
            .upload(&UploadRequest {
                certificate: cert.pem(),
                card_serial: Some(31),
                chuid_guid: None,
                slot: Some("9e".into()),
                label: Some("gw-31 Plant B".into()),
                operator: "someone".into(),
                station_id: "station-1".into(),
                attestation: None,
            })
            .expect("upload")
    };
    on_the_console(&console, "gw-32", "gw-32 Plant B", 32);
    let dir = tempfile::tempdir().expect("station dir");
    let mut h = window(&dir, configured_for(&console), ReaderMode::Manual);
    wait_until(&mut h, "the console is reached", |a| {
        a.console_status().reachable == Some(true)
    });
    h.get_by_label("Console").click();
    wait_until(&mut h, "the newest cards are listed", |a| {
        console_search(a, SearchFor::Console).is_some_and(|s| s.records.len() == 2)
    });
    // The Status list (not the grid's "Status" heading).
    h.get_all_by_label("Status")
        .find(|n| n.accesskit_node().role() != egui::accesskit::Role::Label)
        .expect("the Status list")
        .click();
    h.run_steps(3);
    h.get_by_label("to renew (ends within 30 days)").click();
    wait_until(&mut h, "the cards to renew are listed", |a| {
        console_search(a, SearchFor::Console)
            .is_some_and(|s| s.query.expiring_days == Some(30) && s.records.len() == 1)
    });
    let listed = console_search(h.state(), SearchFor::Console).expect("search");
    assert_eq!(listed.records[0].sha256, soon.sha256);
    h.get_by_label("gw-31 Plant B — CN=gw-31");
    assert!(h.query_by_label_contains("gw-32").is_none());
    h.get_by_label_contains("Card care, \"Renew this card\"");
    h.get_by_label(&cardstation_pki::certificate::format_unix(soon.not_after));

    // The active cards whose key no card proved it made: both, here.
    h.get_all_by_label("Status")
        .find(|n| n.accesskit_node().role() != egui::accesskit::Role::Label)
        .expect("the Status list")
        .click();
    h.run_steps(3);
    h.get_by_label("active, key not attested").click();
    wait_until(&mut h, "the unattested cards are listed", |a| {
        console_search(a, SearchFor::Console).is_some_and(|s| {
            s.query.attested == Some(false)
                && s.query.status == Some(CertificateStatus::Active)
                && s.records.len() == 2
        })
    });
}

#[test]
fn the_console_tab_finds_a_card_shows_it_and_revokes_it_after_confirmation() {
    let console_dir = tempfile::tempdir().expect("console dir");
    let console = Console::start(console_dir.path(), free_port());
    let smith = on_the_console(&console, "badge-1", "J. Smith", 11);
    on_the_console(&console, "gw-17", "gw-17 Plant B", 17);
    on_the_console(&console, "gw-18", "gw-18 Plant B", 18);
    let dir = tempfile::tempdir().expect("station dir");
    let mut h = window(&dir, configured_for(&console), ReaderMode::Manual);
    wait_until(&mut h, "the console is reached", |a| {
        a.console_status().reachable == Some(true)
    });

    // The tab opens on the newest cards, from every station.
    h.get_by_label("Console").click();
    wait_until(&mut h, "the newest cards are listed", |a| {
        console_search(a, SearchFor::Console).is_some_and(|s| s.records.len() == 3)
    });
    h.get_by_label_contains("3 cards (as of");
    type_into(&mut h, "Find cards", "smith");
    h.get_by_label("Search").click();
    wait_until(&mut h, "the search is answered", |a| {
        console_search(a, SearchFor::Console).is_some_and(|s| s.records.len() == 1)
    });
    h.get_by_label_contains("1 card (as of");
    assert!(h.query_by_label_contains("gw-17").is_none());

    // Its details, then Revoke with a reason, confirmed.
    h.get_by_label("J. Smith — CN=badge-1").click();
    h.run_steps(3);
    h.get_by_label("Holder label");
    h.get_by_label(&smith.sha256);
    // Uploaded without a card's proof: the details say the key is not attested.
    h.get_by_label("not attested");
    h.get_by_label("Copy fingerprint");
    h.get_by_label("Revoke…").click();
    h.run_steps(3);
    h.get_by_label_contains("Gateways refuse this card once they hold the next trust bundle");
    assert_eq!(
        console.client().get(&smith.sha256).expect("get").status,
        CertificateStatus::Active,
        "nothing is revoked before the confirmation"
    );
    h.get_by_label("Confirm revocation").click();
    wait_until(&mut h, "the result shows the revocation", |a| {
        console_search(a, SearchFor::Console).is_some_and(|s| {
            s.records
                .first()
                .is_some_and(|r| r.status == CertificateStatus::Revoked)
        })
    });
    let rec = console.client().get(&smith.sha256).expect("get");
    assert_eq!(rec.status, CertificateStatus::Revoked);
    assert_eq!(rec.revocation_reason.as_deref(), Some("lost"));
    assert_eq!(rec.revoked_by.as_deref(), Some("station:station-1"));
    assert!(h.get_all_by_label("revoked (lost)").count() >= 1);

    // The console goes away: the last results stay, marked offline with their time.
    console.stop();
    h.get_by_label("Search").click();
    wait_until(&mut h, "the search fails", |a| {
        console_search(a, SearchFor::Console).is_some_and(|s| s.error.is_some())
    });
    h.get_by_label_contains("offline, as of");
    h.get_by_label("J. Smith — CN=badge-1");
}

#[test]
fn replace_in_card_care_starts_from_the_holders_name() {
    let console_dir = tempfile::tempdir().expect("console dir");
    let console = Console::start(console_dir.path(), free_port());
    let old = on_the_console(&console, "badge-7", "J. Smith", 7);
    on_the_console(&console, "gw-17", "gw-17 Plant B", 17);
    let dir = tempfile::tempdir().expect("station dir");
    let mut h = window(&dir, configured_for(&console), ReaderMode::Manual);
    // The new, blank card for the holder who lost the old one.
    let card = Arc::new(VirtualCard::start(CardStorage::Memory).expect("card"));
    h.state_mut()
        .attach_reader(VirtualReader::new(card, "Test Reader 00 00"));
    wait_until(&mut h, "the card is read and the console reached", |a| {
        a.readers().iter().any(|p| p.report.is_some()) && a.console_status().reachable == Some(true)
    });

    h.get_by_label("Card care").click();
    h.run_steps(3);
    type_into(&mut h, "Find the old card", "smith");
    h.get_by_label("Search").click();
    wait_until(&mut h, "the old card is found", |a| {
        console_search(a, SearchFor::Replace).is_some_and(|s| s.records.len() == 1)
    });
    h.get_by_label_contains("J. Smith — CN=badge-7 · serial 7 · station station-1")
        .click();
    wait_until(&mut h, "the old card is looked up", |a| {
        a.readers().iter().any(|p| p.care.replace_old == old.sha256)
    });
    h.run_steps(3);
    h.get_by_label_contains("Old card: \"J. Smith — CN=badge-7\", card serial 7");
    h.get_by_label("Replace card…").click();
    h.run_steps(3);
    h.get_by_label("Confirm replacement").click();
    wait_until(&mut h, "the card is replaced", |a| {
        a.readers().iter().any(|p| p.care.replaced.is_some())
    });
    let new = h
        .state()
        .readers()
        .iter()
        .find_map(|p| p.care.replaced.as_ref().map(|r| r.new_fingerprint.clone()))
        .expect("new fingerprint");
    wait_until(&mut h, "both reach the console", |a| {
        a.console_status().outbox.is_empty() && a.console_status().delivered.contains(&new)
    });
    let client = console.client();
    let old_now = client.get(&old.sha256).expect("old");
    assert_eq!(old_now.status, CertificateStatus::Revoked);
    let new_rec = client.get(&new).expect("new");
    assert_eq!(new_rec.subject, old.subject, "the same holder");
    assert_eq!(
        new_rec.label.as_deref(),
        Some("J. Smith"),
        "the label carried over"
    );
    assert_eq!(new_rec.status, CertificateStatus::Active);
}

#[test]
fn at_a_site_that_requires_attested_keys_a_card_that_cannot_attest_is_refused_before_it_is_touched()
{
    let console_dir = tempfile::tempdir().expect("console dir");
    let roots = console_dir.path().join("attestation-roots");
    std::fs::create_dir_all(&roots).expect("roots dir");
    let root = cardstation_virtual_card::attestation::TestRoot::fixed().expect("test root");
    std::fs::write(roots.join("virtual-cards.pem"), root.certificate_pem()).expect("root");
    std::fs::write(
        console_dir.path().join("console.toml"),
        "[attestation]\nrequire_attestation = true\n",
    )
    .expect("console.toml");
    let console = Console::start(console_dir.path(), free_port());
    let dir = tempfile::tempdir().expect("station dir");
    let mut h = window(&dir, configured_for(&console), ReaderMode::Manual);
    // A PIV card without attestation, as a Nitrokey.
    let options = cardstation_virtual_card::CardOptions { attestation: false };
    let card = Arc::new(VirtualCard::start_with(CardStorage::Memory, options).expect("card"));
    h.state_mut()
        .attach_reader(VirtualReader::new(card, "Test Reader 00 00"));
    wait_until(&mut h, "the card is read and judged", |a| {
        a.readers().iter().any(|p| p.refusal.is_some())
    });
    // Said on the first screen, and nothing to start: the card is never changed.
    h.get_by_label_contains("This site's console accepts only keys the card proves it generated");
    assert!(h.query_by_label("Start enrollment").is_none());
    let report = h.state().readers()[0].report.clone().expect("report");
    assert_eq!(report.attests, Some(false));
    assert_eq!(report.management_key.is_default, Some(true));
    assert_eq!(console.records(), 0);
}
