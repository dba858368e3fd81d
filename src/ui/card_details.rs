//! Card details: identity, PIN, management key, slots and certificates.

use std::collections::BTreeSet;

use eframe::egui;

use cardstation_piv::PinStatus;
use cardstation_pki::certificate::format_unix;

use crate::app::console_worker::{CardEvents, ConsoleStatus};

use super::command::{CardView, Command};
use super::style::{self, CopyFeedback};

/// Identity, PIN, management key, slots and certificates of the card in the reader,
/// and what gateways reported about its certificates.
#[derive(Default)]
pub struct CardDetails {
    copy: CopyFeedback,
    /// Certificates whose gateway events were asked of the console in this session.
    asked: BTreeSet<String>,
}

impl CardDetails {
    pub fn show(
        &mut self,
        ui: &mut egui::Ui,
        card: &CardView<'_>,
        console: &ConsoleStatus,
    ) -> Option<Command> {
        let mut command = None;
        ui.horizontal(|ui| {
            ui.heading("Card details");
            let can = !card.inspecting && !card.busy && card.present;
            if ui
                .add_enabled(can, egui::Button::new("Refresh"))
                .on_hover_text("Read the card again (e.g. after another program changed it)")
                .clicked()
            {
                command = Some(Command::Inspect);
            }
        });
        if card.inspecting {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Reading the card…");
            });
        }
        if let Some(e) = card.report_error {
            style::failure(ui, "details-failure", &e.message);
        }
        let Some(r) = card.report else {
            if !card.inspecting && card.report_error.is_none() {
                ui.label("Insert a card to see its details.");
            }
            return command;
        };
        let copy = &mut self.copy;
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
                    ui.vertical(|ui| {
                        match (&s.certificate, &s.certificate_error, s.key_present) {
                            (Some(c), _, _) => {
                                ui.label(format!("Subject: {}", c.subject));
                                ui.label(format!("Issuer: {}", c.issuer));
                                ui.label(format!(
                                    "Valid: {} to {}",
                                    format_unix(c.not_before),
                                    format_unix(c.not_after)
                                ));
                                ui.horizontal_wrapped(|ui| {
                                    ui.label(format!("SHA-256: {}", c.sha256));
                                    copy.button(ui, "Copy", &c.sha256);
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
                            (None, None, _) if s.key_proof.is_some() => {
                                ui.label("key, no certificate");
                            }
                            (None, None, _) => {
                                ui.label("empty");
                            }
                        }
                        if let Some(proof) = &s.key_proof {
                            style::wrapped(ui, format!("Key: {}", proof.describe()));
                        }
                    });
                    ui.end_row();
                }
            });
        if console.configured {
            let certificates: Vec<(String, &str)> = r
                .slots
                .iter()
                .filter_map(|s| {
                    s.certificate
                        .as_ref()
                        .map(|c| (s.slot.to_string(), c.sha256.as_str()))
                })
                .collect();
            for (slot, fp) in certificates {
                if let Some(c) = self.gateway_events(ui, &slot, fp, console) {
                    command = command.or(Some(c));
                }
            }
        }
        command
    }

    /// The recent gateway events of certificate `fp` (in `slot`): fetched once when
    /// first shown, again on request; the last known ones, marked, when offline.
    fn gateway_events(
        &mut self,
        ui: &mut egui::Ui,
        slot: &str,
        fp: &str,
        console: &ConsoleStatus,
    ) -> Option<Command> {
        let mut command = None;
        if self.asked.insert(fp.to_string()) {
            command = Some(Command::LoadCardEvents(fp.to_string()));
        }
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            ui.strong(format!("Gateway events (slot {slot})"));
            if ui
                .button("Refresh gateway events")
                .on_hover_text("Ask the console again what gateways reported about this card")
                .clicked()
            {
                command = Some(Command::LoadCardEvents(fp.to_string()));
            }
        });
        let Some(known) = console.card_events.get(fp) else {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Asking the console…");
            });
            return command;
        };
        show_events(ui, fp, known);
        command
    }
}

fn show_events(ui: &mut egui::Ui, fp: &str, known: &CardEvents) {
    match (&known.stale, known.fetched_at) {
        (Some(why), Some(at)) => {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!(
                    "Offline — last known events, as of {}: {why}",
                    format_unix(at)
                ),
            );
        }
        (Some(why), None) => {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!("Gateway events could not be fetched: {why}"),
            );
            return;
        }
        (None, _) => {}
    }
    if known.events.is_empty() {
        ui.label("No gateway has reported this card.");
        return;
    }
    egui::Grid::new(("gateway-events", fp))
        .num_columns(5)
        .spacing([16.0, 4.0])
        .striped(true)
        .show(ui, |ui| {
            for name in ["Decided", "Gateway", "Decision", "Reasons", "Reader"] {
                ui.strong(name);
            }
            ui.end_row();
            for e in &known.events {
                ui.label(format_unix(e.event.at));
                ui.label(&e.gateway);
                let decision = e.event.decision.as_str();
                match e.event.decision {
                    cardstation_protocol::messages::Decision::Grant => ui.label(decision),
                    cardstation_protocol::messages::Decision::Deny => {
                        ui.colored_label(ui.visuals().error_fg_color, decision)
                    }
                };
                ui.label(if e.event.reasons.is_empty() {
                    "-".to_string()
                } else {
                    e.event.reasons.join(", ")
                });
                ui.label(&e.event.reader);
                ui.end_row();
            }
        });
}

fn row(ui: &mut egui::Ui, name: &str, value: &str) {
    ui.label(name);
    ui.label(value);
    ui.end_row();
}
