//! The station window driven through its accessibility tree (egui_kittest): controls
//! are found by their labels and clicked, the demo card does the card work in-process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use cardstation::app::console_worker::SearchFor;
use cardstation::app::doctor::Level;
use cardstation::config::{Config, Paths};
use cardstation::ui::{AppEvent, ReaderMode, Screen, Stage, StationApp};
use cardstation_pcsc::watcher::WatchEvent;
use cardstation_pcsc::{CardPresence, ReaderStatus};
use cardstation_piv::{PivSession, Slot};
use cardstation_pki::CertificateInfo;
use cardstation_virtual_card::{VirtualReader, DEMO_READER_NAME};
use eframe::egui;
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;

struct Fixture {
    _dir: tempfile::TempDir,
    harness: Harness<'static, StationApp>,
}

fn open(mode: ReaderMode) -> Fixture {
    open_with(mode, |_| {})
}

fn open_with(mode: ReaderMode, settings: impl FnOnce(&mut Config)) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let paths = Paths {
        data_dir: dir.path().join("data"),
        config_file: dir.path().join("cardstation.toml"),
        config_explicit: false,
    };
    let mut config = Config::default();
    config.station.id = Some("ui-test".into());
    config.station.operator = Some("tester".into());
    settings(&mut config);
    let app = StationApp::new(paths, config, mode);
    let harness = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_ui_state(|ui, app: &mut StationApp| app.frame(ui), app);
    Fixture { _dir: dir, harness }
}

