//! Live reader and card presence from PC/SC events (SCardGetStatusChange), never
//! from a polling timer: the watcher thread sleeps inside pcscd until something
//! changes — a card inserted or removed, or a reader plugged in or out (through
//! the `\\?PnP?\Notification` pseudo reader).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use cardstation_card::CardError;

use crate::reader::{reader_status, ReaderStatus};

/// What the watcher reports.
#[derive(Debug, Clone)]
pub enum WatchEvent {
    /// The complete current list of readers (sent on start and after every change).
    Readers(Vec<ReaderStatus>),
    /// PC/SC is not available; the message says what to do. The watcher keeps
    /// trying to reach it.
    Unavailable(String),
}

/// While pcscd is down there is no event source to wait on: retry at this pace.
const SERVICE_RETRY: Duration = Duration::from_secs(2);

pub struct Watcher {
    stop: Arc<AtomicBool>,
    context: Arc<Mutex<Option<Arc<pcsc::Context>>>>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Start watching; `on_event` runs on the watcher thread.
    pub fn spawn(on_event: impl Fn(WatchEvent) + Send + 'static) -> std::io::Result<Watcher> {
        let stop = Arc::new(AtomicBool::new(false));
        let context: Arc<Mutex<Option<Arc<pcsc::Context>>>> = Arc::new(Mutex::new(None));
        let (s, c) = (stop.clone(), context.clone());
        let thread = std::thread::Builder::new()
            .name("reader-watcher".into())
            .spawn(move || watch(&s, &c, &on_event))?;
        Ok(Watcher {
            stop,
            context,
            thread: Some(thread),
        })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Ok(guard) = self.context.lock() {
            if let Some(ctx) = guard.as_ref() {
                // Wakes the thread out of SCardGetStatusChange.
                let _ = ctx.cancel();
            }
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn watch(
    stop: &AtomicBool,
    shared: &Mutex<Option<Arc<pcsc::Context>>>,
    on_event: &dyn Fn(WatchEvent),
) {
    let mut last_unavailable: Option<String> = None;
    while !stop.load(Ordering::SeqCst) {
        let ctx = match pcsc::Context::establish(pcsc::Scope::User) {
            Ok(ctx) => Arc::new(ctx),
            Err(e) => {
                let msg = crate::card_error("", e).to_string();
                if last_unavailable.as_ref() != Some(&msg) {
                    on_event(WatchEvent::Unavailable(msg.clone()));
                    last_unavailable = Some(msg);
                }
                std::thread::sleep(SERVICE_RETRY);
                continue;
            }
        };
        last_unavailable = None;
        if let Ok(mut guard) = shared.lock() {
            *guard = Some(ctx.clone());
        }
        if let Err(e) = watch_with(&ctx, stop, on_event) {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let msg = e.to_string();
            on_event(WatchEvent::Unavailable(msg.clone()));
            last_unavailable = Some(msg);
            std::thread::sleep(SERVICE_RETRY);
        }
        if let Ok(mut guard) = shared.lock() {
            *guard = None;
        }
    }
}

/// Watch with one context until the service goes away (error) or we are stopped (Ok).
fn watch_with(
    ctx: &pcsc::Context,
    stop: &AtomicBool,
    on_event: &dyn Fn(WatchEvent),
) -> Result<(), CardError> {
    let pnp = pcsc::PNP_NOTIFICATION();
    loop {
        // (Re)build the state list: every reader plus the hot-plug pseudo reader.
        let names = match ctx.list_readers_owned() {
            Ok(n) => n,
            Err(pcsc::Error::NoReadersAvailable) => Vec::new(),
            Err(e) => return Err(crate::card_error("", e)),
        };
        let mut states: Vec<pcsc::ReaderState> = names
            .into_iter()
            .map(|n| pcsc::ReaderState::new(n, pcsc::State::UNAWARE))
            .collect();
        states.push(pcsc::ReaderState::new(pnp, pcsc::State::UNAWARE));
        // First call returns at once with the current state of everything.
        status_change(ctx, &mut states, Some(Duration::ZERO))?;
        loop {
            let readers: Vec<ReaderStatus> = states
                .iter()
                .filter(|s| s.name() != pnp)
                .map(reader_status)
                .collect();
            on_event(WatchEvent::Readers(readers));
            for s in states.iter_mut() {
                s.sync_current_state();
            }
            if status_change(ctx, &mut states, None)? == Wait::Cancelled {
                return Ok(());
            }
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            let plugged = states
                .iter()
                .any(|s| s.name() == pnp && s.event_state().contains(pcsc::State::CHANGED));
            let unplugged = states.iter().any(|s| {
                s.name() != pnp
                    && s.event_state()
                        .intersects(pcsc::State::UNKNOWN | pcsc::State::UNAVAILABLE)
            });
            if plugged || unplugged {
                break;
            }
        }
    }
}

/// How a wait in SCardGetStatusChange ended.
#[derive(PartialEq, Eq)]
enum Wait {
    Changed,
    /// SCardCancel: the watcher is being stopped.
    Cancelled,
}

fn status_change(
    ctx: &pcsc::Context,
    states: &mut [pcsc::ReaderState],
    timeout: Option<Duration>,
) -> Result<Wait, CardError> {
    match ctx.get_status_change(timeout, states) {
        Ok(()) | Err(pcsc::Error::Timeout) => Ok(Wait::Changed),
        Err(pcsc::Error::Cancelled) => Ok(Wait::Cancelled),
        Err(e) => Err(crate::card_error("", e)),
    }
}
