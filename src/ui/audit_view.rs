//! The audit view: every operator action at this station, searchable, with the
//! result of the hash-chain check.

use std::sync::mpsc::Sender;

use eframe::egui;

use crate::app::station::Station;
use crate::config::{Config, Paths};
use crate::store::{AuditRow, AuditVerdict};
use cardstation_pki::certificate::format_unix;

use super::{AppEvent, Waker};

#[derive(Default)]
pub struct AuditState {
    pub loading: bool,
    pub loaded: bool,
    pub rows: Vec<AuditRow>,
    pub verdict: Option<Result<AuditVerdict, String>>,
    pub search: String,
}

/// Read the trail and check its chain off the UI thread.
pub fn load(paths: Paths, config: Config, events: Sender<AppEvent>, waker: Waker) {
    let spawned = std::thread::Builder::new()
        .name("audit".into())
        .spawn(move || {
            let result = Station::with_config(paths, config)
                .map_err(|e| e.to_string())
                .and_then(|s| {
                    let rows = s.store.audit_rows().map_err(|e| e.to_string())?;
                    let verdict = s.store.verify_audit().map_err(|e| e.to_string())?;
                    Ok((rows, verdict))
                });
            let _ = events.send(AppEvent::Audit(result));
            waker.wake();
        });
    if let Err(e) = spawned {
        tracing::error!("cannot read the audit trail: {e}");
    }
}

pub fn show(
    state: &mut AuditState,
    ui: &mut egui::Ui,
    paths: &Paths,
    config: &Config,
    events: &Sender<AppEvent>,
    waker: &Waker,
) {
    ui.heading("Audit trail");
    if !state.loaded && !state.loading {
        state.loading = true;
        load(paths.clone(), config.clone(), events.clone(), waker.clone());
    }
    ui.horizontal(|ui| {
        let l = ui.label("Search");
        ui.add(egui::TextEdit::singleline(&mut state.search).desired_width(260.0))
            .labelled_by(l.id);
        if ui
            .add_enabled(!state.loading, egui::Button::new("Reload and verify"))
            .clicked()
        {
            state.loading = true;
            load(paths.clone(), config.clone(), events.clone(), waker.clone());
        }
    });
    match &state.verdict {
        Some(Ok(AuditVerdict::Intact { rows })) => {
            ui.colored_label(
                egui::Color32::from_rgb(0x2e, 0xa0, 0x5a),
                format!("Chain intact: {rows} rows, none edited, deleted or reordered."),
            );
        }
        Some(Ok(AuditVerdict::Broken { row_id, reason })) => {
            ui.colored_label(
                ui.visuals().error_fg_color,
                format!("TAMPERED: row {row_id} {reason}."),
            );
        }
        Some(Err(e)) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        None => {}
    }
    let needle = state.search.to_lowercase();
    egui::Grid::new("audit")
        .num_columns(5)
        .striped(true)
        .show(ui, |ui| {
            for r in state
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
}