/// Step the UI until `done` holds: card work happens on worker threads.
fn wait_until(
    h: &mut Harness<'static, StationApp>,
    what: &str,
    done: impl Fn(&StationApp) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        settle(h);
        if done(h.state()) {
            settle(h);
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for: {what}; readers: {:?}",
            h.state()
                .readers()
                .iter()
                .map(|p| (
                    &p.name,
                    &p.wizard.stage,
                    p.status.card.clone(),
                    p.inspecting,
                    p.report.is_some(),
                    &p.report_error
                ))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Start the wizard on the demo card and enrol it with the default profile.
fn enroll_with_defaults(h: &mut Harness<'static, StationApp>) {
    h.get_by_label("Start enrollment").click();
    settle(h);
    h.get_by_label("Enroll").click();
    wait_until(h, "the enrollment finishes", |a| {
        matches!(demo_stage(a), Some(Stage::Done(_)))
    });
}

/// Type into the text field labelled `field`.
fn type_into(h: &mut Harness<'static, StationApp>, field: &str, text: &str) {
    h.get_by_label(field).focus();
    settle(h);
    h.get_by_label(field).type_text(text);
    settle(h);
}

/// Let a click or key take effect and the next frame show its result.
fn settle(h: &mut Harness<'static, StationApp>) {
    h.run_steps(3);
}

fn demo_stage(app: &StationApp) -> Option<&Stage> {
    app.readers()
        .iter()
        .find(|p| p.name == DEMO_READER_NAME)
        .map(|p| &p.wizard.stage)
}

fn card_read(app: &StationApp) -> bool {
    app.readers()
        .iter()
        .any(|p| p.name == DEMO_READER_NAME && p.report.is_some())
}

fn fingerprint_on_card(app: &StationApp, slot: Slot) -> String {
    let card = app.demo_card().expect("demo card in its reader");
    let mut s = PivSession::open(VirtualReader::new(card, "check")).expect("PIV session");
    let obj = s
        .read_certificate(slot)
        .expect("read")
        .expect("certificate in slot");
    CertificateInfo::parse(&obj.der)
        .expect("certificate")
        .sha256
}

#[test]
fn walks_through_the_whole_wizard_with_the_demo_card() {
    let mut f = open(ReaderMode::DemoOnly);
    let h = &mut f.harness;
    wait_until(h, "the demo card is read", card_read);
    h.get_by_label_contains("DEMO");
    h.get_by_label("A blank PIV card: ready to enroll.");
    h.get_by_label_contains("Factory management key");
    for step in [
        "Check card",
        "Credentials",
        "Key",
        "Certificate",
        "Write & self-test",
        "Export / Upload",
    ] {
        h.get_by_label(step);
    }

    h.get_by_label("Start enrollment").click();
    settle(h);
    h.get_by_label("Subject");
    h.get_by_label("Enroll").click();
    wait_until(h, "the enrollment finishes", |a| {
        matches!(demo_stage(a), Some(Stage::Done(_)))
    });

    h.get_by_label("Done — remove the card");
    let shown = match demo_stage(h.state()) {
        Some(Stage::Done(o)) => o.fingerprint.clone(),
        other => panic!("{other:?}"),
    };
    // The fingerprint on screen is the one of the certificate now on the card.
    h.get_by_label(&shown);
    assert_eq!(
        fingerprint_on_card(h.state(), Slot::CardAuthentication),
        shown
    );
    h.get_by_label("Copy fingerprint");
    h.get_by_label("Export certificate…");
    // The demo card attests the key it generated, and the result (and the card's
    // details) say so.
    assert!(h
        .query_all_by_label_contains("the card attests it generated this key (card serial 5437251")
        .next()
        .is_some());
    assert_eq!(h.state().desk.cards_done, 1);
    wait_until(h, "the card details are refreshed", |a| {
        a.readers()
            .iter()
            .any(|p| p.report.as_ref().is_some_and(|r| !r.is_blank()))
    });
}

#[test]
fn wrong_pin_shows_the_tries_left() {
    let mut f = open(ReaderMode::DemoOnly);
    let h = &mut f.harness;
    wait_until(h, "the demo card is read", card_read);
    h.get_by_label("Start enrollment").click();
    settle(h);
    h.get_by_label("Slot").click();
    settle(h);
    // The slot names also appear in the card details: pick the entry of the open list.
    h.get_all_by_label("9a (PIV Authentication)")
        .find(|n| n.accesskit_node().role() != egui::accesskit::Role::Label)
        .expect("slot 9a in the list")
        .click();
    settle(h);
    h.get_by_label("Card PIN").focus();
    settle(h);
    h.get_by_label("Card PIN").type_text("000000");
    settle(h);
    h.get_by_label("Enroll").click();
    wait_until(h, "the enrollment fails", |a| {
        matches!(demo_stage(a), Some(Stage::Failed { .. }))
    });
    h.get_by_label("Enrollment failed");
    // The PIN was wrong: the step marked is the one where it was typed.
    h.get_by_label("Stopped at: Credentials.");
    h.get_by_label("Wrong PIN: 2 tries left before it is blocked.");
    h.get_by_label("The card is not enrolled.");
    assert_eq!(h.state().desk.cards_done, 0);
    wait_until(h, "the card is read again", |a| {
        a.readers().iter().all(|p| !p.busy())
    });
    assert_idle(h, "the Failed step");

    // Trying again never resends the wrong PIN: the field is empty and the card
    // details show the try that was used.
    h.get_by_label("Try again").click();
    settle(h);
    let pane = h
        .state()
        .readers()
        .iter()
        .find(|p| p.is_demo)
        .expect("demo pane");
    assert!(pane.wizard.pin.is_empty());
    wait_until(h, "the tries left are re-read", |a| {
        a.readers().iter().any(|p| {
            p.report
                .as_ref()
                .is_some_and(|r| r.pin == cardstation_piv::PinStatus::Retries(2))
        })
    });
    h.get_by_label("2 PIN tries left.");
}

#[test]
fn a_new_card_clears_the_previous_result() {
    let mut f = open(ReaderMode::DemoOnly);
    let h = &mut f.harness;
    wait_until(h, "the demo card is read", card_read);
    enroll_with_defaults(h);
    h.get_by_label("Insert new blank card").click();
    wait_until(h, "the new card is read", |a| {
        card_read(a) && matches!(demo_stage(a), Some(Stage::Check))
    });
    assert!(h.query_by_label("Done — remove the card").is_none());
    h.get_by_label("A blank PIV card: ready to enroll.");
    h.get_by_label_contains("The previous card was enrolled");
}

#[test]
fn card_removed_mid_wizard_resumes_after_reinsertion() {
    let mut f = open(ReaderMode::DemoOnly);
    let h = &mut f.harness;
    wait_until(h, "the demo card is read", card_read);
    // Pull the card while the enrollment runs. An enrollment can finish within a few
    // frames; then try again with a new blank card.
    let mut interrupted = false;
    for _ in 0..10 {
        h.get_by_label("Start enrollment").click();
        settle(h);
        h.get_by_label("Enroll").click();
        h.step();
        h.state_mut().demo_remove_card();
        wait_until(h, "the enrollment stops", |a| {
            matches!(demo_stage(a), Some(Stage::Failed { .. } | Stage::Done(_)))
        });
        if matches!(demo_stage(h.state()), Some(Stage::Failed { .. })) {
            interrupted = true;
            break;
        }
        h.get_by_label("Insert new blank card").click();
        wait_until(h, "a new card is read", |a| {
            card_read(a) && matches!(demo_stage(a), Some(Stage::Check))
        });
    }
    assert!(
        interrupted,
        "the enrollment always finished before the card was pulled"
    );
    h.get_by_label("Reinsert the card to resume.");
    h.get_by_label("Insert card").click();
    wait_until(h, "the card is back", |a| {
        matches!(demo_stage(a), Some(Stage::Credentials))
    });
    h.get_by_label_contains("Card reinserted");
    // The interrupted attempt may have left a key or certificate behind: the wizard
    // then asks before replacing it.
    if let Some(confirm) =
        h.query_by_label("Replace it (the old key and certificate are destroyed)")
    {
        confirm.click();
        settle(h);
    }
    h.get_by_label("Enroll").click();
    wait_until(h, "the enrollment finishes", |a| {
        matches!(demo_stage(a), Some(Stage::Done(_) | Stage::Failed { .. }))
    });
    match demo_stage(h.state()) {
        Some(Stage::Done(o)) => assert_eq!(
            fingerprint_on_card(h.state(), Slot::CardAuthentication),
            o.fingerprint
        ),
        other => panic!("expected a finished enrollment, got {other:?}"),
    }
}

#[test]
fn desk_mode_takes_the_next_blank_card_with_one_confirmation() {
    let mut f = open(ReaderMode::DemoOnly);
    let h = &mut f.harness;
    h.get_by_label("Desk mode").click();
    wait_until(h, "the demo card is read", card_read);
    h.get_by_label("Start enrollment").click();
    settle(h);
    h.get_by_label("Enroll").click();
    wait_until(h, "the first card is done", |a| {
        matches!(demo_stage(a), Some(Stage::Done(_)))
    });
    h.get_by_label("Then insert the next blank card.");

    h.get_by_label("Insert new blank card").click();
    wait_until(h, "the next card is read", |a| {
        card_read(a) && matches!(demo_stage(a), Some(Stage::Check))
    });
    h.get_by_label("Enroll next card").click();
    wait_until(h, "the second card is done", |a| {
        matches!(demo_stage(a), Some(Stage::Done(_)))
    });
    assert_eq!(h.state().desk.cards_done, 2);
    h.get_by_label("Cards done this session: 2");
}

#[test]
fn keyboard_alone_enrolls_and_escape_cancels() {
    let mut f = open(ReaderMode::DemoOnly);
    let h = &mut f.harness;
    wait_until(h, "the demo card is read", card_read);
    h.key_press(egui::Key::Enter);
    settle(h);
    assert!(matches!(demo_stage(h.state()), Some(Stage::Credentials)));
    h.key_press(egui::Key::Escape);
    settle(h);
    assert!(matches!(demo_stage(h.state()), Some(Stage::Check)));
    h.key_press(egui::Key::Enter);
    settle(h);
    h.key_press(egui::Key::Enter);
    wait_until(h, "the enrollment finishes", |a| {
        matches!(demo_stage(a), Some(Stage::Done(_)))
    });
}

#[test]
fn unplugged_reader_disappears_and_the_demo_card_takes_over() {
    let mut f = open(ReaderMode::Manual);
    let h = &mut f.harness;
    wait_until(h, "the demo reader appears", |a| {
        a.readers().iter().any(|p| p.is_demo)
    });
    let events = h.state().events();
    let plugged = ReaderStatus {
        name: "Test Reader 00 00".into(),
        card: CardPresence::Absent,
        atr: Vec::new(),
    };
    events
        .send(AppEvent::Watch(WatchEvent::Readers(vec![plugged])))
        .expect("send");
    wait_until(h, "the reader is listed", |a| {
        a.readers().iter().any(|p| p.name == "Test Reader 00 00")
    });
    // With a real reader attached the demo card steps aside.
    assert!(!h.state().readers().iter().any(|p| p.is_demo));
    h.get_by_label("Test Reader 00 00\nno card");
    h.get_by_label("Insert a card into this reader.");

    events
        .send(AppEvent::Watch(WatchEvent::Readers(Vec::new())))
        .expect("send");
    wait_until(h, "the reader is gone", |a| {
        !a.readers().iter().any(|p| p.name == "Test Reader 00 00")
    });
    assert!(h.state().readers().iter().any(|p| p.is_demo));
    assert_eq!(h.state().selected(), Some(DEMO_READER_NAME));

    events
        .send(AppEvent::Watch(WatchEvent::Unavailable(
            "the PC/SC service is not running".into(),
        )))
        .expect("send");
    wait_until(h, "the problem is shown", |a| a.pcsc_problem().is_some());
    h.get_by_label("Card readers are not available");
    h.get_by_label("PC/SC service: not available");
}

#[test]
fn spot_check_screen_gives_a_verdict_and_checks_inserted_cards_at_once() {
    let mut f = open(ReaderMode::DemoOnly);
    let h = &mut f.harness;
    wait_until(h, "the demo card is read", card_read);
    h.get_by_label("Spot check").click();
    settle(h);
    h.get_by_label("Check card").click();
    wait_until(h, "the blank card is checked", |a| !a.checks.is_empty());
    h.get_by_label("FAIL — a gateway refuses this card");
    h.get_by_label(
        "FAIL  slot 9e (Card Authentication) holds no certificate: the card is not enrolled",
    );

    // Enrol it, then come back: the demo console has it on its allow-list.
    h.get_by_label("Enrollment").click();
    settle(h);
    enroll_with_defaults(h);
    wait_until(h, "the demo console's bundle lists the card", |a| {
        a.demo_console_status()
            .bundle
            .as_ref()
            .is_some_and(|b| b.allowed == 1)
    });
    h.get_by_label("Spot check").click();
    settle(h);
    h.get_by_label("Check card").click();
    wait_until(h, "the second check is done", |a| a.checks.len() == 2);
    h.get_by_label("PASS — a gateway accepts this card");

    // On this screen a newly inserted card is checked without a click.
    h.get_by_label("Insert new blank card").click();
    wait_until(h, "the new card is checked", |a| a.checks.len() == 3);
    assert_eq!(
        h.state().checks[0].1.verdict,
        cardstation::app::spot_check::Verdict::Fail
    );
}

#[test]
fn card_care_changes_the_pin_and_counts_wrong_tries() {
    let mut f = open(ReaderMode::DemoOnly);
    let h = &mut f.harness;
    wait_until(h, "the demo card is read", card_read);
    h.get_by_label("Card care").click();
    settle(h);
    h.get_by_label("3 PIN tries left.");
    type_into(h, "Current PIN", "123456");
    type_into(h, "New PIN", "24682468");
    h.get_by_label("Change PIN").click();
    wait_until(h, "the PIN is changed", |a| {
        a.readers()
            .iter()
            .any(|p| p.care.result.as_ref().is_some_and(|r| r.is_ok()))
    });
    h.get_by_label("PIN changed.");
    // The card details are read again after a PIN change; type only once that settled.
    wait_until(h, "the card is read again", |a| {
        a.readers()
            .iter()
            .all(|p| !p.inspecting && p.report.is_some())
    });
    // The fields are empty again, and a wrong PIN now costs a try that is shown.
    let pane = h
        .state()
        .readers()
        .iter()
        .find(|p| p.is_demo)
        .expect("demo");
    assert!(pane.care.old_pin.is_empty() && pane.care.new_pin.is_empty());
    type_into(h, "Current PIN", "123456");
    type_into(h, "New PIN", "11112222");
    h.get_by_label("Change PIN").click();
    wait_until(h, "the wrong PIN is reported", |a| {
        a.readers()
            .iter()
            .any(|p| p.care.result.as_ref().is_some_and(|r| r.is_err()))
    });
    let shown = h
        .state()
        .readers()
        .iter()
        .find_map(|p| p.care.result.clone())
        .and_then(|r| r.err())
        .map(|f| f.message)
        .unwrap_or_default();
    assert_eq!(shown, "wrong PIN: 2 tries left before it is blocked");
    // On screen as a sentence.
    h.get_by_label("Wrong PIN: 2 tries left before it is blocked.");
}

#[test]
fn card_care_renews_the_enrolled_card_onto_a_later_certificate_for_the_same_key() {
    let mut f = open(ReaderMode::DemoOnly);
    let h = &mut f.harness;
    wait_until(h, "the demo card is read", card_read);
    enroll_with_defaults(h);
    let old = fingerprint_on_card(h.state(), Slot::CardAuthentication);
    let key_of = |app: &StationApp| {
        let card = app.demo_card().expect("demo card in its reader");
        let mut s = PivSession::open(VirtualReader::new(card, "check")).expect("PIV session");
        let der = s
            .read_certificate(Slot::CardAuthentication)
            .expect("read")
            .expect("certificate")
            .der;
        CertificateInfo::parse(&der).expect("certificate")
    };
    let before = key_of(h.state());
    h.get_by_label("Card care").click();
    wait_until(h, "the card is read again", |a| {
        a.readers()
            .iter()
            .all(|p| !p.inspecting && p.report.is_some())
    });
    h.get_by_label("Renew certificate").click();
    wait_until(h, "the renewal finishes", |a| {
        a.readers()
            .iter()
            .any(|p| p.care.renewed.is_some() || p.care.result.is_some())
    });
    let pane = h
        .state()
        .readers()
        .iter()
        .find(|p| p.is_demo)
        .expect("demo");
    assert!(pane.care.result.is_none(), "{:?}", pane.care.result);
    let renewed = pane.care.renewed.clone().expect("renewed");
    assert_eq!(renewed.old_fingerprint, old);
    let after = key_of(h.state());
    assert_eq!(after.sha256, renewed.fingerprint);
    assert_ne!(after.sha256, old);
    assert_eq!(
        after.key_sha256, before.key_sha256,
        "the card keeps its key"
    );
    assert!(after.not_after >= before.not_after);
    h.get_by_label(&format!("new  {}", renewed.fingerprint));
}

#[test]
fn diagnostics_and_audit_screens_show_findings_and_an_intact_trail() {
    let mut f = open(ReaderMode::DemoOnly);
    let h = &mut f.harness;
    wait_until(h, "the demo card is read", card_read);
    enroll_with_defaults(h);

    h.get_by_label("Audit").click();
    wait_until(h, "the trail is loaded", |a| a.audit.loaded);
    h.get_by_label_contains("Chain intact");
    h.get_by_label("enroll");

    wait_until(h, "the demo card is uploaded and the bundle held", |a| {
        a.demo_console_status().outbox.is_empty()
            && a.demo_console_status()
                .bundle
                .as_ref()
                .is_some_and(|b| b.allowed == 1)
    });
    h.get_by_label("Diagnostics").click();
    settle(h);
    h.get_by_label("Run diagnostics").click();
    wait_until(h, "the doctor is done", |a| a.diag.report.is_some());
    h.get_by_label("Card reader service");
    h.get_by_label("Save diagnostic bundle…");
    // The demo card is checked like a card in a reader, against the demo station's bundle.
    let report = h.state().diag.report.clone().expect("report");
    let demo_area = format!("card in {DEMO_READER_NAME}");
    let on_card: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.area == demo_area)
        .collect();
    assert!(
        on_card.iter().any(|f| f.what.contains("PIV")),
        "{on_card:?}"
    );
    assert!(
        on_card
            .iter()
            .any(|f| f.level == Level::Ok && f.what.contains("valid until")),
        "the enrolled, uploaded demo card is allowed: {on_card:?}"
    );
}

#[test]
fn the_operator_is_asked_once_when_the_settings_do_not_name_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let paths = Paths {
        data_dir: dir.path().join("data"),
        config_file: dir.path().join("cardstation.toml"),
        config_explicit: false,
    };
    let app = StationApp::new(paths, Config::default(), ReaderMode::DemoOnly);
    let mut h = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_ui_state(|ui, app: &mut StationApp| app.frame(ui), app);
    h.run();
    // Typed as a keyboard types, without pointing at the field first: it has the focus.
    assert_idle(&mut h, "the operator prompt");
    h.event(egui::Event::Text("Dana".into()));
    h.run();
    h.get_by_label("Operator name");
    // Backspace works too (focus requested every frame used to swallow keys).
    h.key_press(egui::Key::Backspace);
    h.event(egui::Event::Text("a".into()));
    h.run();
    assert_idle(&mut h, "the operator prompt after typing");
    h.key_press(egui::Key::Enter);
    h.run_steps(3);
    assert_eq!(h.state().operator(), "Dana");
    h.get_by_label("Operator Dana");
}

