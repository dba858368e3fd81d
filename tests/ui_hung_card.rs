//! The window with a card that stops answering in the middle of an enrollment, through
//! the real pcscd: Cancel says "Cancelling…", and when the card does not reach its next
//! step the job is abandoned, the wizard says where it stopped and what to do, and the
//! reader works again once the card answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod pcscd;

use std::time::{Duration, Instant};

use cardstation::config::{Config, Paths};
use cardstation::ui::{ReaderMode, Stage, StationApp};
use eframe::egui;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use pcscd::{exclusive, pcscd_or_skip, CardProcess, PORT_0, READER_0};

fn wait_until(
    h: &mut Harness<'static, StationApp>,
    what: &str,
    secs: u64,
    done: impl Fn(&StationApp) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        h.run_steps(2);
        if done(h.state()) {
            h.run_steps(2);
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn stage(a: &StationApp) -> Option<&Stage> {
    a.readers()
        .iter()
        .find(|p| p.name == READER_0)
        .map(|p| &p.wizard.stage)
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: signalling a child process this test started.
    unsafe {
        libc::kill(i32::try_from(pid).expect("pid"), sig);
    }
}

#[test]
fn a_card_that_stops_answering_is_cancelled_and_the_reader_recovers() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let card = CardProcess::start(PORT_0, None);
    let dir = tempfile::tempdir().expect("station dir");
    let mut config = Config::default();
    config.station.id = Some("ui-hung".into());
    config.station.operator = Some("tester".into());
    let paths = Paths {
        data_dir: dir.path().join("data"),
        config_file: dir.path().join("unused.toml"),
        config_explicit: false,
    };
    let app = StationApp::new(paths, config, ReaderMode::Pcsc);
    let mut h = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_ui_state(|ui, app: &mut StationApp| app.frame(ui), app);
    wait_until(&mut h, "the virtual card is read", 30, |a| {
        a.readers()
            .iter()
            .any(|p| p.name == READER_0 && p.report.is_some())
    });
    // A real reader with a card: no demo card next to it.
    assert!(!h.state().readers().iter().any(|p| p.is_demo));
    h.get_by_label("Start enrollment").click();
    h.run_steps(3);
    h.get_by_label("Enroll").click();
    h.run_steps(1);
    // The card stops answering while the enrollment talks to it.
    signal(card.pid(), libc::SIGSTOP);
    wait_until(&mut h, "the enrollment runs", 10, |a| {
        matches!(
            stage(a),
            Some(Stage::Running { .. } | Stage::Done(_) | Stage::Failed { .. })
        )
    });
    if !matches!(stage(h.state()), Some(Stage::Running { .. })) {
        signal(card.pid(), libc::SIGCONT);
        panic!(
            "the enrollment ended before the card was stopped: {:?}",
            stage(h.state())
        );
    }
    h.get_by_label("Cancel enrollment").click();
    h.run_steps(2);
    h.get_by_label("Cancelling…");
    wait_until(&mut h, "the stuck job is abandoned", 20, |a| {
        matches!(stage(a), Some(Stage::Failed { .. }))
    });
    h.get_by_label("Enrollment cancelled");
    h.get_by_label_contains("Stopped at:");
    h.get_by_label_contains("the card stopped answering");
    h.get_by_label("The card is not enrolled.");

    // The card answers again: the reader is usable (a fresh worker reads it).
    signal(card.pid(), libc::SIGCONT);
    h.get_by_label("Back").click();
    h.run_steps(2);
    h.get_by_label("Refresh").click();
    wait_until(&mut h, "the card is read again", 60, |a| {
        a.readers()
            .iter()
            .any(|p| p.name == READER_0 && !p.inspecting && p.report.is_some())
    });
    card.stop();
}
