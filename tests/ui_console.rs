//! The window with a real console: the wizard's upload step and the console status.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod console_support;

use std::time::{Duration, Instant};

use cardstation::config::{Config, ConsoleConfig, Paths};
use cardstation::ui::{ReaderMode, Stage, StationApp};
use console_support::{free_port, Console};
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

#[test]
fn enrolled_card_is_uploaded_and_the_header_shows_the_console() {
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
        ..Default::default()
    };
    let paths = Paths {
        data_dir: dir.path().join("data"),
        config_file: dir.path().join("unused.toml"),
        config_explicit: false,
    };
    let app = StationApp::new(paths, config, ReaderMode::DemoOnly);
    let mut h = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_ui_state(|ui, app: &mut StationApp| app.frame(ui), app);

    wait_until(&mut h, "the console is reached", |a| {
        a.console_status.reachable == Some(true)
    });
    h.get_by_label("Console: reachable");
    wait_until(&mut h, "the demo card is read", |a| {
        a.readers.iter().any(|p| p.report.is_some())
    });
    h.get_by_label("Start enrollment").click();
    h.run_steps(3);
    h.get_by_label("Upload the certificate to the console when enrolled");
    h.get_by_label("Enroll").click();
    wait_until(&mut h, "the enrollment finishes", |a| {
        a.readers
            .iter()
            .any(|p| matches!(p.wizard.stage, Stage::Done(_)))
    });
    let fp = h
        .state()
        .readers
        .iter()
        .find_map(|p| match &p.wizard.stage {
            Stage::Done(o) => Some(o.fingerprint.clone()),
            _ => None,
        })
        .expect("fingerprint");
    wait_until(&mut h, "the upload is acknowledged", |a| {
        a.console_status.delivered.contains(&fp)
    });
    h.get_by_label("Uploaded to the console.");
    h.get_by_label("Outbox: 0");
    assert_eq!(console.records(), 1);
    // The trust bundle came back with the contact and lists the new certificate.
    wait_until(&mut h, "the trust bundle is held", |a| {
        a.console_status
            .bundle
            .as_ref()
            .is_some_and(|b| b.allowed == 1)
    });
}
