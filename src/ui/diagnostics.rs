//! The Diagnostics screen: a one-line summary, the doctor's findings with what to
//! do, and — for a technician — the APDU traces (secrets redacted) and a bundle.

use eframe::egui;

use crate::app::doctor::{DoctorReport, Level};

use super::command::Command;
use super::events::Saved;
use super::style::{self, GREEN};

#[derive(Default)]
pub struct DiagnosticsScreen {
    pub running: bool,
    pub report: Option<Box<DoctorReport>>,
    pub saved: Option<Result<Saved, String>>,
}

/// The doctor's area names in the operator's words.
fn area_words(area: &str) -> &str {
    match area {
        "pcsc" => "Card reader service",
        "reader" => "Readers",
        "station" => "This station",
        "console" => "Console",
        "trust bundle" => "Trust bundle",
        "outbox" => "Outbox",
        "audit" => "Audit trail",
        other => other,
    }
}

/// Shell commands and settings keys are for a technician; the rest is for the operator.
fn for_technician(todo: &str) -> bool {
    [
        "cardstation ",
        "sudo ",
        "`",
        "[console]",
        "apt-get",
        "systemctl",
    ]
    .iter()
    .any(|m| todo.contains(m))
}

impl DiagnosticsScreen {
    pub fn on_report(&mut self, report: Box<DoctorReport>) {
        self.running = false;
        self.report = Some(report);
    }

    pub fn show(&mut self, ui: &mut egui::Ui) -> Option<Command> {
        let mut command = None;
        ui.heading("Diagnostics");
        style::wrapped(ui, "What is wrong with this station, its readers and cards, or the link to the console — and what to do.");
        ui.horizontal(|ui| {
            if ui
                .add_enabled(!self.running, egui::Button::new("Run diagnostics"))
                .clicked()
            {
                self.running = true;
                self.saved = None;
                command = Some(Command::RunDiagnostics);
            }
            let can_save = self.report.is_some() && !self.running;
            if ui
                .add_enabled(can_save, egui::Button::new("Save diagnostic bundle…"))
                .on_hover_text("One file for a technician: findings, card reports, APDU traces, recent audit rows. No PIN, PUK or key.")
                .clicked()
            {
                command = Some(Command::SaveDiagnostics);
            }
        });
        if self.running {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Checking…");
            });
        }
        match &self.saved {
            Some(Ok(s)) if s.without_dialog => {
                style::wrapped(
                    ui,
                    format!(
                        "This desktop has no save dialog, so the bundle was saved to {}",
                        s.path
                    ),
                );
            }
            Some(Ok(s)) => {
                style::wrapped(ui, format!("Saved to {}", s.path));
            }
            Some(Err(e)) => {
                style::warn(ui, e.as_str());
            }
            None => {}
        }
        let Some(report) = &self.report else {
            return command;
        };
        ui.add_space(6.0);
        let count = |l: Level| report.findings.iter().filter(|f| f.level == l).count();
        let (fails, warns) = (count(Level::Fail), count(Level::Warn));
        let summary = match (fails, warns) {
            (0, 0) => "Everything checked is in order.".to_string(),
            (0, w) => format!("{w} thing(s) to look at; nothing is broken."),
            (f, w) => format!("{f} problem(s) need attention, {w} warning(s)."),
        };
        let colour = match (fails, warns) {
            (0, 0) => GREEN,
            (0, _) => ui.visuals().warn_fg_color,
            _ => ui.visuals().error_fg_color,
        };
        ui.label(egui::RichText::new(summary).strong().color(colour));
        ui.add_space(4.0);
        let mut technical = Vec::new();
        egui::Grid::new("findings")
            .num_columns(3)
            .striped(true)
            .show(ui, |ui| {
                for f in &report.findings {
                    let (word, colour) = match f.level {
                        Level::Ok => ("ok", GREEN),
                        Level::Info => ("note", ui.visuals().text_color()),
                        Level::Warn => ("warning", ui.visuals().warn_fg_color),
                        Level::Fail => ("problem", ui.visuals().error_fg_color),
                    };
                    ui.colored_label(colour, word);
                    ui.label(area_words(&f.area));
                    ui.vertical(|ui| {
                        style::wrapped(ui, f.what.as_str());
                        if !f.todo.is_empty() && f.level != Level::Ok {
                            if for_technician(&f.todo) {
                                technical.push(format!("{}: {}", area_words(&f.area), f.todo));
                            } else {
                                style::wrapped(
                                    ui,
                                    egui::RichText::new(format!("To do: {}", f.todo)).italics(),
                                );
                            }
                        }
                    });
                    ui.end_row();
                }
            });
        style::technician_details(ui, "diag-technical", &technical);
        for (reader, trace) in &report.traces {
            egui::CollapsingHeader::new(format!(
                "APDU trace for technicians — {reader} ({} exchanges)",
                trace.entries.len()
            ))
            .id_salt(reader)
            .show(ui, |ui| {
                for e in &trace.entries {
                    ui.label(egui::RichText::new(e.to_string()).monospace().small());
                }
            });
        }
        command
    }
}
