//! The readers the window offers: PC/SC readers as the watcher reports them, readers
//! served in process, and the demo card with its demo console when it is wanted.

use std::sync::Arc;

use crate::app::reader_worker::{CardSource, Job, ReaderWorker};
use crate::config::{Config, Paths};
use cardstation_card::Transport;
use cardstation_pcsc::{CardPresence, ReaderStatus};
use cardstation_virtual_card::{VirtualCard, VirtualReader, DEMO_READER_NAME};

use super::command::Command;
use super::demo::{DemoConsole, DemoSession};
use super::events::{AppEvent, DemoConsoleReady, Outlet};
use super::pane::{Origin, ReaderPane};

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

/// What the reader list needs to know of the window around it.
pub struct ReaderEnv<'a> {
    pub outlet: &'a Outlet,
    pub paths: &'a Paths,
    pub config: &'a Config,
    pub mode: ReaderMode,
    pub desk_mode: bool,
    /// The Spot check screen is open: a card inserted now is checked at once.
    pub spot_screen: bool,
}

#[derive(Default)]
pub struct ReaderList {
    pub panes: Vec<ReaderPane>,
    pub selected: Option<String>,
    pub demo: Option<DemoSession>,
    pub pcsc_problem: Option<String>,
    /// Something went wrong that the operator should read (taken by the shell).
    pub notice: Option<String>,
}

impl ReaderList {
    /// Whether the demo card is offered: asked for, or nothing else to work with
    /// (no hardware reader and no console in the settings).
    fn wants_demo(env: &ReaderEnv<'_>, hardware: usize) -> bool {
        match env.mode {
            ReaderMode::DemoOnly => true,
            ReaderMode::Pcsc | ReaderMode::Manual => {
                hardware == 0 && env.config.console.url.is_none()
            }
        }
    }

    /// Merge a fresh reader list: keep panes (and their screens) of readers still
    /// there, add new ones, drop unplugged ones; offer the demo card when wanted.
    pub fn set(&mut self, env: &ReaderEnv<'_>, list: Vec<ReaderStatus>) {
        // Readers of the virtual driver (vsmartcard) that hold no card are not hardware:
        // setup-debian installs two, and they would only ever say "no card".
        let real: Vec<ReaderStatus> = match env.mode {
            ReaderMode::DemoOnly => Vec::new(),
            _ => list
                .into_iter()
                .filter(|r| !(is_virtual_driver(&r.name) && r.card == CardPresence::Absent))
                .collect(),
        };
        let attached = self
            .panes
            .iter()
            .filter(|p| p.origin == Origin::Attached)
            .count();
        let want_demo = Self::wants_demo(env, real.len() + attached);
        // Unplugged readers go (a demo card in the middle of an enrollment stays).
        self.panes.retain(|p| match p.origin {
            Origin::Demo => want_demo || p.wizard.is_running(),
            Origin::Attached => true,
            Origin::Pcsc => real.iter().any(|r| r.name == p.name),
        });
        for status in real {
            self.update(env, status);
        }
        if want_demo {
            self.offer_demo(env);
        }
        self.keep_a_selection();
    }

    fn keep_a_selection(&mut self) {
        let gone = self
            .selected
            .as_ref()
            .is_none_or(|s| !self.panes.iter().any(|p| &p.name == s));
        if gone {
            // Prefer a reader with a card in it.
            self.selected = self
                .panes
                .iter()
                .find(|p| p.present())
                .or(self.panes.first())
                .map(|p| p.name.clone());
        }
    }

    fn update(&mut self, env: &ReaderEnv<'_>, status: ReaderStatus) {
        if let Some(p) = self.pane_mut(&status.name) {
            let before = p.status.card.clone();
            p.status = status.clone();
            if before != status.card {
                self.on_presence_change(env, &status.name, status.card);
            }
            return;
        }
        let source = CardSource::Pcsc(status.name.clone());
        self.add(
            env,
            source,
            status,
            Origin::Pcsc,
            env.paths.clone(),
            env.config.clone(),
        );
    }

    /// Serve `reader` in process as if it were a hardware reader (tests, kiosks).
    pub fn attach(&mut self, env: &ReaderEnv<'_>, reader: VirtualReader) {
        let status = virtual_status(&reader);
        let (paths, config) = (env.paths.clone(), env.config.clone());
        self.add(
            env,
            CardSource::Virtual(reader),
            status,
            Origin::Attached,
            paths,
            config,
        );
        // A hardware reader now: the demo card steps aside.
        let pcsc = self
            .panes
            .iter()
            .filter(|p| p.origin == Origin::Pcsc)
            .map(|p| p.status.clone())
            .collect();
        self.set(env, pcsc);
    }

