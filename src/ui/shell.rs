//! The window's shell: takes in events, keeps the readers and the console links,
//! lays out the bars, panel and tabs, and carries out what the screens ask.

use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use eframe::egui;

use crate::app::console_worker::{ConsoleJob, ConsoleStatus, ConsoleWorker};
use crate::app::enroll::EnrollOutcome;
use crate::app::reader_worker::{CardSource, Job, JobEvent, ReaderWorker};
use crate::app::spot_check::SpotCheck;
use crate::config::{Config, Paths};
use cardstation_card::Transport;
use cardstation_pcsc::watcher::{WatchEvent, Watcher};
use cardstation_pcsc::{CardPresence, ReaderStatus};
use cardstation_pki::certificate::to_pem;
use cardstation_protocol::messages::UploadRequest;
use cardstation_virtual_card::{VirtualCard, VirtualReader, DEMO_READER_NAME};

use super::audit_view::AuditScreen;
use super::bars::{self, StatusBar, TopAction, TopBar};
use super::command::Command;
use super::demo::{DemoConsole, DemoSession};
use super::diagnostics::DiagnosticsScreen;
use super::events::{AppEvent, Link, Outlet, Waker};
use super::operator_prompt::OperatorPrompt;
use super::outbox_view::{self, OutboxView};
use super::pane::{Origin, ReaderPane};
use super::readers_panel::{self, PanelAction, PanelView};
use super::tasks;
use super::wizard::WizardContext;

/// Which readers the window offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderMode {
    /// PC/SC readers; the demo card when there is no hardware reader and no console.
    Pcsc,
    /// Only the built-in demo card (`--demo`).
    DemoOnly,
    /// No watcher: readers arrive as `AppEvent::Watch` events (UI tests).
    Manual,
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

/// A link to a console: its worker and what it last said.
#[derive(Default)]
struct ConsoleLink {
    worker: Option<ConsoleWorker>,
    status: ConsoleStatus,
    received_at: i64,
}

impl ConsoleLink {
    fn submit(&self, job: ConsoleJob) {
        if let Some(w) = &self.worker {
            w.submit(job);
        }
    }
}

pub struct StationApp {
    paths: Paths,
    config: Config,
    mode: ReaderMode,
    /// Read once: the host name comes from a file, and frames do no disk I/O.
    station_id: String,
    outlet: Outlet,
    events: Receiver<AppEvent>,
    watcher: Option<Watcher>,
    console: ConsoleLink,
    demo_console: ConsoleLink,
    demo: Option<DemoSession>,
    pub pcsc_problem: Option<String>,
    pub readers: Vec<ReaderPane>,
    pub selected: Option<String>,
    pub desk: DeskSession,
    pub screen: Screen,
    /// Spot checks of this session, newest first, with the time they ran.
    pub checks: Vec<(i64, Box<SpotCheck>)>,
    pub diag: DiagnosticsScreen,
    pub audit: AuditScreen,
    prompt: Option<OperatorPrompt>,
    view: ViewState,
}