#[test]
fn the_start_session_button_takes_the_typed_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let paths = Paths {
        data_dir: dir.path().join("data"),
        config_file: dir.path().join("cardstation.toml"),
        config_explicit: false,
    };
    let app = StationApp::new(paths, Config::default(), ReaderMode::DemoOnly);
    let mut h = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_ui_state(|ui, app: &mut StationApp| app.frame(ui), app);
    h.run();
    h.event(egui::Event::Text("Sam".into()));
    h.run();
    h.get_by_label("Start session").click();
    h.run_steps(3);
    assert_eq!(h.state().operator(), "Sam");
}

/// After the UI settled, no repaint is pending: neither at once nor later. A
/// window that keeps repainting while nothing happens burns CPU for nothing.
fn assert_idle(h: &mut Harness<'static, StationApp>, what: &str) {
    if let Err(e) = h.try_run() {
        panic!("{what} never settles: {e}");
    }
    let delay = h
        .output()
        .viewport_output
        .get(&egui::ViewportId::ROOT)
        .map(|v| v.repaint_delay)
        .unwrap_or(Duration::MAX);
    assert_eq!(
        delay,
        Duration::MAX,
        "{what} asks to be repainted in {delay:?} although nothing happens: {:?}",
        h.ctx.repaint_causes()
    );
}

