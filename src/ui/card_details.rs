//! Card details: identity, PIN, management key, slots and certificates.

use eframe::egui;

use cardstation_piv::PinStatus;
use cardstation_pki::certificate::format_unix;

use super::ReaderPane;

pub fn show(pane: &mut ReaderPane, ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        ui.heading("Card details");
        let can = !pane.inspecting
            && !pane.wizard.is_running()
            && pane.status.card == cardstation_pcsc::CardPresence::Present;
        if ui
            .add_enabled(can, egui::Button::new("Refresh"))
            .on_hover_text("Read the card again (e.g. after another program changed it)")
            .clicked()
        {
            pane.inspecting = true;
            pane.worker.submit(crate::app::reader_worker::Job::Inspect);
        }
    });
    if pane.inspecting {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label("Reading the card…");
        });
    }
    if let Some(e) = &pane.report_error {
        ui.colored_label(ui.visuals().error_fg_color, &e.message);
    }
    let Some(r) = &pane.report else {
        if !pane.inspecting && pane.report_error.is_none() {
            ui.label("Insert a card to see its details.");
        }
        return;
    };
    egui::Grid::new("card-details")
        .num_columns(2)
        .spacing([16.0, 4.0])
        .striped(true)
        .show(ui, |ui| {
            row(ui, "Reader", &r.reader);
            row(
                ui,
                "ATR",
                &format!("{} ({})", hex::encode_upper(&r.atr), r.protocols.join(", ")),
            );
            if let Some(s) = r.serial {
                row(ui, "Serial", &s.to_string());
            }
            if let Some(v) = &r.version {
                row(ui, "Version", v);
            }
            row(
                ui,
                "CHUID GUID",
                &r.chuid_guid.map_or("none".into(), |g| g.to_hex()),
            );
            row(
                ui,
                "PIN",
                &match r.pin {
                    PinStatus::Verified => "verified".to_string(),
                    PinStatus::Retries(n) => format!("{n} tries left"),
                    PinStatus::Blocked => "BLOCKED — unblock with the PUK".to_string(),
                },
            );
            let mk = &r.management_key;
            row(
                ui,
                "Management key",
                &format!(
                    "{}{}",
                    mk.algorithm
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| "unknown".into()),
                    match mk.is_default {
                        Some(true) => ", factory default",
                        Some(false) => ", not the factory default",
                        None => "",
                    }
                ),
            );
            row(ui, "State", if r.is_blank() { "blank" } else { "enrolled" });
        });
    ui.add_space(8.0);
    ui.strong("Slots");
    egui::Grid::new("slots")
        .num_columns(2)
        .spacing([16.0, 4.0])
        .striped(true)
        .show(ui, |ui| {
            for s in &r.slots {
                ui.label(s.slot.to_string());
                ui.vertical(
                    |ui| match (&s.certificate, &s.certificate_error, s.key_present) {
                        (Some(c), _, _) => {
                            ui.label(format!("Subject: {}", c.subject));
                            ui.label(format!("Issuer: {}", c.issuer));
                            ui.label(format!(
                                "Valid: {} to {}",
                                format_unix(c.not_before),
                                format_unix(c.not_after)
                            ));
                            ui.horizontal(|ui| {
                                ui.label(format!("SHA-256: {}", c.sha256));
                                if ui
                                    .small_button("Copy")
                                    .on_hover_text("Copy the fingerprint")
                                    .clicked()
                                {
                                    ui.ctx().copy_text(c.sha256.clone());
                                }
                            });
                        }
                        (None, Some(e), _) => {
                            ui.colored_label(
                                ui.visuals().error_fg_color,
                                format!("unreadable certificate: {e}"),
                            );
                        }
                        (None, None, Some(true)) => {
                            ui.label("key, no certificate");
                        }
                        (None, None, _) => {
                            ui.label("empty");
                        }
                    },
                );
                ui.end_row();
            }
        });
}

fn row(ui: &mut egui::Ui, name: &str, value: &str) {
    ui.label(name);
    ui.label(value);
    ui.end_row();
}
