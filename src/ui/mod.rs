//! The station window (eframe/egui). No card, network or disk I/O happens on the UI
//! thread: readers are watched by `card::watcher`, card work runs on one
//! `app::reader_worker` per reader, files and the console on their own threads.
//! Events come back by channel and wake the window with `request_repaint`; nothing
//! polls, and a window where nothing happens does not repaint.
//!
//! Layers, each importing only those below it: `events`, `command`, `style` →
//! the screens (`wizard`, `spot_check`, `care`, `card_details`, `diagnostics`,
//! `audit_view`, `console_view`, `operator_prompt`, `outbox_view`, `bars`), `export` → `tasks`, `demo` →
//! `pane` → `readers`, `readers_panel` → `shell`, which owns the screens and carries out their commands.

mod audit_view;
mod bars;
mod card_details;
mod care;
mod command;
mod console_view;
mod demo;
mod diagnostics;
mod events;
mod export;
mod icon;
mod operator_prompt;
mod outbox_view;
mod pane;
mod readers;
mod readers_panel;
mod shell;
mod spot_check;
mod style;
mod tasks;
mod wizard;

pub use events::{AppEvent, Link, Waker};
pub use pane::{Origin, ReaderPane};
pub use readers::ReaderMode;
pub use shell::{DeskSession, Screen, StationApp};
pub use wizard::{Stage, Wizard};

use eframe::egui;

use crate::config::{Config, Paths};

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

impl eframe::App for StationApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.frame(ui);
    }
}