#[test]
fn no_screen_repaints_while_nothing_happens() {
    let mut f = open(ReaderMode::DemoOnly);
    let h = &mut f.harness;
    wait_until(h, "the demo card is read", card_read);
    wait_until(h, "the demo console answers", |a| {
        a.demo_console_status().reachable == Some(true)
    });
    assert_idle(h, "the Check card step");
    h.get_by_label("Start enrollment").click();
    assert_idle(h, "the Credentials step");
    // A slot that needs the PIN: the PIN field has the keyboard.
    h.get_by_label("Slot").click();
    settle(h);
    h.get_all_by_label("9a (PIV Authentication)")
        .find(|n| n.accesskit_node().role() != egui::accesskit::Role::Label)
        .expect("slot 9a in the list")
        .click();
    assert_idle(h, "the Credentials step with the PIN field");
    h.get_by_label("Cancel").click();
    settle(h);
    h.get_by_label("Start enrollment").click();
    settle(h);
    h.get_by_label("Slot").click();
    settle(h);
    h.get_all_by_label("9e (Card Authentication)")
        .find(|n| n.accesskit_node().role() != egui::accesskit::Role::Label)
        .expect("slot 9e in the list")
        .click();
    settle(h);
    h.get_by_label("Enroll").click();
    wait_until(h, "the enrollment finishes", |a| {
        matches!(demo_stage(a), Some(Stage::Done(_)))
    });
    wait_until(h, "the upload is acknowledged", |a| {
        a.demo_console_status().outbox.is_empty() && a.demo_console_status().bundle.is_some()
    });
    assert_idle(h, "the Done step");
    for tab in ["Spot check", "Card care", "Diagnostics", "Audit", "Console"] {
        h.get_by_label(tab).click();
        wait_until(h, "the tab's work is done", |a| {
            !a.audit.loading
                && !a.diag.running
                && a.readers().iter().all(|p| !p.busy())
                && (a.screen != Screen::Console
                    || a.demo_console_status().search(SearchFor::Console).is_some())
        });
        assert_idle(h, tab);
    }
    h.get_by_label("Diagnostics").click();
    settle(h);
    h.get_by_label("Run diagnostics").click();
    wait_until(h, "the doctor is done", |a| a.diag.report.is_some());
    assert_idle(h, "the Diagnostics findings");
    h.get_by_label("Outbox: 0").click();
    assert_idle(h, "the outbox window");
    h.get_by_label("Enrollment").click();
    h.get_by_label("Remove card").click();
    assert_idle(h, "the Check card step without a card");
}