    fn add(
        &mut self,
        env: &ReaderEnv<'_>,
        source: CardSource,
        status: ReaderStatus,
        origin: Origin,
        paths: Paths,
        config: Config,
    ) {
        let name = source.name();
        let outlet = env.outlet.clone();
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
                self.panes.push(pane);
                if present {
                    self.inspect(&name);
                }
            }
            Err(e) => self.notice = Some(format!("cannot start a worker for {name}: {e}")),
        }
    }

    /// The demo card: created with its console on first want; its reader joins the
    /// list once the console listens (or could not start), so that its jobs know it.
    fn offer_demo(&mut self, env: &ReaderEnv<'_>) {
        if self.demo.is_none() {
            match DemoSession::start(env.outlet) {
                Ok(d) => self.demo = Some(d),
                Err(e) => {
                    self.notice = Some(e);
                    return;
                }
            }
        }
        let Some(demo) = &self.demo else { return };
        if matches!(demo.console, DemoConsole::Starting) || self.panes.iter().any(|p| p.is_demo) {
            return;
        }
        let (paths, config) = (demo.paths(), demo.config(env.config));
        let reader = demo.reader.clone();
        let status = virtual_status(&reader);
        self.add(
            env,
            CardSource::Virtual(reader),
            status,
            Origin::Demo,
            paths,
            config,
        );
    }

    /// The demo console listens (or could not start). Returns the demo station's
    /// paths and settings, for the window's link to that console.
    pub fn on_demo_console(
        &mut self,
        env: &ReaderEnv<'_>,
        result: Result<DemoConsoleReady, String>,
    ) -> Option<(Paths, Config)> {
        let demo = self.demo.as_mut()?;
        let link = match result {
            Ok(ready) => {
                tracing::info!("demo console at {} ({})", ready.url, ready.dir.display());
                demo.console = DemoConsole::Ready(ready.url);
                Some((demo.paths(), demo.config(env.config)))
            }
            Err(e) => {
                demo.console = DemoConsole::Failed;
                self.notice = Some(format!(
                    "The demo console could not start, so the demo card cannot be uploaded or checked against a console. {e}"
                ));
                None
            }
        };
        let hardware = self
            .panes
            .iter()
            .filter(|p| p.origin != Origin::Demo)
            .count();
        if Self::wants_demo(env, hardware) {
            self.offer_demo(env);
            self.keep_a_selection();
        }
        link
    }

    /// The demo station's paths and settings, for the demo card's own records.
    pub fn demo_station(&self, config: &Config) -> Option<(Paths, Config)> {
        self.demo.as_ref().map(|d| (d.paths(), d.config(config)))
    }

    /// The demo card's reader, while the demo card is offered in the list.
    pub fn demo_reader(&self) -> Option<VirtualReader> {
        let shown = self.panes.iter().any(|p| p.is_demo);
        self.demo
            .as_ref()
            .filter(|_| shown)
            .map(|d| d.reader.clone())
    }

    pub fn demo_starting(&self) -> bool {
        self.demo
            .as_ref()
            .is_some_and(|d| matches!(d.console, DemoConsole::Starting))
    }

    pub fn demo_card(&self) -> Option<Arc<VirtualCard>> {
        self.demo.as_ref().and_then(|d| d.card())
    }

    pub fn demo_card_present(&self) -> bool {
        self.demo.as_ref().is_some_and(|d| d.present())
    }

    pub fn demo_remove_card(&mut self, env: &ReaderEnv<'_>) {
        let Some(demo) = &mut self.demo else { return };
        demo.remove();
        self.demo_presence(env);
    }

    pub fn demo_insert_card(&mut self, env: &ReaderEnv<'_>, new_blank: bool) {
        if new_blank && self.demo_card_present() {
            // The old card comes out first, as it would at a desk.
            self.demo_remove_card(env);
        }
        let Some(demo) = &mut self.demo else { return };
        if let Err(e) = demo.insert(new_blank) {
            self.notice = Some(e);
        }
        self.demo_presence(env);
    }

    fn demo_presence(&mut self, env: &ReaderEnv<'_>) {
        let Some(demo) = &self.demo else { return };
        let status = virtual_status(&demo.reader);
        if let Some(p) = self.pane_mut(DEMO_READER_NAME) {
            let card = status.card.clone();
            p.status = status;
            self.on_presence_change(env, DEMO_READER_NAME, card);
        }
    }

    fn on_presence_change(&mut self, env: &ReaderEnv<'_>, reader: &str, now: CardPresence) {
        let Some(p) = self.pane_mut(reader) else {
            return;
        };
        p.on_presence(now.clone(), env.desk_mode);
        if now == CardPresence::Present {
            // On the Spot check screen, a card is checked the moment it is inserted.
            if env.spot_screen && !p.wizard.is_running() {
                if let Command::Job(job) = p.spot.start() {
                    p.worker.submit(job);
                }
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

    pub fn pane(&self, name: &str) -> Option<&ReaderPane> {
        self.panes.iter().find(|p| p.name == name)
    }

    pub fn pane_mut(&mut self, name: &str) -> Option<&mut ReaderPane> {
        self.panes.iter_mut().find(|p| p.name == name)
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
