//! The window with a real console over mutual TLS: a card's details show what
//! gateways reported about it, fetched off the UI thread, and the last known events,
//! marked as such, once the console is away.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod console_support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cardstation::config::{Config, ConsoleConfig, Paths};
use cardstation::ui::{ReaderMode, Stage, StationApp};
use cardstation_protocol::messages::{Decision, EventBatch, GatewayEvent};
use cardstation_virtual_card::{CardStorage, VirtualCard, VirtualReader};
use console_support::{console_binary, free_port, Console};
use eframe::egui;
use egui_kittest::kittest::Queryable;
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

fn done_fingerprint(a: &StationApp) -> Option<String> {
    a.readers().iter().find_map(|p| match &p.wizard.stage {
        Stage::Done(o) => Some(o.fingerprint.clone()),
        _ => None,
    })
}

/// A gateway of `console` with the credential `gateway add NAME` issues.
fn gateway(console: &Console, name: &str) -> cardstation_gateway::client::ConsoleClient {
    let kit = console.dir.join(format!("kit-{name}"));
    let out = Command::new(console_binary())
        .args(["gateway", "add", name, "--out"])
        .arg(&kit)
        .arg("--data")
        .arg(&console.dir)
        .output()
        .expect("cardstation-console gateway add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cardstation_gateway::client::ConsoleClient::new(&cardstation_gateway::config::ConsoleConfig {
        url: Some(format!("https://localhost:{}", console.port)),
        ca: Some(console.dir.join("ca.pem")),
        client_cert: Some(kit.join("gateway.pem")),
        client_key: Some(kit.join("gateway.key")),
        bundle_key: None,
        bundle_url: None,
        connect_timeout_secs: 2,
        request_timeout_secs: 5,
        ..Default::default()
    })
    .expect("gateway client")
}

#[test]
fn card_details_show_gateway_events_and_the_last_known_ones_offline() {
    let console_dir = tempfile::tempdir().expect("console dir");
    let console = Console::start(console_dir.path(), free_port());
    let dir = tempfile::tempdir().expect("station dir");
    let mut config = Config::default();
    config.station.id = Some("station-1".into());
    config.station.operator = Some("tester".into());
    config.console = ConsoleConfig {
        url: Some(format!("https://localhost:{}", console.port)),
        ca: Some(console.dir.join("ca.pem")),
        client_cert: Some(console.dir.join("station.pem")),
        client_key: Some(console.dir.join("station.key")),
        bundle_key: Some(console.dir.join("bundle-signing.pub.pem")),
        connect_timeout_secs: 2,
        request_timeout_secs: 3,
        ..Default::default()
    };
    let paths = Paths {
        data_dir: dir.path().join("data"),
        config_file: dir.path().join("unused.toml"),
        config_explicit: false,
    };
    let app = StationApp::new(paths, config, ReaderMode::Manual);
    let mut h = Harness::builder()
        .with_size(egui::vec2(1280.0, 2400.0))
        .build_ui_state(|ui, app: &mut StationApp| app.frame(ui), app);
    let card = Arc::new(VirtualCard::start(CardStorage::Memory).expect("card"));
    h.state_mut()
        .attach_reader(VirtualReader::new(card, "Test Reader 00 00"));
    wait_until(&mut h, "the card is read", |a| {
        a.readers().iter().any(|p| p.report.is_some()) && a.console_status().reachable == Some(true)
    });
    h.get_by_label("Start enrollment").click();
    h.run_steps(3);
    h.get_by_label("Enroll").click();
    wait_until(&mut h, "the enrollment finishes", |a| {
        done_fingerprint(a).is_some()
    });
    let fp = done_fingerprint(h.state()).expect("fingerprint");

    // The details show the new certificate and ask the console about it at once.
    wait_until(&mut h, "the card's events are fetched", |a| {
        a.console_status()
            .card_events
            .get(&fp)
            .is_some_and(|c| c.fetched_at.is_some())
    });
    h.get_by_label("No gateway has reported this card.");

    // Two gateways report decisions about it.
    let t = time::OffsetDateTime::now_utc().unix_timestamp();
    let event = |n: u128, at: i64, decision: Decision, reasons: &[&str]| GatewayEvent {
        id: format!("{:032x}", 0x5eed_0000_u128 + n),
        at,
        reader: "Door reader 00 00".into(),
        decision,
        fingerprint: Some(fp.clone()),
        subject: None,
        reasons: reasons.iter().map(|r| r.to_string()).collect(),
        bundle_version: Some(2),
    };
    gateway(&console, "gw-door")
        .post_events(&EventBatch {
            events: vec![event(1, t - 60, Decision::Grant, &[])],
        })
        .expect("events");
    gateway(&console, "gw-gate")
        .post_events(&EventBatch {
            events: vec![event(2, t - 30, Decision::Deny, &["revoked"])],
        })
        .expect("events");

    h.get_by_label("Refresh gateway events").click();
    wait_until(&mut h, "the events arrive", |a| {
        a.console_status()
            .card_events
            .get(&fp)
            .is_some_and(|c| c.events.len() == 2)
    });
    h.get_by_label("gw-door");
    h.get_by_label("gw-gate");
    h.get_by_label("deny");
    h.get_by_label("revoked");
    let shown = &h.state().console_status().card_events[&fp].events;
    assert_eq!(shown[0].gateway, "gw-gate", "newest first");

    // The console away: the last known events stay, marked as such.
    console.stop();
    h.get_by_label("Refresh gateway events").click();
    wait_until(&mut h, "the failed fetch is shown", |a| {
        a.console_status()
            .card_events
            .get(&fp)
            .is_some_and(|c| c.stale.is_some())
    });
    h.get_by_label_contains("Offline — last known events");
    h.get_by_label("gw-door");
    h.get_by_label("gw-gate");
}
