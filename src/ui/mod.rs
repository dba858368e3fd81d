//! The station window (eframe/egui). No card, network or disk I/O happens on the UI
//! thread: readers are watched by `card::watcher`, card work runs on one
//! `app::reader_worker` per reader, file dialogs on their own threads. Events come
//! back by channel and wake the window with `request_repaint`; nothing polls.

mod audit_view;
mod card_details;
mod care;
mod diagnostics;
mod export;
mod icon;
mod readers_panel;
mod spot_check;
mod wizard;

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use eframe::egui;

use crate::app::console_worker::{ConsoleJob, ConsoleStatus, ConsoleWorker};
use crate::app::enroll::EnrollOutcome;
use crate::app::reader_worker::{CardSource, Job, JobEvent, ReaderWorker};
use crate::config::{Config, Paths};
use cardstation_card::Transport;
use cardstation_pcsc::watcher::{WatchEvent, Watcher};
use cardstation_pcsc::{CardPresence, ReaderStatus};
use cardstation_pki::certificate::to_pem;
use cardstation_protocol::messages::UploadRequest;
use cardstation_virtual_card::{CardStorage, VirtualCard};
use cardstation_virtual_card::{VirtualReader, DEMO_READER_NAME};

pub use wizard::{Stage, Wizard};

/// Which readers the window offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderMode {
    /// PC/SC readers, and the demo card whenever no reader is attached.
    Pcsc,
    /// Only the built-in demo card (demos next to other readers).
    DemoOnly,
    /// No watcher: readers arrive as `AppEvent::Watch` events (UI tests).
    Manual,
}

/// Everything that reaches the UI thread from elsewhere.
pub enum AppEvent {
    Watch(WatchEvent),
    Job {
        reader: String,
        event: JobEvent,
    },
    Exported {
        reader: String,
        result: Result<String, String>,
    },
    Console(ConsoleStatus),
    Diagnosed(Box<crate::app::doctor::DoctorReport>),
    BundleSaved(Result<String, String>),
    Audit(Result<(Vec<crate::store::AuditRow>, crate::store::AuditVerdict), String>),
}

/// Wakes the window from worker threads; set once the first frame has a context.
#[derive(Clone, Default)]
pub struct Waker(Arc<Mutex<Option<egui::Context>>>);

impl Waker {
    pub fn wake(&self) {
        if let Ok(guard) = self.0.lock() {
            if let Some(ctx) = guard.as_ref() {
                ctx.request_repaint();
            }
        }
    }
    fn set(&self, ctx: &egui::Context) {
        if let Ok(mut guard) = self.0.lock() {
            if guard.is_none() {
                *guard = Some(ctx.clone());
            }
        }
    }
}

/// One reader as the window shows it.
pub struct ReaderPane {
    pub name: String,
    pub is_demo: bool,
    pub status: ReaderStatus,
    pub worker: ReaderWorker,
    pub report: Option<Box<crate::app::card_status::CardReport>>,
    pub report_error: Option<crate::app::failure::Failure>,
    pub inspecting: bool,
    pub wizard: Wizard,
    pub spot: spot_check::SpotState,
    pub care: care::CareState,
}

/// The main area's screens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Enroll,
    SpotCheck,
    CardCare,
    Diagnostics,
    Audit,
}

/// The operator's session at this station.
#[derive(Default)]
pub struct DeskSession {
    /// Many cards, fast: a removed finished card readies the wizard for the next one.
    pub desk_mode: bool,
    pub cards_done: u32,
}

pub struct StationApp {
    paths: Paths,
    config: Config,
    mode: ReaderMode,
    events_tx: Sender<AppEvent>,
    events_rx: Receiver<AppEvent>,
    waker: Waker,
    watcher: Option<Watcher>,
    console: Option<ConsoleWorker>,
    pub console_status: ConsoleStatus,
    pub show_outbox: bool,
    demo: Option<VirtualReader>,
    /// The demo card while it is out of the reader.
    demo_out: Option<Arc<VirtualCard>>,
    pub pcsc_problem: Option<String>,
    pub readers: Vec<ReaderPane>,
    pub selected: Option<String>,
    pub desk: DeskSession,
    pub dark: bool,
    pub notice: Option<String>,
    pub screen: Screen,
    /// Spot checks of this session, newest first, with the time they ran.
    pub checks: Vec<(i64, Box<crate::app::spot_check::SpotCheck>)>,
    pub diag: diagnostics::DiagState,
    pub audit: audit_view::AuditState,
    /// Who is at the desk, asked once per session when the settings do not say.
    pub operator_prompt: Option<String>,
    /// Read once: the host name comes from a file, and frames do no disk I/O.
    station_id: String,
    started: bool,
}