#[test]
fn banners_do_not_keep_the_window_busy() {
    let mut f = open(ReaderMode::Manual);
    let h = &mut f.harness;
    wait_until(h, "the demo reader appears", |a| {
        a.readers().iter().any(|p| p.is_demo)
    });
    let events = h.state().events();
    events
        .send(AppEvent::Watch(WatchEvent::Unavailable(
            "the PC/SC service is not running".into(),
        )))
        .expect("send");
    wait_until(h, "the problem is shown", |a| a.pcsc_problem().is_some());
    wait_until(h, "the demo card is read", card_read);
    assert_idle(h, "the PC/SC banner");
}

/// Type as a keyboard does, into whatever has the focus.
fn keyboard(h: &mut Harness<'static, StationApp>, text: &str) {
    h.event(egui::Event::Text(text.into()));
    settle(h);
}

#[test]
fn the_pin_field_has_the_keyboard_and_validation_waits_for_input() {
    let mut f = open_with(ReaderMode::DemoOnly, |c| c.enroll.slot = "9a".into());
    let h = &mut f.harness;
    wait_until(h, "the demo card is read", card_read);
    h.key_press(egui::Key::Enter);
    settle(h);
    assert!(
        h.get_by_label("Card PIN").is_focused(),
        "the PIN field has the keyboard"
    );
    // Nothing typed yet: nothing to complain about.
    assert!(h.query_by_label_contains("Card PIN:").is_none());
    keyboard(h, "12");
    h.key_press(egui::Key::Enter);
    settle(h);
    // Enter with a short PIN: the form says why and enrols nothing.
    h.get_by_label_contains("Card PIN:");
    assert!(matches!(demo_stage(h.state()), Some(Stage::Credentials)));
    h.get_by_label("Card PIN").focus();
    settle(h);
    keyboard(h, "3456");
    h.key_press(egui::Key::Enter);
    wait_until(h, "the enrollment finishes", |a| {
        matches!(demo_stage(a), Some(Stage::Done(_)))
    });
}

