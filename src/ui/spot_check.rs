//! The Spot check screen: insert a card and the verdict appears, large and plain,
//! with every reason; the checks of this session are listed below.

use eframe::egui;
use zeroize::Zeroizing;

use crate::app::failure::Failure;
use crate::app::reader_worker::Job;
use crate::app::spot_check::{SpotCheck, Verdict};
use cardstation_pcsc::CardPresence;
use cardstation_piv::{Pin, Slot};
use cardstation_pki::certificate::format_unix;

use super::ReaderPane;

/// Per reader: the slot to check, a PIN when that slot needs one, the last result.
pub struct SpotState {
    pub slot: Slot,
    pub pin: Zeroizing<String>,
    pub running: bool,
    pub last: Option<Box<SpotCheck>>,
    pub error: Option<Failure>,
}

impl Default for SpotState {
    fn default() -> Self {
        SpotState {
            slot: Slot::CardAuthentication,
            pin: Zeroizing::new(String::new()),
            running: false,
            last: None,
            error: None,
        }
    }
}

/// Start a check on `pane` with its chosen slot (and PIN, used once).
pub fn start(pane: &mut ReaderPane) {
    let s = &mut pane.spot;
    let pin = if s.slot.needs_pin() && !s.pin.is_empty() {
        Pin::card_pin(&s.pin).ok()
    } else {
        None
    };
    s.pin = Zeroizing::new(String::new());
    s.running = true;
    s.error = None;
    pane.worker.submit(Job::SpotCheck { slot: s.slot, pin });
}

pub fn show(pane: &mut ReaderPane, history: &[(i64, Box<SpotCheck>)], ui: &mut egui::Ui) {
    ui.heading(format!("Spot check — {}", pane.name));
    ui.label("What a gateway does when the card is tapped: a fresh challenge signed by the card, checked against its certificate and the console's lists.");
    ui.add_space(6.0);
    let present = pane.status.card == CardPresence::Present;
    ui.horizontal(|ui| {
        let l = ui.label("Slot");
        egui::ComboBox::from_id_salt("spot-slot")
            .selected_text(pane.spot.slot.to_string())
            .show_ui(ui, |ui| {
                for s in Slot::ALL {
                    ui.selectable_value(&mut pane.spot.slot, s, s.to_string());
                }
            })
            .response
            .labelled_by(l.id);
        if pane.spot.slot.needs_pin() {
            let l = ui.label("Card PIN");
            ui.add(
                egui::TextEdit::singleline(&mut *pane.spot.pin)
                    .password(true)
                    .desired_width(100.0),
            )
            .labelled_by(l.id);
        }
        let enter = ui.input(|i| i.key_pressed(egui::Key::Enter));
        let can = present && !pane.spot.running && !pane.wizard.is_running();
        let clicked = ui
            .add_enabled(can, egui::Button::new("Check card"))
            .clicked();
        if can && (clicked || enter) {
            start(pane);
        }
    });
    ui.add_space(8.0);
    if !present {
        ui.label("Insert a card: it is checked as soon as it is in the reader.");
    }
    if pane.spot.running {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label("Checking…");
        });
    }
    if let Some(e) = &pane.spot.error {
        ui.colored_label(ui.visuals().error_fg_color, &e.message);
    }
    if let Some(check) = &pane.spot.last {
        verdict(ui, check);
    }
    ui.add_space(12.0);
    ui.separator();
    ui.strong("Checks this session");
    if history.is_empty() {
        ui.label("None yet.");
    }
    egui::Grid::new("spot-history")
        .num_columns(4)
        .striped(true)
        .show(ui, |ui| {
            for (at, c) in history.iter().take(50) {
                ui.label(format_unix(*at));
                ui.label(verdict_word(c.verdict));
                ui.label(c.subject.as_deref().unwrap_or("(no certificate)"));
                let fine = if c.verdict == Verdict::TrustUnknown {
                    "signature valid; no trust bundle to judge by"
                } else {
                    "all checks passed"
                };
                ui.label(
                    c.failures()
                        .map(|f| f.message.as_str())
                        .next()
                        .unwrap_or(fine),
                );
                ui.end_row();
            }
        });
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::TrustUnknown => "TRUST UNKNOWN",
    }
}

fn verdict(ui: &mut egui::Ui, check: &SpotCheck) {
    let (fill, text) = match check.verdict {
        Verdict::Pass => (
            egui::Color32::from_rgb(0x1e, 0x7d, 0x44),
            "PASS — a gateway accepts this card",
        ),
        Verdict::Fail => (
            egui::Color32::from_rgb(0xb0, 0x24, 0x24),
            "FAIL — a gateway refuses this card",
        ),
        Verdict::TrustUnknown => (
            egui::Color32::from_rgb(0x9a, 0x6a, 0x00),
            "SIGNATURE VALID, TRUST UNKNOWN — no trust bundle at this station",
        ),
    };
    egui::Frame::new()
        .fill(fill)
        .inner_margin(12.0)
        .corner_radius(6.0)
        .show(ui, |ui| {
            ui.label(
                egui::RichText::new(text)
                    .size(26.0)
                    .strong()
                    .color(egui::Color32::WHITE),
            );
        });
    ui.add_space(6.0);
    if let Some(s) = &check.subject {
        ui.label(format!("Subject: {s}"));
    }
    if let Some(fp) = &check.fingerprint {
        ui.label(egui::RichText::new(format!("SHA-256: {fp}")).monospace());
    }
    for f in &check.findings {
        let (mark, colour) = if f.ok {
            ("ok", ui.visuals().text_color())
        } else {
            ("FAIL", ui.visuals().error_fg_color)
        };
        ui.colored_label(colour, format!("{mark}  {}", f.message));
    }
    ui.label(format!(
        "{} APDUs, {} ms, trust bundle {}",
        check.apdus,
        check.millis,
        check
            .bundle_version
            .map(|v| format!("version {v}"))
            .unwrap_or_else(|| "none".into())
    ));
}
