//! The readers panel: every reader, its card, at a glance.

use eframe::egui;

use cardstation_pcsc::CardPresence;

use super::StationApp;

pub fn show(app: &mut StationApp, ui: &mut egui::Ui) {
    egui::Panel::left("readers")
        .resizable(true)
        .default_size(300.0)
        .min_size(240.0)
        .show(ui, |ui| {
            ui.heading("Readers");
            ui.add_space(4.0);
            if app.readers.is_empty() {
                ui.label("No readers.");
            }
            let mut clicked = None;
            for pane in &app.readers {
                let selected = app.selected.as_deref() == Some(pane.name.as_str());
                let card = match pane.status.card {
                    CardPresence::Absent => "no card".to_string(),
                    CardPresence::InUse => "card in use by another program".to_string(),
                    CardPresence::Mute => "card does not answer".to_string(),
                    CardPresence::Present => match (&pane.report, &pane.report_error, pane.inspecting) {
                        (Some(r), _, _) => {
                            let state = if r.is_blank() { "blank" } else { "enrolled" };
                            format!("PIV card, {state}")
                        }
                        (None, Some(e), _) => e.message.clone(),
                        (None, None, true) => "reading card…".to_string(),
                        (None, None, false) => "card present".to_string(),
                    },
                };
                let title = if pane.is_demo {
                    format!("{} — DEMO", pane.name)
                } else {
                    pane.name.clone()
                };
                let response = ui
                    .selectable_label(selected, format!("{title}\n{card}"))
                    .on_hover_text(if pane.is_demo {
                        "A virtual PIV card built into the station, for trying every step without hardware. Nothing here affects a real card."
                    } else {
                        "A PC/SC reader"
                    });
                if response.clicked() {
                    clicked = Some(pane.name.clone());
                }
                ui.add_space(4.0);
            }
            if let Some(name) = clicked {
                app.selected = Some(name);
            }
            if app.readers.iter().any(|p| p.is_demo) {
                ui.add_space(8.0);
                ui.label("Demo card:");
                ui.horizontal_wrapped(|ui| {
                    if app.demo_card_present() {
                        if ui
                            .button("Remove card")
                            .on_hover_text("Pull the demo card out of its reader")
                            .clicked()
                        {
                            app.demo_remove_card();
                        }
                    } else if ui
                        .button("Insert card")
                        .on_hover_text("Put the demo card back into its reader")
                        .clicked()
                    {
                        app.demo_insert_card(false);
                    }
                    if ui
                        .button("Insert new blank card")
                        .on_hover_text("Replace the demo card with a new blank one")
                        .clicked()
                    {
                        app.demo_insert_card(true);
                    }
                });
            }
        });
}