#[test]
fn desk_mode_with_a_pin_slot_takes_the_pin_typed_straight_away() {
    let mut f = open_with(ReaderMode::DemoOnly, |c| c.enroll.slot = "9a".into());
    let h = &mut f.harness;
    h.get_by_label("Desk mode").click();
    wait_until(h, "the demo card is read", card_read);
    h.key_press(egui::Key::Enter);
    settle(h);
    keyboard(h, "123456");
    h.key_press(egui::Key::Enter);
    wait_until(h, "the first card is done", |a| {
        matches!(demo_stage(a), Some(Stage::Done(_)))
    });
    h.get_by_label("Insert new blank card").click();
    wait_until(h, "the next card is read", |a| {
        card_read(a) && matches!(demo_stage(a), Some(Stage::Check))
    });
    h.get_by_label("Enter the PIN");
    h.key_press(egui::Key::Enter);
    settle(h);
    keyboard(h, "123456");
    h.key_press(egui::Key::Enter);
    wait_until(h, "the second card is done", |a| {
        matches!(demo_stage(a), Some(Stage::Done(_)))
    });
    assert_eq!(h.state().desk.cards_done, 2);
}

#[test]
fn cancel_stops_the_enrollment_and_says_where() {
    let mut f = open(ReaderMode::DemoOnly);
    let h = &mut f.harness;
    wait_until(h, "the demo card is read", card_read);
    // An enrollment can finish within a few frames: then try again with a new card.
    let mut cancelled = false;
    let mut done_before = 0;
    for _ in 0..10 {
        done_before = h.state().desk.cards_done;
        h.get_by_label("Start enrollment").click();
        settle(h);
        // Esc (the Cancel key) right behind the click: the frames run back to back.
        h.get_by_label("Enroll").click();
        h.key_press(egui::Key::Escape);
        h.step();
        // Finished before the Esc: then the Esc left the Done screen ("Enroll another").
        wait_until(h, "the enrollment stops", |a| {
            !matches!(demo_stage(a), Some(Stage::Running { .. }))
        });
        if matches!(demo_stage(h.state()), Some(Stage::Failed { .. })) {
            cancelled = true;
            break;
        }
        h.get_by_label("Insert new blank card").click();
        wait_until(h, "a new card is read", |a| {
            card_read(a) && matches!(demo_stage(a), Some(Stage::Check))
        });
    }
    assert!(cancelled, "the enrollment always finished before Cancel");
    h.get_by_label("Enrollment cancelled");
    h.get_by_label_contains("Stopped at:");
    h.get_by_label_contains("Cancelled by the operator");
    h.get_by_label("The card is not enrolled.");
    assert_eq!(h.state().desk.cards_done, done_before);
}

