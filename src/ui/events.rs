//! What reaches the UI thread from elsewhere, and how worker threads wake it.
//! The lowest layer of the window: every other ui/ file may use it.

use std::sync::{Arc, Mutex};

use eframe::egui;

use crate::app::console_worker::ConsoleStatus;
use crate::app::doctor::DoctorReport;
use crate::app::reader_worker::JobEvent;
use crate::store::{AuditRow, AuditVerdict, EnrollmentRecord};
use cardstation_pcsc::watcher::WatchEvent;

/// Which console link a status belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// The console named in the settings.
    Configured,
    /// The throw-away console the window runs for the demo card.
    Demo,
}

/// Where a certificate was written by "Export certificate…".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub path: String,
    /// No save dialog on this desktop: the file went to the default folder.
    pub without_dialog: bool,
}

/// The in-process demo console is listening (or could not start).
pub struct DemoConsoleReady {
    pub url: String,
    pub dir: std::path::PathBuf,
}

pub enum AppEvent {
    Watch(WatchEvent),
    Job {
        reader: String,
        event: JobEvent,
    },
    Exported {
        reader: String,
        fingerprint: String,
        result: Result<Saved, String>,
    },
    Console(Link, Box<ConsoleStatus>),
    DemoConsole(Result<DemoConsoleReady, String>),
    Diagnosed(Box<DoctorReport>),
    BundleSaved(Result<Saved, String>),
    Audit(Result<(Vec<AuditRow>, AuditVerdict), String>),
    /// The process was asked to stop (SIGINT/SIGTERM): close the window.
    Quit,
    /// The station's record of a certificate about to be replaced.
    OldCard {
        fingerprint: String,
        record: Result<Option<Box<EnrollmentRecord>>, String>,
    },
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

    pub fn set(&self, ctx: &egui::Context) {
        if let Ok(mut guard) = self.0.lock() {
            if guard.is_none() {
                *guard = Some(ctx.clone());
            }
        }
    }
}

/// A sender that wakes the window with every event.
#[derive(Clone)]
pub struct Outlet {
    pub tx: std::sync::mpsc::Sender<AppEvent>,
    pub waker: Waker,
}

impl Outlet {
    pub fn send(&self, event: AppEvent) {
        let _ = self.tx.send(event);
        self.waker.wake();
    }

    /// Run `work` on a named thread and send what it returns.
    pub fn spawn(&self, name: &str, work: impl FnOnce() -> AppEvent + Send + 'static) {
        let outlet = self.clone();
        if let Err(e) = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || outlet.send(work()))
        {
            tracing::error!("cannot start {name}: {e}");
        }
    }
}