impl StationApp {
    pub fn new(paths: Paths, config: Config, mode: ReaderMode) -> Self {
        let (events_tx, events_rx) = mpsc::channel();
        StationApp {
            paths,
            config: config.clone(),
            mode,
            events_tx,
            events_rx,
            waker: Waker::default(),
            watcher: None,
            console: None,
            console_status: ConsoleStatus::default(),
            show_outbox: false,
            demo: None,
            demo_out: None,
            pcsc_problem: None,
            readers: Vec::new(),
            selected: None,
            desk: DeskSession::default(),
            dark: true,
            notice: None,
            screen: Screen::Enroll,
            checks: Vec::new(),
            diag: diagnostics::DiagState::default(),
            audit: audit_view::AuditState::default(),
            operator_prompt: None,
            station_id: config.station_id(),
            started: false,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn operator(&self) -> String {
        self.config.operator()
    }

    /// Start the watcher (or the demo card) once the window has a context to wake.
    fn start(&mut self, ctx: &egui::Context) {
        self.waker.set(ctx);
        if self.started {
            return;
        }
        self.started = true;
        let tx = self.events_tx.clone();
        let waker = self.waker.clone();
        match ConsoleWorker::spawn(self.paths.clone(), self.config.clone(), move |status| {
            let _ = tx.send(AppEvent::Console(status));
            waker.wake();
        }) {
            Ok(w) => self.console = Some(w),
            Err(e) => self.notice = Some(format!("cannot start the console link: {e}")),
        }
        match self.mode {
            ReaderMode::DemoOnly | ReaderMode::Manual => self.set_readers(Vec::new()),
            ReaderMode::Pcsc => {
                let tx = self.events_tx.clone();
                let waker = self.waker.clone();
                match Watcher::spawn(move |e| {
                    let _ = tx.send(AppEvent::Watch(e));
                    waker.wake();
                }) {
                    Ok(w) => self.watcher = Some(w),
                    Err(e) => {
                        self.pcsc_problem = Some(format!("cannot watch readers: {e}"));
                        self.set_readers(Vec::new());
                    }
                }
            }
        }
    }

    /// Handle everything that arrived since the last frame.
    fn pump(&mut self) {
        while let Ok(event) = self.events_rx.try_recv() {
            match event {
                AppEvent::Watch(WatchEvent::Readers(list)) => {
                    self.pcsc_problem = None;
                    self.set_readers(list);
                }
                AppEvent::Watch(WatchEvent::Unavailable(msg)) => {
                    self.pcsc_problem = Some(msg);
                    self.set_readers(Vec::new());
                }
                AppEvent::Job { reader, event } => self.on_job_event(&reader, event),
                AppEvent::Console(status) => self.console_status = status,
                AppEvent::Diagnosed(report) => {
                    self.diag.running = false;
                    self.diag.report = Some(report);
                }
                AppEvent::BundleSaved(result) => self.diag.saved = Some(result),
                AppEvent::Audit(result) => {
                    self.audit.loading = false;
                    self.audit.loaded = true;
                    match result {
                        Ok((rows, verdict)) => {
                            self.audit.rows = rows;
                            self.audit.verdict = Some(Ok(verdict));
                        }
                        Err(e) => self.audit.verdict = Some(Err(e)),
                    }
                }
                AppEvent::Exported { reader, result } => {
                    if let (Ok(path), Some(console)) = (&result, &self.console) {
                        let fingerprint = self
                            .readers
                            .iter()
                            .find(|p| p.name == reader)
                            .and_then(|p| match &p.wizard.stage {
                                Stage::Done(o) => Some(o.fingerprint.clone()),
                                _ => None,
                            })
                            .unwrap_or_default();
                        console.submit(ConsoleJob::Audit {
                            action: crate::store::AuditAction::Export,
                            subject: fingerprint,
                            details: serde_json::json!({"reader": reader, "file": path}),
                        });
                    }
                    if let Some(p) = self.pane_mut(&reader) {
                        p.wizard.export_result = Some(result);
                    }
                }
            }
        }
    }

    /// Merge a fresh reader list: keep panes (and their wizards) of readers still
    /// there, add new ones, drop unplugged ones, and offer the demo card when no
    /// reader is attached.
    fn set_readers(&mut self, list: Vec<ReaderStatus>) {
        let real: Vec<ReaderStatus> = if self.mode == ReaderMode::DemoOnly {
            Vec::new()
        } else {
            list
        };
        let want_demo = real.is_empty();
        // Unplugged readers go (a demo card in the middle of an enrollment stays).
        self.readers.retain(|p| {
            if p.is_demo {
                want_demo || p.wizard.is_running()
            } else {
                real.iter().any(|r| r.name == p.name)
            }
        });
        for status in real {
            self.update_reader(status);
        }
        if want_demo && !self.readers.iter().any(|p| p.is_demo) {
            self.add_demo_reader();
        }
        let selected_gone = self
            .selected
            .as_ref()
            .is_none_or(|s| !self.readers.iter().any(|p| &p.name == s));
        if selected_gone {
            // Prefer a reader with a card in it.
            self.selected = self
                .readers
                .iter()
                .find(|p| p.status.card == CardPresence::Present)
                .or(self.readers.first())
                .map(|p| p.name.clone());
        }
    }

    fn update_reader(&mut self, status: ReaderStatus) {
        let had_card = match self.pane_mut(&status.name) {
            Some(p) => {
                let before = p.status.card.clone();
                p.status = status.clone();
                Some(before)
            }
            None => None,
        };
        match had_card {
            None => {
                if let Some(pane) =
                    self.new_pane(CardSource::Pcsc(status.name.clone()), status, false)
                {
                    let present = pane.status.card == CardPresence::Present;
                    let name = pane.name.clone();
                    self.readers.push(pane);
                    if present {
                        self.inspect(&name);
                    }
                }
            }
            Some(before) => {
                let now = status.card.clone();
                if before != now {
                    self.on_presence_change(&status.name, now);
                }
            }
        }
    }

    fn add_demo_reader(&mut self) {
        let reader = match &self.demo {
            Some(r) => r.clone(),
            None => match VirtualCard::start(CardStorage::Memory) {
                Ok(c) => {
                    let r = VirtualReader::new(Arc::new(c), DEMO_READER_NAME);
                    self.demo = Some(r.clone());
                    r
                }
                Err(e) => {
                    self.notice = Some(format!("the demo card could not start: {e}"));
                    return;
                }
            },
        };
        let present = reader.is_present();
        let status = ReaderStatus {
            name: DEMO_READER_NAME.to_string(),
            card: if present {
                CardPresence::Present
            } else {
                CardPresence::Absent
            },
            atr: reader.atr(),
        };
        if let Some(pane) = self.new_pane(CardSource::Virtual(reader), status, true) {
            self.readers.push(pane);
            if present {
                self.inspect(DEMO_READER_NAME);
            }
        }
    }

    /// The demo reader's card, when it is in the reader (tests look at it).
    pub fn demo_card(&self) -> Option<Arc<VirtualCard>> {
        self.demo.as_ref().and_then(|r| r.card())
    }

    pub fn demo_card_present(&self) -> bool {
        self.demo.as_ref().is_some_and(|r| r.is_present())
    }

    /// Take the demo card out of its reader, as an operator pulls a card.
    pub fn demo_remove_card(&mut self) {
        let Some(reader) = self.demo.clone() else {
            return;
        };
        self.demo_out = reader.remove();
        self.demo_presence(CardPresence::Absent);
    }

    /// Put a demo card back: the one taken out, or a new blank one.
    pub fn demo_insert_card(&mut self, new_blank: bool) {
        let Some(reader) = self.demo.clone() else {
            return;
        };
        if reader.is_present() {
            if !new_blank {
                return;
            }
            self.demo_remove_card();
        }
        let card = match self.demo_out.take() {
            Some(c) if !new_blank => c,
            _ => match VirtualCard::start(CardStorage::Memory) {
                Ok(c) => Arc::new(c),
                Err(e) => {
                    self.notice = Some(format!("the demo card could not start: {e}"));
                    return;
                }
            },
        };
        reader.insert(card);
        self.demo_presence(CardPresence::Present);
    }

    fn demo_presence(&mut self, now: CardPresence) {
        let atr = self.demo.as_ref().map(|r| r.atr()).unwrap_or_default();
        if let Some(p) = self.pane_mut(DEMO_READER_NAME) {
            p.status.card = now.clone();
            p.status.atr = atr;
        }
        self.on_presence_change(DEMO_READER_NAME, now);
    }

    fn spawn_worker(&self, source: CardSource) -> std::io::Result<ReaderWorker> {
        let tx = self.events_tx.clone();
        let waker = self.waker.clone();
        let reader = source.name();
        ReaderWorker::spawn(
            source,
            self.paths.clone(),
            self.config.clone(),
            move |event| {
                let _ = tx.send(AppEvent::Job {
                    reader: reader.clone(),
                    event,
                });
                waker.wake();
            },
        )
    }

    fn new_pane(
        &mut self,
        source: CardSource,
        status: ReaderStatus,
        is_demo: bool,
    ) -> Option<ReaderPane> {
        let name = source.name();
        match self.spawn_worker(source) {
            Ok(worker) => Some(ReaderPane {
                name,
                is_demo,
                status,
                worker,
                report: None,
                report_error: None,
                inspecting: false,
                wizard: Wizard::new(&self.config),
                spot: spot_check::SpotState::default(),
                care: care::CareState::default(),
            }),
            Err(e) => {
                self.notice = Some(format!("cannot start a worker for {name}: {e}"));
                None
            }
        }
    }

    fn on_presence_change(&mut self, reader: &str, now: CardPresence) {
        let desk_mode = self.desk.desk_mode;
        let spot_screen = self.screen == Screen::SpotCheck;
        let Some(p) = self.pane_mut(reader) else {
            return;
        };
        p.report = None;
        p.report_error = None;
        match now {
            CardPresence::Present => {
                p.wizard.on_card_inserted(desk_mode);
                p.spot.last = None;
                p.spot.error = None;
                // On the Spot check screen, a card is checked the moment it is inserted.
                if spot_screen && !p.wizard.is_running() {
                    spot_check::start(p);
                }
                self.inspect(reader);
            }
            _ => p.wizard.on_card_removed(desk_mode),
        }
    }

    pub fn inspect(&mut self, reader: &str) {
        if let Some(p) = self.pane_mut(reader) {
            p.inspecting = true;
            p.worker.submit(Job::Inspect);
        }
    }

    fn on_job_event(&mut self, reader: &str, event: JobEvent) {
        let mut enrolled = false;
        let mut refresh = false;
        let mut deliver = false;
        let console_configured = self.console_status.configured;
        let mut checked = None;
        let mut replaced = false;
        let desk_mode = self.desk.desk_mode;
        {
            let Some(p) = self.pane_mut(reader) else {
                return;
            };
            match event {
                JobEvent::Inspected(report) => {
                    p.inspecting = false;
                    p.report_error = None;
                    p.wizard.on_report(&report, desk_mode);
                    p.report = Some(report);
                }
                JobEvent::InspectFailed(f) => {
                    p.inspecting = false;
                    p.report = None;
                    p.report_error = Some(f);
                }
                JobEvent::Step(step) => p.wizard.on_step(step),
                JobEvent::Enrolled(outcome) => {
                    // Its upload (if asked for) was queued with the record: deliver it.
                    deliver = p.wizard.upload_when_done && console_configured;
                    p.wizard.on_enrolled(outcome);
                    enrolled = true;
                }
                JobEvent::EnrollFailed(f) => {
                    p.wizard.on_failed(f);
                    refresh = true;
                }
                JobEvent::Checked(check) => {
                    p.spot.running = false;
                    p.spot.error = None;
                    checked = Some(check.clone());
                    p.spot.last = Some(check);
                }
                JobEvent::CheckFailed(f) => {
                    p.spot.running = false;
                    p.spot.error = Some(f);
                }
                JobEvent::PinCareDone(result) => {
                    p.care.on_done(result);
                    refresh = true;
                }
                JobEvent::Replaced(outcome) => {
                    p.care.busy = false;
                    p.care.replaced = Some(outcome);
                    refresh = true;
                    replaced = true;
                }
                JobEvent::ReplaceFailed(f) => {
                    p.care.busy = false;
                    p.care.result = Some(Err(f));
                    refresh = true;
                }
            }
        }
        if refresh
            && self
                .pane_mut(reader)
                .is_some_and(|p| p.status.card == CardPresence::Present)
        {
            // Tries left and slot contents may have changed.
            self.inspect(reader);
        }
        if deliver {
            self.sync_console();
        }
        if replaced {
            // The revocation and the new upload are queued: deliver them now.
            self.sync_console();
            self.audit.loaded = false;
        }
        if let Some(check) = checked {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            self.checks.insert(0, (now, check));
            self.checks.truncate(200);
        }
        if enrolled {
            self.desk.cards_done += 1;
            // Refresh the card details so they show what is now on the card.
            self.inspect(reader);
        }
    }

    /// Queue an enrolled card's certificate for the console.
    pub fn upload(&mut self, outcome: &EnrollOutcome) {
        let Some(console) = &self.console else { return };
        console.submit(ConsoleJob::Upload {
            fingerprint: outcome.fingerprint.clone(),
            request: Box::new(UploadRequest {
                certificate: to_pem(&outcome.certificate_der),
                card_serial: outcome.card_serial,
                chuid_guid: Some(outcome.chuid_guid.clone()),
                slot: Some(outcome.slot.short().to_string()),
                label: None,
                operator: self.config.operator(),
                station_id: self.station_id.clone(),
            }),
        });
    }

    pub fn sync_console(&self) {
        if let Some(c) = &self.console {
            c.submit(ConsoleJob::SyncNow);
        }
    }

    pub fn pane_mut(&mut self, name: &str) -> Option<&mut ReaderPane> {
        self.readers.iter_mut().find(|p| p.name == name)
    }

    pub fn selected_pane_mut(&mut self) -> Option<&mut ReaderPane> {
        let name = self.selected.clone()?;
        self.pane_mut(&name)
    }

    pub fn events(&self) -> Sender<AppEvent> {
        self.events_tx.clone()
    }

    pub fn waker(&self) -> Waker {
        self.waker.clone()
    }

    /// One frame: take in events, then draw. Used by eframe and by the UI tests.
    pub fn frame(&mut self, ui: &mut egui::Ui) {
        if self.config.station.operator.is_none() {
            self.ask_operator(ui);
            return;
        }
        self.start(ui.ctx());
        self.pump();
        ui.ctx().set_theme(if self.dark {
            egui::Theme::Dark
        } else {
            egui::Theme::Light
        });
        self.top_bar(ui);
        self.status_bar(ui);
        readers_panel::show(self, ui);
        egui::CentralPanel::default().show(ui, |ui| self.main_area(ui));
    }

    /// Once per session: who is at the desk (every audit row carries the name).
    fn ask_operator(&mut self, ui: &mut egui::Ui) {
        let name = self
            .operator_prompt
            .get_or_insert_with(|| std::env::var("USER").unwrap_or_default());
        let mut start = false;
        egui::CentralPanel::default().show(ui, |ui| {
            ui.add_space(120.0);
            ui.vertical_centered(|ui| {
                ui.heading("Cardstation");
                ui.label(
                    "Who is at the desk? Every action of this session is recorded under this name.",
                );
                let l = ui.label("Operator name");
                let field = ui
                    .add(egui::TextEdit::singleline(name).desired_width(240.0))
                    .labelled_by(l.id);
                field.request_focus();
                let enter = ui.input(|i| i.key_pressed(egui::Key::Enter));
                let ok = !name.trim().is_empty();
                if ui
                    .add_enabled(ok, egui::Button::new("Start session"))
                    .clicked()
                    || (enter && ok)
                {
                    start = true;
                }
            });
        });
        if start {
            self.config.station.operator =
                self.operator_prompt.take().map(|n| n.trim().to_string());
        }
    }

    fn top_bar(&mut self, ui: &mut egui::Ui) {
        egui::Panel::top("top").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading("Cardstation");
                ui.separator();
                ui.checkbox(&mut self.desk.desk_mode, "Desk mode")
                    .on_hover_text("Many cards in a row: after a card is done, remove it and insert the next blank card");
                ui.label(format!("Cards done this session: {}", self.desk.cards_done));
                ui.separator();
                let c = &self.console_status;
                let text = match (c.configured, c.reachable) {
                    (false, _) => "Console: not configured".to_string(),
                    (true, None) => "Console: connecting…".to_string(),
                    (true, Some(true)) => "Console: reachable".to_string(),
                    (true, Some(false)) => "Console: unreachable".to_string(),
                };
                let colour = match c.reachable {
                    Some(false) => ui.visuals().warn_fg_color,
                    _ => ui.visuals().text_color(),
                };
                let hover = c
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "Uploads go to the management console; the trust bundle comes back".into());
                ui.colored_label(colour, text).on_hover_text(hover);
                if ui
                    .selectable_label(self.show_outbox, format!("Outbox: {}", c.pending()))
                    .on_hover_text("Uploads and revocations waiting for the console")
                    .clicked()
                {
                    self.show_outbox = !self.show_outbox;
                }
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    let label = if self.dark { "Light theme" } else { "Dark theme" };
                    if ui.button(label).clicked() {
                        self.dark = !self.dark;
                    }
                });
            });
        });
    }

    fn status_bar(&mut self, ui: &mut egui::Ui) {
        egui::Panel::bottom("status").show(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                ui.label(format!("Station {}", self.station_id));
                ui.separator();
                ui.label(format!("Operator {}", self.config.operator()));
                ui.separator();
                match &self.pcsc_problem {
                    Some(_) => ui
                        .colored_label(ui.visuals().error_fg_color, "PC/SC service: not available"),
                    None if self.mode == ReaderMode::DemoOnly => ui.label("Demo mode"),
                    None => ui.label("PC/SC service: running"),
                };
                ui.separator();
                ui.label(format!("Data {}", self.paths.data_dir.display()));
            });
        });
    }

    fn main_area(&mut self, ui: &mut egui::Ui) {
        if let Some(problem) = self.pcsc_problem.clone() {
            egui::Frame::group(ui.style())
                .fill(ui.visuals().extreme_bg_color)
                .show(ui, |ui| {
                    ui.colored_label(ui.visuals().warn_fg_color, "Card readers are not available");
                    ui.label(problem);
                    ui.label("Until then you can try everything with the demo card.");
                });
            ui.add_space(8.0);
        }
        if let Some(notice) = self.notice.clone() {
            ui.horizontal(|ui| {
                ui.colored_label(ui.visuals().warn_fg_color, notice);
                if ui.button("Dismiss").clicked() {
                    self.notice = None;
                }
            });
        }
        if self.show_outbox {
            self.outbox_view(ui);
            ui.separator();
        }
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.screen, Screen::Enroll, "Enrollment");
            ui.selectable_value(&mut self.screen, Screen::SpotCheck, "Spot check");
            ui.selectable_value(&mut self.screen, Screen::CardCare, "Card care");
            ui.selectable_value(&mut self.screen, Screen::Diagnostics, "Diagnostics");
            if ui
                .selectable_value(&mut self.screen, Screen::Audit, "Audit")
                .clicked()
            {
                self.audit.loaded = false;
            }
        });
        ui.separator();
        match self.screen {
            Screen::Diagnostics => {
                let (paths, config) = (self.paths.clone(), self.config.clone());
                let (events, waker) = (self.events_tx.clone(), self.waker.clone());
                egui::ScrollArea::vertical().show(ui, |ui| {
                    diagnostics::show(&mut self.diag, ui, &paths, &config, &events, &waker);
                });
                return;
            }
            Screen::Audit => {
                let (paths, config) = (self.paths.clone(), self.config.clone());
                let (events, waker) = (self.events_tx.clone(), self.waker.clone());
                egui::ScrollArea::vertical().show(ui, |ui| {
                    audit_view::show(&mut self.audit, ui, &paths, &config, &events, &waker);
                });
                return;
            }
            _ => {}
        }
        let desk = self.desk.desk_mode;
        let events = self.events_tx.clone();
        let waker = self.waker.clone();
        let console = self.console_status.clone();
        if self.selected_pane_mut().is_none() {
            ui.label("No reader selected.");
            return;
        }
        let mut action = None;
        let screen = self.screen;
        let history = &self.checks;
        let Some(pane) = self
            .readers
            .iter_mut()
            .find(|p| Some(&p.name) == self.selected.as_ref())
        else {
            return;
        };
        egui::ScrollArea::vertical().show(ui, |ui| {
            match screen {
                Screen::Enroll => action = wizard::show(pane, ui, desk, &events, &waker, &console),
                Screen::SpotCheck => spot_check::show(pane, history, ui),
                Screen::CardCare => care::show(pane, ui),
                Screen::Diagnostics | Screen::Audit => {}
            }
            ui.add_space(12.0);
            ui.separator();
            card_details::show(pane, ui);
        });
        if let Some(wizard::Action::Upload(outcome)) = action {
            self.upload(&outcome);
        }
    }

    fn outbox_view(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.heading("Console outbox");
            if ui.button("Sync now").clicked() {
                self.sync_console();
            }
        });
        let c = &self.console_status;
        if !c.configured {
            ui.label("No console is configured: set [console] url, ca, client_cert, client_key and bundle_key in the config file.");
        }
        if let Some(e) = &c.last_error {
            ui.colored_label(ui.visuals().warn_fg_color, e);
        }
        if let Some(b) = &c.bundle {
            ui.label(format!(
                "Trust bundle version {}: {} allowed, {} revoked, issued {} ago{}",
                b.version,
                b.allowed,
                b.revoked,
                cardstation_pki::certificate::format_age(b.age_secs),
                if b.expired { " — EXPIRED" } else { "" }
            ));
        }
        if c.outbox.is_empty() {
            ui.label("Nothing waiting: everything was delivered.");
            return;
        }
        egui::Grid::new("outbox")
            .num_columns(4)
            .striped(true)
            .show(ui, |ui| {
                for i in &c.outbox {
                    ui.label(format!("{:?}", i.kind));
                    ui.label(
                        egui::RichText::new(&i.fingerprint[..16.min(i.fingerprint.len())])
                            .monospace(),
                    );
                    ui.label(format!("{} ({} attempts)", i.state, i.attempts));
                    ui.label(i.last_error.as_deref().unwrap_or(""));
                    ui.end_row();
                }
            });
    }
}

impl eframe::App for StationApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.frame(ui);
    }
}

/// Open the station window. Returns when the window is closed.
pub fn run(paths: Paths, config: Config, mode: ReaderMode) -> Result<(), String> {
    let mut viewport = egui::ViewportBuilder::default()
        .with_title("Cardstation")
        .with_app_id("cardstation")
        .with_inner_size([1280.0, 800.0])
        .with_min_inner_size([900.0, 600.0]);
    if let Some(icon) = icon::window_icon() {
        viewport = viewport.with_icon(icon);
    }
    let options = eframe::NativeOptions {
        viewport,
        ..Default::default()
    };
    eframe::run_native(
        "Cardstation",
        options,
        Box::new(move |_cc| Ok(Box::new(StationApp::new(paths, config, mode)))),
    )
    .map_err(|e| {
        format!(
            "the window could not open: {e}. Is a display available (DISPLAY or WAYLAND_DISPLAY)?"
        )
    })
}