#[test]
fn copy_says_copied() {
    let mut f = open(ReaderMode::DemoOnly);
    let h = &mut f.harness;
    wait_until(h, "the demo card is read", card_read);
    enroll_with_defaults(h);
    assert!(h.query_by_label("Copied").is_none());
    h.get_by_label("Copy fingerprint").click();
    settle(h);
    h.get_by_label("Copied");
}

#[test]
fn the_layout_stays_put_at_both_screen_sizes() {
    for size in [egui::vec2(1280.0, 800.0), egui::vec2(1920.0, 1080.0)] {
        let mut f = open(ReaderMode::Manual);
        let h = &mut f.harness;
        h.set_size(size);
        wait_until(h, "the demo card is read", card_read);
        let panel = h.get_by_label("Readers").rect().left();
        let tabs = h.get_by_label("Enrollment").rect();
        // The readers panel has the same width on every launch and screen.
        assert!(
            (tabs.left() - panel - 280.0).abs() < 24.0,
            "tabs at {} with the panel at {panel} ({size:?})",
            tabs.left()
        );
        // Neither a banner nor the outbox pushes the tabs.
        h.state()
            .events()
            .send(AppEvent::Watch(WatchEvent::Unavailable(
                "the PC/SC service is not running".into(),
            )))
            .expect("send");
        wait_until(h, "the banner shows", |a| a.pcsc_problem().is_some());
        h.get_by_label("Outbox: 0").click();
        settle(h);
        h.get_by_label("Demo console outbox");
        assert_eq!(h.get_by_label("Enrollment").rect(), tabs, "{size:?}");
    }
}

#[test]
fn replacing_shows_the_old_card_and_asks_first() {
    let mut f = open(ReaderMode::DemoOnly);
    let h = &mut f.harness;
    wait_until(h, "the demo card is read", card_read);
    enroll_with_defaults(h);
    let fp = match demo_stage(h.state()) {
        Some(Stage::Done(o)) => o.fingerprint.clone(),
        other => panic!("{other:?}"),
    };
    h.get_by_label("Card care").click();
    settle(h);
    type_into(h, "Old certificate (SHA-256)", &fp);
    wait_until(h, "the old card is looked up", |_| true);
    h.get_by_label_contains("in this reader now (renewal)");
    h.get_by_label("Replace card…").click();
    settle(h);
    // Nothing happens before the confirmation.
    h.get_by_label_contains("Revoke the old certificate (lost) and enrol the card in");
    h.get_by_label("Confirm replacement").click();
    wait_until(h, "the card is renewed", |a| {
        a.readers().iter().any(|p| p.care.replaced.is_some())
    });
    h.get_by_label("Renewed.");
}
