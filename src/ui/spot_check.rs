//! The Spot check screen: insert a card and the verdict appears, large and plain,
//! with every reason; the checks of this session are listed below.

use eframe::egui;
use zeroize::Zeroizing;

use crate::app::failure::Failure;
use crate::app::reader_worker::Job;
use crate::app::spot_check::{SpotCheck, Verdict};
use cardstation_piv::{Pin, Slot};
use cardstation_pki::certificate::format_unix;

use super::command::{CardView, Command};
use super::style;

/// Per reader: the slot to check, a PIN when that slot needs one, the last result.
pub struct SpotCheckScreen {
    pub slot: Slot,
    pub pin: Zeroizing<String>,
    pub running: bool,
    pub last: Option<Box<SpotCheck>>,
    pub error: Option<Failure>,
}

impl Default for SpotCheckScreen {
    fn default() -> Self {
        SpotCheckScreen {
            slot: Slot::CardAuthentication,
            pin: Zeroizing::new(String::new()),
            running: false,
            last: None,
            error: None,
        }
    }
}

impl SpotCheckScreen {
    /// A check of the chosen slot (with the PIN, used once).
    pub fn start(&mut self) -> Command {
        let pin = if self.slot.needs_pin() && !self.pin.is_empty() {
            Pin::card_pin(&self.pin).ok()
        } else {
            None
        };
        self.pin = Zeroizing::new(String::new());
        self.running = true;
        self.error = None;
        Command::Job(Job::SpotCheck {
            slot: self.slot,
            pin,
        })
    }

    /// A new card: the old verdict was about another one.
    pub fn on_card_changed(&mut self) {
        self.last = None;
        self.error = None;
    }

    pub fn on_checked(&mut self, check: Box<SpotCheck>) {
        self.running = false;
        self.error = None;
        self.last = Some(check);
    }

    pub fn on_failed(&mut self, failure: Failure) {
        self.running = false;
        self.error = Some(failure);
    }

    pub fn show(
        &mut self,
        ui: &mut egui::Ui,
        card: &CardView<'_>,
        history: &[(i64, Box<SpotCheck>)],
    ) -> Option<Command> {
        let mut command = None;
        ui.heading(format!("Spot check — {}", card.reader));
        style::wrapped(ui, "What a gateway does when the card is tapped: a fresh challenge signed by the card, checked against its certificate and the console's lists.");
        ui.add_space(6.0);
        ui.horizontal(|ui| {
            let l = ui.label("Slot");
            egui::ComboBox::from_id_salt("spot-slot")
                .selected_text(self.slot.to_string())
                .show_ui(ui, |ui| {
                    for s in Slot::ALL {
                        ui.selectable_value(&mut self.slot, s, s.to_string());
                    }
                })
                .response
                .labelled_by(l.id);
            if self.slot.needs_pin() {
                let l = ui.label("Card PIN");
                ui.add(
                    egui::TextEdit::singleline(&mut *self.pin)
                        .password(true)
                        .desired_width(100.0),
                )
                .labelled_by(l.id);
            }
            let enter = ui.input(|i| i.key_pressed(egui::Key::Enter));
            let can = card.present && !self.running && !card.busy;
            let clicked = ui
                .add_enabled(can, egui::Button::new("Check card"))
                .clicked();
            if can && (clicked || enter) {
                command = Some(self.start());
            }
        });
        ui.add_space(8.0);
        if !card.present {
            ui.label("Insert a card: it is checked as soon as it is in the reader.");
        }
        if self.running {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Checking…");
            });
        }
        if let Some(e) = &self.error {
            style::failure(ui, "spot-failure", &e.message);
        }
        if let Some(check) = &self.last {
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
                    style::wrapped(
                        ui,
                        c.failures()
                            .map(|f| f.message.as_str())
                            .next()
                            .unwrap_or(fine),
                    );
                    ui.end_row();
                }
            });
        command
    }
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
            ui.add(
                egui::Label::new(
                    egui::RichText::new(text)
                        .size(26.0)
                        .strong()
                        .color(egui::Color32::WHITE),
                )
                .wrap(),
            );
        });
    ui.add_space(6.0);
    if let Some(s) = &check.subject {
        style::wrapped(ui, format!("Subject: {s}"));
    }
    if let Some(fp) = &check.fingerprint {
        ui.add(egui::Label::new(egui::RichText::new(format!("SHA-256: {fp}")).monospace()).wrap());
    }
    for f in &check.findings {
        let (mark, colour) = if f.ok {
            ("ok", ui.visuals().text_color())
        } else {
            ("FAIL", ui.visuals().error_fg_color)
        };
        ui.add(
            egui::Label::new(egui::RichText::new(format!("{mark}  {}", f.message)).color(colour))
                .wrap(),
        );
    }
    style::technician_details(
        ui,
        "spot-details",
        &[format!(
            "{} APDUs, {} ms, trust bundle {}",
            check.apdus,
            check.millis,
            check
                .bundle_version
                .map(|v| format!("version {v}"))
                .unwrap_or_else(|| "none".into())
        )],
    );
}
