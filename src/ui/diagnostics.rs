//! The Diagnostics screen: the doctor's findings with what to do, the APDU trace
//! of the card checks (secrets redacted), and a diagnostic bundle to send.

use std::path::PathBuf;
use std::sync::mpsc::Sender;

use eframe::egui;

use crate::app::doctor::{diagnose, write_bundle, DoctorReport, Level};
use crate::app::station::Station;
use crate::config::{Config, Paths};

use super::{AppEvent, Waker};

#[derive(Default)]
pub struct DiagState {
    pub running: bool,
    pub report: Option<Box<DoctorReport>>,
    pub saved: Option<Result<String, String>>,
}

/// Run the doctor off the UI thread (it talks to pcscd, the cards and the network).
pub fn run(paths: Paths, config: Config, events: Sender<AppEvent>, waker: Waker) {
    let spawned = std::thread::Builder::new()
        .name("doctor".into())
        .spawn(move || {
            let report = match Station::with_config(paths, config) {
                Ok(station) => diagnose(&station, None),
                Err(e) => DoctorReport {
                    findings: vec![crate::app::doctor::Finding {
                        area: "station".into(),
                        level: Level::Fail,
                        what: e.to_string(),
                        todo: "check the data directory".into(),
                    }],
                    cards: Vec::new(),
                    traces: Vec::new(),
                },
            };
            let _ = events.send(AppEvent::Diagnosed(Box::new(report)));
            waker.wake();
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start diagnostics: {e}");
    }
}

fn save(
    paths: Paths,
    config: Config,
    report: DoctorReport,
    events: Sender<AppEvent>,
    waker: Waker,
) {
    let spawned = std::thread::Builder::new().name("bundle".into()).spawn(move || {
        let name = format!("cardstation-diagnostics-{}.json", time::OffsetDateTime::now_utc().unix_timestamp());
        let result = match rfd::FileDialog::new()
            .set_title("Save diagnostic bundle")
            .set_file_name(&name)
            .add_filter("JSON", &["json"])
            .save_file()
        {
            None => Err("Not saved (cancelled, or no file dialog on this desktop: use `cardstation doctor --bundle FILE`).".to_string()),
            Some(path) => Station::with_config(paths, config)
                .map_err(|e| e.to_string())
                .and_then(|station| write_bundle(&path, &station, &report))
                .map(|()| PathBuf::from(&path).display().to_string()),
        };
        let _ = events.send(AppEvent::BundleSaved(result));
        waker.wake();
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start the bundle dialog: {e}");
    }
}

pub fn show(
    state: &mut DiagState,
    ui: &mut egui::Ui,
    paths: &Paths,
    config: &Config,
    events: &Sender<AppEvent>,
    waker: &Waker,
) {
    ui.heading("Diagnostics");
    ui.label("What is wrong with this station, its readers and cards, or the link to the console — and what to do.");
    ui.horizontal(|ui| {
        if ui.add_enabled(!state.running, egui::Button::new("Run diagnostics")).clicked() {
            state.running = true;
            run(paths.clone(), config.clone(), events.clone(), waker.clone());
        }
        let can_save = state.report.is_some() && !state.running;
        if ui.add_enabled(can_save, egui::Button::new("Save diagnostic bundle…"))
            .on_hover_text("One file for a technician: findings, card reports, APDU traces, recent audit rows. No PIN, PUK or key.")
            .clicked()
        {
            if let Some(r) = &state.report {
                save(paths.clone(), config.clone(), (**r).clone(), events.clone(), waker.clone());
            }
        }
    });
    if state.running {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label("Checking…");
        });
    }
    match &state.saved {
        Some(Ok(p)) => {
            ui.label(format!("Saved to {p}"));
        }
        Some(Err(e)) => {
            ui.colored_label(ui.visuals().warn_fg_color, e);
        }
        None => {}
    }
    let Some(report) = &state.report else {
        return;
    };
    ui.add_space(6.0);
    egui::Grid::new("findings")
        .num_columns(3)
        .striped(true)
        .show(ui, |ui| {
            for f in &report.findings {
                let (word, colour) = match f.level {
                    Level::Ok => ("ok", egui::Color32::from_rgb(0x2e, 0xa0, 0x5a)),
                    Level::Info => ("info", ui.visuals().text_color()),
                    Level::Warn => ("warning", ui.visuals().warn_fg_color),
                    Level::Fail => ("FAIL", ui.visuals().error_fg_color),
                };
                ui.colored_label(colour, word);
                ui.label(&f.area);
                ui.vertical(|ui| {
                    ui.label(&f.what);
                    if !f.todo.is_empty() && f.level != Level::Ok {
                        ui.label(egui::RichText::new(format!("To do: {}", f.todo)).italics());
                    }
                });
                ui.end_row();
            }
        });
    for (reader, trace) in &report.traces {
        egui::CollapsingHeader::new(format!(
            "APDU trace — {reader} ({} exchanges)",
            trace.entries.len()
        ))
        .id_salt(reader)
        .show(ui, |ui| {
            for e in &trace.entries {
                ui.label(egui::RichText::new(e.to_string()).monospace().small());
            }
        });
    }
}
