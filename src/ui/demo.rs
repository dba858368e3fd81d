//! The demo: a virtual PIV card built into the window, and beside it the reference
//! console run in process on loopback with a throw-away identity, so the whole loop
//! (enroll → upload → PASS → revoke → FAIL) can be walked with nothing set up.
//! Everything demo lives in a temporary directory removed with the window: a demo
//! enrollment never reaches the station's records or a production console.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, ConsoleConfig, Paths};
use cardstation_console::setup;
use cardstation_virtual_card::{CardStorage, VirtualCard, VirtualReader, DEMO_READER_NAME};

use super::events::{AppEvent, DemoConsoleReady, Outlet};

pub struct DemoSession {
    /// Removed when the window closes.
    _dir: tempfile::TempDir,
    /// Set when the session goes: a console still setting up removes what it wrote.
    closed: Arc<AtomicBool>,
    root: PathBuf,
    pub reader: VirtualReader,
    /// The demo card while it is out of the reader.
    card_out: Option<Arc<VirtualCard>>,
    pub console: DemoConsole,
}

pub enum DemoConsole {
    Starting,
    Ready(String),
    Failed,
}

impl DemoSession {
    /// Create the demo card and start the demo console; `AppEvent::DemoConsole` tells
    /// when it listens.
    pub fn start(outlet: &Outlet) -> Result<DemoSession, String> {
        let dir = tempfile::Builder::new()
            .prefix("cardstation-demo-")
            .tempdir()
            .map_err(|e| format!("no temporary folder for the demo: {e}"))?;
        let card = VirtualCard::start(CardStorage::Memory)
            .map_err(|e| format!("the demo card could not start: {e}"))?;
        let root = dir.path().to_path_buf();
        let closed = Arc::new(AtomicBool::new(false));
        spawn_console(root.clone(), closed.clone(), outlet.clone());
        Ok(DemoSession {
            _dir: dir,
            closed,
            root,
            reader: VirtualReader::new(Arc::new(card), DEMO_READER_NAME),
            card_out: None,
            console: DemoConsole::Starting,
        })
    }

    /// The demo station's own data (database, site secret, audit trail).
    pub fn paths(&self) -> Paths {
        Paths {
            data_dir: self.root.join("station"),
            config_file: self.root.join("station").join("unused.toml"),
            config_explicit: false,
        }
    }

    /// The station's settings for the demo card: its own site secret, a subject that
    /// says "demo", and the demo console once it listens.
    pub fn config(&self, station: &Config) -> Config {
        let mut c = station.clone();
        // The demo console's station identity (its client certificate) is its first station.
        c.station.id = Some(cardstation_console::admin::FIRST_STATION.to_string());
        c.station.site_secret_file = None;
        c.enroll.subject = "CN=Demo device {guid},O=Cardstation demo".into();
        c.verify = Default::default();
        c.console = match &self.console {
            DemoConsole::Ready(url) => {
                let dir = self.root.join("console");
                ConsoleConfig {
                    url: Some(url.clone()),
                    ca: Some(dir.join(setup::CA_CERT)),
                    client_cert: Some(dir.join(setup::STATION_CERT)),
                    client_key: Some(dir.join(setup::STATION_KEY)),
                    bundle_key: Some(dir.join(setup::BUNDLE_PUB)),
                    ..Default::default()
                }
            }
            _ => ConsoleConfig::default(),
        };
        c
    }

    pub fn card(&self) -> Option<Arc<VirtualCard>> {
        self.reader.card()
    }

    pub fn present(&self) -> bool {
        self.reader.is_present()
    }

    /// Take the card out, as an operator pulls a card.
    pub fn remove(&mut self) {
        if let Some(c) = self.reader.remove() {
            self.card_out = Some(c);
        }
    }

    /// Put the card back (or a new blank one).
    pub fn insert(&mut self, new_blank: bool) -> Result<(), String> {
        if self.reader.is_present() {
            if !new_blank {
                return Ok(());
            }
            self.remove();
        }
        let card = match self.card_out.take() {
            Some(c) if !new_blank => c,
            _ => Arc::new(
                VirtualCard::start(CardStorage::Memory)
                    .map_err(|e| format!("the demo card could not start: {e}"))?,
            ),
        };
        self.reader.insert(card);
        Ok(())
    }
}

impl Drop for DemoSession {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
    }
}

/// The reference console on 127.0.0.1 (a free port), on a thread of its own, with its
/// files in `root`/console.
fn spawn_console(root: PathBuf, closed: Arc<AtomicBool>, outlet: Outlet) {
    let dir = root.join("console");
    let fail = outlet.clone();
    let spawned = std::thread::Builder::new()
        .name("demo console".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    outlet.send(AppEvent::DemoConsole(Err(e.to_string())));
                    return;
                }
            };
            let opts = cardstation_console::ServeOptions {
                data: dir.clone(),
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                bundle_validity: Duration::from_secs(86_400),
                database: None,
            };
            let ready = outlet.clone();
            let result = runtime.block_on(cardstation_console::serve(
                opts,
                move |addr, _files, _database| {
                    if closed.load(Ordering::SeqCst) {
                        // The window closed while the console set up: what it wrote goes too.
                        let _ = std::fs::remove_dir_all(&root);
                        return;
                    }
                    ready.send(AppEvent::DemoConsole(Ok(DemoConsoleReady {
                        url: format!("https://127.0.0.1:{}", addr.port()),
                        dir: dir.clone(),
                    })));
                },
            ));
            match result {
                // The console stops only on SIGINT/SIGTERM, which it took over from the
                // process: honour the signal for the whole station (the window closes,
                // and the demo's directory goes with it).
                Ok(()) => outlet.send(AppEvent::Quit),
                Err(e) => outlet.send(AppEvent::DemoConsole(Err(e.to_string()))),
            }
        });
    if let Err(e) = spawned {
        fail.send(AppEvent::DemoConsole(Err(e.to_string())));
    }
}
