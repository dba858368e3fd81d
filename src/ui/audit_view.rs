//! The audit view: every operator action at this station, searchable, with the
//! result of the hash-chain check.

use eframe::egui;

use crate::store::{AuditRow, AuditVerdict};
use cardstation_pki::certificate::format_unix;

use super::command::Command;
use super::style::{self, GREEN};

#[derive(Default)]
pub struct AuditScreen {
    pub loading: bool,
    pub loaded: bool,
    pub rows: Vec<AuditRow>,
    pub verdict: Option<Result<AuditVerdict, String>>,
    pub search: String,
    /// The trail shown is the demo card's throw-away one.
    pub demo: bool,
}

impl AuditScreen {
    pub fn on_loaded(&mut self, result: Result<(Vec<AuditRow>, AuditVerdict), String>) {
        self.loading = false;
        self.loaded = true;
        match result {
            Ok((rows, verdict)) => {
                self.rows = rows;
                self.verdict = Some(Ok(verdict));
            }
            Err(e) => self.verdict = Some(Err(e)),
        }
    }

    /// Read the trail again next time the screen shows.
    pub fn stale(&mut self) {
        self.loaded = false;
    }

    pub fn show(&mut self, ui: &mut egui::Ui) -> Option<Command> {
        let mut command = None;
        if self.demo {
            ui.heading("Audit trail — demo");
            style::wrapped(ui, "What was done with the demo card. It is kept apart from the station's own trail and thrown away when the window closes.");
        } else {
            ui.heading("Audit trail");
        }
        if !self.loaded && !self.loading {
            self.loading = true;
            command = Some(Command::LoadAudit);
        }
        ui.horizontal(|ui| {
            let l = ui.label("Search");
            ui.add(egui::TextEdit::singleline(&mut self.search).desired_width(260.0))
                .labelled_by(l.id);
            if ui
                .add_enabled(!self.loading, egui::Button::new("Reload and verify"))
                .clicked()
            {
                self.loading = true;
                command = Some(Command::LoadAudit);
            }
        });
        match &self.verdict {
            Some(Ok(AuditVerdict::Intact { rows })) => {
                ui.colored_label(
                    GREEN,
                    match rows {
                        1 => "Chain intact: 1 row, not edited or deleted.".to_string(),
                        n => format!("Chain intact: {n} rows, none edited, deleted or reordered."),
                    },
                );
            }
            Some(Ok(AuditVerdict::Broken { row_id, reason })) => {
                style::error(ui, format!("TAMPERED: row {row_id} {reason}."));
            }
            Some(Err(e)) => {
                style::failure(ui, "audit-failure", e);
            }
            None => {}
        }
        let needle = self.search.to_lowercase();
        egui::Grid::new("audit")
            .num_columns(5)
            .striped(true)
            .show(ui, |ui| {
                for r in self
                    .rows
                    .iter()
                    .rev()
                    .filter(|r| {
                        needle.is_empty()
                            || [&r.operator, &r.action, &r.subject, &r.outcome, &r.details]
                                .iter()
                                .any(|f| f.to_lowercase().contains(&needle))
                    })
                    .take(500)
                {
                    ui.label(format_unix(r.at));
                    ui.label(&r.operator);
                    ui.label(&r.action);
                    ui.label(&r.outcome);
                    ui.label(&r.subject);
                    ui.end_row();
                }
            });
        command
    }
}
