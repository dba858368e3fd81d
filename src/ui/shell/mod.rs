//! The window's shell: takes in events, keeps the readers and the console links,
//! lays out the bars, panel and tabs, and carries out what the screens ask.
//! Here: its state and the event pump; `layout` draws a frame, `commands` carries out
//! what screens ask and what workers report.

mod commands;
mod layout;

use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::Duration;

use eframe::egui;

use crate::app::console_worker::{ConsoleJob, ConsoleStatus, ConsoleWorker};
use crate::app::enroll::EnrollOutcome;
use crate::app::reader_worker::JobEvent;
use crate::app::spot_check::SpotCheck;
use crate::config::{Config, Paths};
use cardstation_pcsc::watcher::{WatchEvent, Watcher};

use cardstation_pki::certificate::to_pem;
use cardstation_protocol::messages::UploadRequest;
use cardstation_virtual_card::{VirtualCard, VirtualReader};

use super::audit_view::AuditScreen;
use super::bars::{self, StatusBar, TopAction, TopBar};
use super::command::Command;
use super::diagnostics::DiagnosticsScreen;
use super::events::{AppEvent, Link, Outlet, Waker};
use super::operator_prompt::OperatorPrompt;
use super::outbox_view::{self, OutboxView};
use super::pane::{Origin, ReaderPane};
use super::readers::{ReaderEnv, ReaderList, ReaderMode};
use super::readers_panel::{self, PanelAction, PanelView};
use super::tasks;
use super::wizard::WizardContext;

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
    readers: ReaderList,
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

/// The window as the reader list needs it, borrowed field by field.
macro_rules! reader_env {
    ($app:expr) => {
        ReaderEnv {
            outlet: &$app.outlet,
            paths: &$app.paths,
            config: &$app.config,
            mode: $app.mode,
            desk_mode: $app.desk.desk_mode,
            spot_screen: $app.screen == Screen::SpotCheck,
        }
    };
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
            readers: ReaderList::default(),
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
            ReaderMode::DemoOnly | ReaderMode::Manual => {
                self.readers.set(&reader_env!(self), Vec::new())
            }
            ReaderMode::Pcsc => {
                let outlet = self.outlet.clone();
                match Watcher::spawn(move |e| outlet.send(AppEvent::Watch(e))) {
                    Ok(w) => self.watcher = Some(w),
                    Err(e) => {
                        self.readers.pcsc_problem = Some(format!("cannot watch readers: {e}"));
                        self.readers.set(&reader_env!(self), Vec::new());
                    }
                }
            }
        }
    }

    fn spawn_link(&mut self, link: Link, paths: Paths, config: Config) -> Option<ConsoleWorker> {
        let outlet = self.outlet.clone();
        match ConsoleWorker::spawn(paths, config, move |status| {
            outlet.send(AppEvent::Console(link, Box::new(status)))
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
                    self.readers.pcsc_problem = None;
                    self.readers.set(&reader_env!(self), list);
                }
                AppEvent::Watch(WatchEvent::Unavailable(msg)) => {
                    self.readers.pcsc_problem = Some(msg);
                    self.readers.set(&reader_env!(self), Vec::new());
                }
                AppEvent::Job { reader, event } => self.on_job_event(&reader, event),
                AppEvent::Console(link, status) => {
                    let l = match link {
                        Link::Configured => &mut self.console,
                        Link::Demo => &mut self.demo_console,
                    };
                    l.status = *status;
                    l.received_at = now();
                }
                AppEvent::DemoConsole(result) => {
                    if let Some((paths, config)) =
                        self.readers.on_demo_console(&reader_env!(self), result)
                    {
                        self.demo_console.worker = self.spawn_link(Link::Demo, paths, config);
                        self.demo_console.status.configured = true;
                    }
                }
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
                            action: crate::store::AuditAction::Export,
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
        for p in &mut self.readers.panes {
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

    /// Serve `reader` in process as if it were a hardware reader (tests, kiosks).
    pub fn attach_reader(&mut self, reader: VirtualReader) {
        self.readers.attach(&reader_env!(self), reader);
    }

    /// The demo reader's card, when it is in the reader (tests look at it).
    pub fn demo_card(&self) -> Option<Arc<VirtualCard>> {
        self.readers.demo_card()
    }

    pub fn demo_card_present(&self) -> bool {
        self.readers.demo_card_present()
    }

    /// Take the demo card out of its reader, as an operator pulls a card.
    pub fn demo_remove_card(&mut self) {
        self.readers.demo_remove_card(&reader_env!(self));
    }

    /// Put a demo card back: the one taken out, or a new blank one.
    pub fn demo_insert_card(&mut self, new_blank: bool) {
        self.readers.demo_insert_card(&reader_env!(self), new_blank);
    }

    pub fn inspect(&mut self, reader: &str) {
        self.readers.inspect(reader);
    }

    fn pane(&self, name: &str) -> Option<&ReaderPane> {
        self.readers.pane(name)
    }

    pub fn pane_mut(&mut self, name: &str) -> Option<&mut ReaderPane> {
        self.readers.pane_mut(name)
    }

    pub fn selected_pane_mut(&mut self) -> Option<&mut ReaderPane> {
        let name = self.readers.selected.clone()?;
        self.pane_mut(&name)
    }

    /// Every reader the window shows.
    pub fn readers(&self) -> &[ReaderPane] {
        &self.readers.panes
    }

    pub fn selected(&self) -> Option<&str> {
        self.readers.selected.as_deref()
    }

    /// Why the card reader service cannot be used, when it cannot.
    pub fn pcsc_problem(&self) -> Option<&str> {
        self.readers.pcsc_problem.as_deref()
    }
}