/// How the window looks: theme, the outbox window, a notice to dismiss.
struct ViewState {
    dark: bool,
    show_outbox: bool,
    notice: Option<String>,
    started: bool,
    styled: bool,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl StationApp {
    pub fn new(paths: Paths, config: Config, mode: ReaderMode) -> Self {
        let (tx, events) = mpsc::channel();
        let prompt = config
            .station
            .operator
            .is_none()
            .then(|| OperatorPrompt::new(config.operator()));
        StationApp {
            station_id: config.station_id(),
            paths,
            config,
            mode,
            outlet: Outlet {
                tx,
                waker: Waker::default(),
            },
            events,
            watcher: None,
            console: ConsoleLink::default(),
            demo_console: ConsoleLink::default(),
            demo: None,
            pcsc_problem: None,
            readers: Vec::new(),
            selected: None,
            desk: DeskSession::default(),
            screen: Screen::Enroll,
            checks: Vec::new(),
            diag: DiagnosticsScreen::default(),
            audit: AuditScreen::default(),
            prompt,
            view: ViewState {
                dark: true,
                show_outbox: false,
                notice: None,
                started: false,
                styled: false,
            },
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn operator(&self) -> String {
        self.config.operator()
    }

    /// The console named in the settings, as last heard.
    pub fn console_status(&self) -> &ConsoleStatus {
        &self.console.status
    }

    /// The window's own demo console, as last heard.
    pub fn demo_console_status(&self) -> &ConsoleStatus {
        &self.demo_console.status
    }

    pub fn events(&self) -> mpsc::Sender<AppEvent> {
        self.outlet.tx.clone()
    }

    pub fn waker(&self) -> Waker {
        self.outlet.waker.clone()
    }

    fn console_configured(&self) -> bool {
        self.config.console.url.is_some()
    }

    /// Start the console link and the watcher once the window has a context to wake.
    fn start(&mut self, ctx: &egui::Context) {
        self.outlet.waker.set(ctx);
        if self.view.started {
            return;
        }
        self.view.started = true;
        self.console.worker =
            self.spawn_link(Link::Configured, self.paths.clone(), self.config.clone());
        match self.mode {
            ReaderMode::DemoOnly | ReaderMode::Manual => self.set_readers(Vec::new()),
            ReaderMode::Pcsc => {
                let outlet = self.outlet.clone();
                match Watcher::spawn(move |e| outlet.send(AppEvent::Watch(e))) {
                    Ok(w) => self.watcher = Some(w),
                    Err(e) => {
                        self.pcsc_problem = Some(format!("cannot watch readers: {e}"));
                        self.set_readers(Vec::new());
                    }
                }
            }
        }
    }

    fn spawn_link(&mut self, link: Link, paths: Paths, config: Config) -> Option<ConsoleWorker> {
        let outlet = self.outlet.clone();
        match ConsoleWorker::spawn(paths, config, move |status| {
            outlet.send(AppEvent::Console(link, status))
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                self.view.notice = Some(format!("cannot start the console link: {e}"));
                None
            }
        }
    }

    /// Handle everything that arrived since the last frame.
    fn pump(&mut self, ctx: &egui::Context) {
        while let Ok(event) = self.events.try_recv() {
            match event {
                AppEvent::Quit => ctx.send_viewport_cmd(egui::ViewportCommand::Close),
                AppEvent::Watch(WatchEvent::Readers(list)) => {
                    self.pcsc_problem = None;
                    self.set_readers(list);
                }
                AppEvent::Watch(WatchEvent::Unavailable(msg)) => {
                    self.pcsc_problem = Some(msg);
                    self.set_readers(Vec::new());
                }
                AppEvent::Job { reader, event } => self.on_job_event(&reader, event),
                AppEvent::Console(link, status) => {
                    let l = match link {
                        Link::Configured => &mut self.console,
                        Link::Demo => &mut self.demo_console,
                    };
                    l.status = status;
                    l.received_at = now();
                }
                AppEvent::DemoConsole(result) => self.on_demo_console(result),
                AppEvent::Diagnosed(report) => self.diag.on_report(report),
                AppEvent::BundleSaved(result) => self.diag.saved = Some(result),
                AppEvent::Audit(result) => self.audit.on_loaded(result),
                AppEvent::OldCard {
                    fingerprint,
                    record,
                } => {
                    if let Some(p) = self.selected_pane_mut() {
                        p.care.on_old_card(&fingerprint, record);
                    }
                }
                AppEvent::Exported {
                    reader,
                    fingerprint,
                    result,
                } => {
                    if let (Ok(saved), Some(p)) = (&result, self.pane(&reader)) {
                        self.link_for(p.origin).submit(ConsoleJob::Audit {
                            action: "export",
                            subject: fingerprint,
                            details: serde_json::json!({"reader": reader, "file": saved.path}),
                        });
                    }
                    if let Some(p) = self.pane_mut(&reader) {
                        p.wizard.export_result = Some(result);
                    }
                }
            }
        }
    }

    /// Jobs past their time limit, or that ignored a cancel, are stopped here; the
    /// window wakes up when the next one could be due.
    fn watch_jobs(&mut self, ctx: &egui::Context) {
        let mut next: Option<Duration> = None;
        let mut failed = Vec::new();
        for p in &mut self.readers {
            if let Some(stall) = p.worker.stalled() {
                if let Err(e) = p.worker.abandon() {
                    failed.push(format!("cannot restart the worker for {}: {e}", p.name));
                }
                p.on_stall(stall);
            }
            if let Some(d) = p.worker.next_deadline() {
                next = Some(next.map_or(d, |n| n.min(d)));
            }
        }
        if let Some(msg) = failed.pop() {
            self.view.notice = Some(msg);
        }
        if let Some(d) = next {
            ctx.request_repaint_after(d + Duration::from_millis(50));
        }
    }

    /// Whether the demo card is offered: asked for, or nothing else to work with
    /// (no hardware reader and no console in the settings).
    fn wants_demo(&self, hardware: usize) -> bool {
        match self.mode {
            ReaderMode::DemoOnly => true,
            ReaderMode::Pcsc | ReaderMode::Manual => hardware == 0 && !self.console_configured(),
        }
    }

    /// Merge a fresh reader list: keep panes (and their screens) of readers still
    /// there, add new ones, drop unplugged ones; offer the demo card when wanted.
    fn set_readers(&mut self, list: Vec<ReaderStatus>) {
        // Readers of the virtual driver (vsmartcard) that hold no card are not hardware:
        // setup-debian installs two, and they would only ever say "no card".
        let real: Vec<ReaderStatus> = match self.mode {
            ReaderMode::DemoOnly => Vec::new(),
            _ => list
                .into_iter()
                .filter(|r| !(is_virtual_driver(&r.name) && r.card == CardPresence::Absent))
                .collect(),
        };
        let attached = self
            .readers
            .iter()
            .filter(|p| p.origin == Origin::Attached)
            .count();
        let want_demo = self.wants_demo(real.len() + attached);
        // Unplugged readers go (a demo card in the middle of an enrollment stays).
        self.readers.retain(|p| match p.origin {
            Origin::Demo => want_demo || p.wizard.is_running(),
            Origin::Attached => true,
            Origin::Pcsc => real.iter().any(|r| r.name == p.name),
        });
        for status in real {
            self.update_reader(status);
        }
        if want_demo {
            self.offer_demo();
        }
        self.keep_a_selection();
    }

    fn keep_a_selection(&mut self) {
        let gone = self
            .selected
            .as_ref()
            .is_none_or(|s| !self.readers.iter().any(|p| &p.name == s));
        if gone {
            // Prefer a reader with a card in it.
            self.selected = self
                .readers
                .iter()
                .find(|p| p.present())
                .or(self.readers.first())
                .map(|p| p.name.clone());
        }
    }

    fn update_reader(&mut self, status: ReaderStatus) {
        let desk_mode = self.desk.desk_mode;
        if let Some(p) = self.pane_mut(&status.name) {
            let before = p.status.card.clone();
            p.status = status.clone();
            if before != status.card {
                self.on_presence_change(&status.name, status.card, desk_mode);
            }
            return;
        }
        let source = CardSource::Pcsc(status.name.clone());
        self.add_pane(
            source,
            status,
            Origin::Pcsc,
            self.paths.clone(),
            self.config.clone(),
        );
    }

    /// Serve `reader` in process as if it were a hardware reader (tests, kiosks).
    pub fn attach_reader(&mut self, reader: VirtualReader) {
        let status = virtual_status(&reader);
        self.add_pane(
            CardSource::Virtual(reader),
            status,
            Origin::Attached,
            self.paths.clone(),
            self.config.clone(),
        );
        // A hardware reader now: the demo card steps aside.
        self.set_readers(self.pcsc_statuses());
    }

    fn pcsc_statuses(&self) -> Vec<ReaderStatus> {
        self.readers
            .iter()
            .filter(|p| p.origin == Origin::Pcsc)
            .map(|p| p.status.clone())
            .collect()
    }

    fn add_pane(
        &mut self,
        source: CardSource,
        status: ReaderStatus,
        origin: Origin,
        paths: Paths,
        config: Config,
    ) {
        let name = source.name();
        let outlet = self.outlet.clone();
        let reader = name.clone();
        let worker = ReaderWorker::spawn(source, paths, config.clone(), move |event| {
            outlet.send(AppEvent::Job {
                reader: reader.clone(),
                event,
            })
        });
        match worker {
            Ok(worker) => {
                let pane = ReaderPane::new(name.clone(), origin, status, worker, &config);
                let present = pane.present();
                self.readers.push(pane);
                if present {
                    self.inspect(&name);
                }
            }
            Err(e) => self.view.notice = Some(format!("cannot start a worker for {name}: {e}")),
        }
    }

    /// The demo card: created with its console on first want; its reader joins the
    /// list once the console listens (or could not start), so that its jobs know it.
    fn offer_demo(&mut self) {
        if self.demo.is_none() {
            match DemoSession::start(&self.outlet) {
                Ok(d) => self.demo = Some(d),
                Err(e) => {
                    self.view.notice = Some(e);
                    return;
                }
            }
        }
        let Some(demo) = &self.demo else { return };
        if matches!(demo.console, DemoConsole::Starting) || self.readers.iter().any(|p| p.is_demo) {
            return;
        }
        let (paths, config) = (demo.paths(), demo.config(&self.config));
        let reader = demo.reader.clone();
        let status = virtual_status(&reader);
        self.add_pane(
            CardSource::Virtual(reader),
            status,
            Origin::Demo,
            paths,
            config,
        );
    }

    fn on_demo_console(&mut self, result: Result<super::events::DemoConsoleReady, String>) {
        let Some(demo) = &mut self.demo else { return };
        match result {
            Ok(ready) => {
                tracing::info!("demo console at {} ({})", ready.url, ready.dir.display());
                demo.console = DemoConsole::Ready(ready.url);
                let (paths, config) = (demo.paths(), demo.config(&self.config));
                self.demo_console.worker = self.spawn_link(Link::Demo, paths, config);
                self.demo_console.status.configured = true;
            }
            Err(e) => {
                demo.console = DemoConsole::Failed;
                self.view.notice = Some(format!(
                    "The demo console could not start, so the demo card cannot be uploaded or checked against a console. {e}"
                ));
            }
        }
        let hardware = self
            .readers
            .iter()
            .filter(|p| p.origin != Origin::Demo)
            .count();
        if self.wants_demo(hardware) {
            self.offer_demo();
            self.keep_a_selection();
        }
    }

    /// The demo reader's card, when it is in the reader (tests look at it).
    pub fn demo_card(&self) -> Option<std::sync::Arc<VirtualCard>> {
        self.demo.as_ref().and_then(|d| d.card())
    }

    pub fn demo_card_present(&self) -> bool {
        self.demo.as_ref().is_some_and(|d| d.present())
    }

    /// Take the demo card out of its reader, as an operator pulls a card.
    pub fn demo_remove_card(&mut self) {
        let Some(demo) = &mut self.demo else { return };
        demo.remove();
        self.demo_presence();
    }

    /// Put a demo card back: the one taken out, or a new blank one.
    pub fn demo_insert_card(&mut self, new_blank: bool) {
        if new_blank && self.demo_card_present() {
            // The old card comes out first, as it would at a desk.
            self.demo_remove_card();
        }
        let Some(demo) = &mut self.demo else { return };
        if let Err(e) = demo.insert(new_blank) {
            self.view.notice = Some(e);
        }
        self.demo_presence();
    }

    fn demo_presence(&mut self) {
        let Some(demo) = &self.demo else { return };
        let status = virtual_status(&demo.reader);
        let desk_mode = self.desk.desk_mode;
        if let Some(p) = self.pane_mut(DEMO_READER_NAME) {
            let card = status.card.clone();
            p.status = status;
            self.on_presence_change(DEMO_READER_NAME, card, desk_mode);
        }
    }

    fn on_presence_change(&mut self, reader: &str, now: CardPresence, desk_mode: bool) {
        let spot_screen = self.screen == Screen::SpotCheck;
        let Some(p) = self.pane_mut(reader) else {
            return;
        };
        p.on_presence(now.clone(), desk_mode);
        if now == CardPresence::Present {
            // On the Spot check screen, a card is checked the moment it is inserted.
            if spot_screen && !p.wizard.is_running() {
                let job = p.spot.start();
                self.run(reader, job);
            }
            self.inspect(reader);
        }
    }

    pub fn inspect(&mut self, reader: &str) {
        if let Some(p) = self.pane_mut(reader) {
            p.inspecting = true;
            p.worker.submit(Job::Inspect);
        }
    }

    fn on_job_event(&mut self, reader: &str, event: JobEvent) {
        let Some(origin) = self.pane(reader).map(|p| p.origin) else {
            return;
        };
        let configured = self.link_for(origin).status.configured;
        let Some(p) = self.pane_mut(reader) else {
            return;
        };
        let follow = p.on_job_event(event, configured);
        if follow.inspect {
            self.inspect(reader);
        }
        if follow.sync || follow.replaced.is_some() {
            self.link_for(origin).submit(ConsoleJob::SyncNow);
        }
        if follow.replaced.is_some() {
            self.audit.stale();
        }
        if let Some(check) = follow.checked {
            self.checks.insert(0, (now(), check));
            self.checks.truncate(200);
        }
        if follow.enrolled {
            self.desk.cards_done += 1;
        }
    }

    /// The console a reader's certificates go to: the demo card's go to the demo
    /// console only, never to the one in the settings.
    fn link_for(&self, origin: Origin) -> &ConsoleLink {
        match origin {
            Origin::Demo => &self.demo_console,
            Origin::Pcsc | Origin::Attached => &self.console,
        }
    }

    /// Queue an enrolled card's certificate for its console.
    fn upload(&self, origin: Origin, outcome: &EnrollOutcome) {
        self.link_for(origin).submit(ConsoleJob::Upload {
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

    fn pane(&self, name: &str) -> Option<&ReaderPane> {
        self.readers.iter().find(|p| p.name == name)
    }

    pub fn pane_mut(&mut self, name: &str) -> Option<&mut ReaderPane> {
        self.readers.iter_mut().find(|p| p.name == name)
    }

    pub fn selected_pane_mut(&mut self) -> Option<&mut ReaderPane> {
        let name = self.selected.clone()?;
        self.pane_mut(&name)
    }

    /// Submit `command` from a screen showing `reader` (or no reader).
    fn run(&mut self, reader: &str, command: Command) {
        let origin = self.pane(reader).map(|p| p.origin).unwrap_or(Origin::Pcsc);
        // The demo card's records live in the demo's own database.
        let (paths, config) = match (&self.demo, origin) {
            (Some(d), Origin::Demo) => (d.paths(), d.config(&self.config)),
            _ => (self.paths.clone(), self.config.clone()),
        };
        match command {
            Command::Job(job) => {
                if let Some(p) = self.pane_mut(reader) {
                    p.worker.submit(job);
                }
            }
            Command::Cancel => {
                if let Some(p) = self.pane_mut(reader) {
                    p.worker.cancel();
                }
            }
            Command::Inspect => self.inspect(reader),
            Command::Upload(outcome) => self.upload(origin, &outcome),
            Command::Revoke {
                fingerprint,
                reason,
            } => self.link_for(origin).submit(ConsoleJob::Revoke {
                fingerprint,
                reason,
            }),
            Command::SyncConsole => self.link_for(origin).submit(ConsoleJob::SyncNow),
            Command::Export {
                der,
                name,
                fingerprint,
            } => {
                tasks::export_certificate(&self.outlet, reader.to_string(), fingerprint, der, name)
            }
            Command::LookUp(fingerprint) => {
                tasks::look_up(&self.outlet, paths, config, fingerprint)
            }
            Command::RunDiagnostics => {
                tasks::diagnostics(&self.outlet, self.paths.clone(), self.config.clone())
            }
            Command::SaveDiagnostics => {
                if let Some(report) = self.diag.report.as_deref().cloned() {
                    tasks::save_diagnostics(
                        &self.outlet,
                        self.paths.clone(),
                        self.config.clone(),
                        report,
                    );
                }
            }
            Command::LoadAudit => tasks::load_audit(&self.outlet, paths, config),
        }
    }

    /// One frame: take in events, then draw. Used by eframe and by the UI tests.
    pub fn frame(&mut self, ui: &mut egui::Ui) {
        if !self.view.styled {
            // A blinking cursor would repaint the window twice a second while nobody types.
            ui.ctx()
                .all_styles_mut(|s| s.visuals.text_cursor.blink = false);
            self.view.styled = true;
        }
        if let Some(prompt) = &mut self.prompt {
            if let Some(name) = prompt.show(ui) {
                self.config.station.operator = Some(name);
                self.prompt = None;
                ui.ctx().request_repaint();
            }
            return;
        }
        self.start(ui.ctx());
        self.pump(ui.ctx());
        self.watch_jobs(ui.ctx());
        ui.ctx().set_theme(if self.view.dark {
            egui::Theme::Dark
        } else {
            egui::Theme::Light
        });
        self.top_bar(ui);
        self.status_bar(ui);
        let panel = PanelView {
            readers: &self.readers,
            selected: self.selected.as_deref(),
            demo_present: self
                .readers
                .iter()
                .any(|p| p.is_demo)
                .then(|| self.demo_card_present()),
            demo_starting: self
                .demo
                .as_ref()
                .is_some_and(|d| matches!(d.console, DemoConsole::Starting)),
            pcsc_problem: self.pcsc_problem.as_deref(),
        };
        match readers_panel::show(ui, &panel) {
            Some(PanelAction::Select(name)) => self.selected = Some(name),
            Some(PanelAction::DemoRemove) => self.demo_remove_card(),
            Some(PanelAction::DemoInsert) => self.demo_insert_card(false),
            Some(PanelAction::DemoInsertBlank) => self.demo_insert_card(true),
            None => {}
        }
        self.outbox(ui.ctx());
        egui::CentralPanel::default().show(ui, |ui| self.main_area(ui));
    }

    fn selected_origin(&self) -> Origin {
        self.selected
            .as_deref()
            .and_then(|s| self.pane(s))
            .map_or(Origin::Pcsc, |p| p.origin)
    }

    fn top_bar(&mut self, ui: &mut egui::Ui) {
        let origin = self.selected_origin();
        let console = match origin {
            Origin::Demo => &self.demo_console.status,
            Origin::Pcsc | Origin::Attached => &self.console.status,
        };
        let bar = TopBar {
            console,
            demo_console: origin == Origin::Demo,
            cards_done: self.desk.cards_done,
            show_outbox: self.view.show_outbox,
            dark: self.view.dark,
        };
        match bars::top(ui, &bar, &mut self.desk.desk_mode) {
            Some(TopAction::ToggleOutbox) => self.view.show_outbox = !self.view.show_outbox,
            Some(TopAction::ToggleTheme) => self.view.dark = !self.view.dark,
            None => {}
        }
    }

    fn status_bar(&mut self, ui: &mut egui::Ui) {
        let operator = self.config.operator();
        let bar = StatusBar {
            station_id: &self.station_id,
            operator: &operator,
            pcsc_problem: self.pcsc_problem.is_some(),
            demo_only: self.mode == ReaderMode::DemoOnly,
            data_dir: &self.paths.data_dir,
            notice: self.view.notice.as_deref(),
        };
        if bars::status(ui, &bar) {
            self.view.notice = None;
        }
    }

    fn outbox(&mut self, ctx: &egui::Context) {
        if !self.view.show_outbox {
            return;
        }
        let origin = self.selected_origin();
        let link = self.link_for(origin);
        let view = OutboxView {
            status: &link.status,
            received_at: link.received_at,
            demo: origin == Origin::Demo,
        };
        let mut open = true;
        let command = outbox_view::show(ctx, &mut open, &view);
        self.view.show_outbox = open;
        if let Some(c) = command {
            let reader = self.selected.clone().unwrap_or_default();
            self.run(&reader, c);
        }
    }

    fn main_area(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.screen, Screen::Enroll, "Enrollment");
            ui.selectable_value(&mut self.screen, Screen::SpotCheck, "Spot check");
            ui.selectable_value(&mut self.screen, Screen::CardCare, "Card care");
            ui.selectable_value(&mut self.screen, Screen::Diagnostics, "Diagnostics");
            if ui
                .selectable_value(&mut self.screen, Screen::Audit, "Audit")
                .clicked()
            {
                self.audit.stale();
            }
        });
        ui.separator();
        let command = match self.screen {
            Screen::Diagnostics => egui::ScrollArea::vertical()
                .show(ui, |ui| self.diag.show(ui))
                .inner
                .map(|c| (String::new(), c)),
            Screen::Audit => {
                // The demo card's trail is the demo's own, shown while it is selected.
                let demo = self.selected_origin() == Origin::Demo;
                if self.audit.demo != demo {
                    self.audit.demo = demo;
                    self.audit.stale();
                }
                let reader = self.selected.clone().unwrap_or_default();
                egui::ScrollArea::vertical()
                    .show(ui, |ui| self.audit.show(ui))
                    .inner
                    .map(|c| (reader, c))
            }
            _ => self.reader_screen(ui),
        };
        if let Some((reader, c)) = command {
            self.run(&reader, c);
        }
    }

    /// The screens about the selected reader's card.
    fn reader_screen(&mut self, ui: &mut egui::Ui) -> Option<(String, Command)> {
        let desk_mode = self.desk.desk_mode;
        let screen = self.screen;
        let Some(name) = self.selected.clone() else {
            ui.label("No reader selected.");
            return None;
        };
        let origin = self.pane(&name)?.origin;
        let demo_console = origin == Origin::Demo;
        let console = match origin {
            Origin::Demo => &self.demo_console.status,
            _ => &self.console.status,
        };
        let history = &self.checks;
        let pane = self.readers.iter_mut().find(|p| p.name == name)?;
        let command = egui::ScrollArea::vertical()
            .show(ui, |ui| {
                let parts = pane.parts();
                let c = match screen {
                    Screen::Enroll => {
                        let cx = WizardContext {
                            card: parts.card,
                            desk_mode,
                            console,
                            demo_console,
                        };
                        let c = parts.wizard.show(ui, &cx);
                        ui.add_space(12.0);
                        ui.separator();
                        return c.or(parts.details.show(ui, &cx.card));
                    }
                    Screen::SpotCheck => parts.spot.show(ui, &parts.card, history),
                    Screen::CardCare => parts.care.show(ui, &parts.card, console),
                    Screen::Diagnostics | Screen::Audit => None,
                };
                ui.add_space(12.0);
                ui.separator();
                c.or(parts.details.show(ui, &parts.card))
            })
            .inner;
        command.map(|c| (name, c))
    }
}

fn is_virtual_driver(name: &str) -> bool {
    name.starts_with("Virtual PCD")
}

fn virtual_status(reader: &VirtualReader) -> ReaderStatus {
    ReaderStatus {
        name: reader.reader().to_string(),
        card: if reader.is_present() {
            CardPresence::Present
        } else {
            CardPresence::Absent
        },
        atr: reader.atr(),
    }
}
