//! The Card care screen: PIN and PUK for the holder at the desk, reset of a
//! blocked card, and card replacement (lost, stolen, damaged, expiring) or renewal.

use crate::app::pin_care;
use crate::store::AuditAction;
use eframe::egui;
use zeroize::Zeroizing;

use crate::app::enroll::EnrollRequest;
use crate::app::failure::Failure;
use crate::app::pin_care::{reset_confirmation, RESET_WARNING};
use crate::app::reader_worker::{Job, PinCareOp};
use crate::app::replace::{ReplaceOutcome, ReplaceRequest};
use cardstation_pcsc::CardPresence;
use cardstation_piv::{Pin, PinStatus, Slot};
use cardstation_protocol::messages::RevocationReason;

use super::ReaderPane;

#[derive(Default)]
pub struct CareState {
    pub old_pin: Zeroizing<String>,
    pub new_pin: Zeroizing<String>,
    pub puk: Zeroizing<String>,
    pub new_puk: Zeroizing<String>,
    pub last_try: bool,
    pub confirm: String,
    pub replace_old: String,
    /// None until the operator picks one; shown as "lost", the usual case at the desk.
    pub replace_reason: Option<RevocationReason>,
    pub busy: bool,
    pub result: Option<Result<String, Failure>>,
    pub replaced: Option<Box<ReplaceOutcome>>,
}

impl CareState {
    /// Secrets are for one attempt: cleared whatever the outcome.
    fn clear_secrets(&mut self) {
        self.old_pin = Zeroizing::new(String::new());
        self.new_pin = Zeroizing::new(String::new());
        self.puk = Zeroizing::new(String::new());
        self.new_puk = Zeroizing::new(String::new());
        self.last_try = false;
    }

    pub fn on_done(&mut self, result: Result<AuditAction, Failure>) {
        self.busy = false;
        self.result = Some(result.map(|a| pin_care::done_message(a).to_string()));
    }
}

fn secret_field(ui: &mut egui::Ui, label: &str, value: &mut Zeroizing<String>) {
    ui.horizontal(|ui| {
        let l = ui.label(label);
        ui.add(
            egui::TextEdit::singleline(&mut **value)
                .password(true)
                .desired_width(120.0),
        )
        .labelled_by(l.id);
    });
}

fn submit(pane: &mut ReaderPane, op: PinCareOp) {
    pane.care.clear_secrets();
    pane.care.busy = true;
    pane.care.result = None;
    pane.worker.submit(Job::PinCare(Box::new(op)));
}

pub fn show(pane: &mut ReaderPane, ui: &mut egui::Ui) {
    ui.heading(format!("Card care — {}", pane.name));
    if pane.status.card != CardPresence::Present {
        ui.label("Insert the holder's card.");
        return;
    }
    let pin = pane.report.as_ref().map(|r| r.pin);
    match pin {
        Some(PinStatus::Retries(1)) => {
            ui.colored_label(
                ui.visuals().error_fg_color,
                "1 PIN try left: the next wrong PIN blocks it.",
            );
        }
        Some(PinStatus::Retries(n)) => {
            ui.label(format!("{n} PIN tries left."));
        }
        Some(PinStatus::Blocked) => {
            ui.colored_label(
                ui.visuals().error_fg_color,
                "The PIN is blocked: unblock it with the PUK below.",
            );
        }
        Some(PinStatus::Verified) | None => {}
    }
    if pane.care.busy {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label("Working with the card…");
        });
    }
    match &pane.care.result {
        Some(Ok(text)) => {
            ui.colored_label(egui::Color32::from_rgb(0x2e, 0xa0, 0x5a), text);
        }
        Some(Err(f)) => {
            ui.colored_label(ui.visuals().error_fg_color, &f.message);
        }
        None => {}
    }
    let idle = !pane.care.busy && !pane.wizard.is_running();
    let last = matches!(pin, Some(PinStatus::Retries(1)));

    ui.add_space(8.0);
    ui.strong("Change the PIN");
    secret_field(ui, "Current PIN", &mut pane.care.old_pin);
    secret_field(ui, "New PIN", &mut pane.care.new_pin);
    if last {
        ui.checkbox(&mut pane.care.last_try, "I understand this is the last try");
    }
    if ui
        .add_enabled(idle, egui::Button::new("Change PIN"))
        .clicked()
    {
        match (
            Pin::card_pin(&pane.care.old_pin),
            Pin::card_pin(&pane.care.new_pin),
        ) {
            (Ok(old), Ok(new)) => {
                let last_try = pane.care.last_try;
                submit(pane, PinCareOp::ChangePin { old, new, last_try });
            }
            (Err(e), _) | (_, Err(e)) => pane.care.result = Some(Err(Failure::from(e))),
        }
    }

    ui.add_space(8.0);
    ui.strong("Unblock the PIN with the PUK");
    secret_field(ui, "PUK", &mut pane.care.puk);
    secret_field(ui, "New PIN for unblocking", &mut pane.care.new_puk);
    if ui
        .add_enabled(idle, egui::Button::new("Unblock PIN"))
        .clicked()
    {
        match (Pin::puk(&pane.care.puk), Pin::card_pin(&pane.care.new_puk)) {
            (Ok(puk), Ok(new_pin)) => {
                let last_try = pane.care.last_try;
                submit(
                    pane,
                    PinCareOp::Unblock {
                        puk,
                        new_pin,
                        last_try,
                    },
                );
            }
            (Err(e), _) | (_, Err(e)) => pane.care.result = Some(Err(Failure::from(e))),
        }
    }

    if pin == Some(PinStatus::Blocked) {
        ui.add_space(8.0);
        ui.strong("Reset the card (PIN and PUK both blocked)");
        ui.colored_label(ui.visuals().warn_fg_color, RESET_WARNING);
        let expected = reset_confirmation(&pane.name);
        ui.horizontal(|ui| {
            let l = ui.label(format!("Type \"{expected}\""));
            ui.add(egui::TextEdit::singleline(&mut pane.care.confirm).desired_width(260.0))
                .labelled_by(l.id);
        });
        let typed = pane.care.confirm.trim() == expected;
        if ui
            .add_enabled(idle && typed, egui::Button::new("Reset card"))
            .clicked()
        {
            let confirmation = std::mem::take(&mut pane.care.confirm);
            submit(pane, PinCareOp::Reset { confirmation });
        }
    }

    ui.add_space(12.0);
    ui.separator();
    ui.strong("Replace a card");
    ui.label("Revokes the old certificate on the console (queued when it is away) and enrols the card in this reader for the same holder or device. With the old card itself in the reader, it is renewed.");
    ui.horizontal(|ui| {
        let l = ui.label("Old certificate (SHA-256)");
        ui.add(egui::TextEdit::singleline(&mut pane.care.replace_old).desired_width(480.0))
            .labelled_by(l.id);
    });
    let reason = *pane
        .care
        .replace_reason
        .get_or_insert(RevocationReason::Lost);
    ui.horizontal(|ui| {
        let l = ui.label("Reason");
        egui::ComboBox::from_id_salt("replace-reason")
            .selected_text(reason.as_str())
            .show_ui(ui, |ui| {
                for r in RevocationReason::ALL {
                    ui.selectable_value(&mut pane.care.replace_reason, Some(r), r.as_str());
                }
            })
            .response
            .labelled_by(l.id);
    });
    let fp_ok = cardstation_protocol::messages::is_fingerprint(pane.care.replace_old.trim());
    if ui
        .add_enabled(idle && fp_ok, egui::Button::new("Replace card"))
        .clicked()
    {
        pane.care.busy = true;
        pane.care.result = None;
        pane.care.replaced = None;
        let req = ReplaceRequest {
            old_fingerprint: pane.care.replace_old.trim().to_string(),
            reason,
            subject_override: None,
            enroll: EnrollRequest {
                slot: Slot::CardAuthentication,
                subject_template: String::new(),
                valid_days: 365,
                pin: None,
                force: false,
                max_object_size: None,
                upload: Some(Default::default()),
            },
        };
        pane.worker.submit(Job::Replace(Box::new(req)));
    }
    if let Some(r) = &pane.care.replaced {
        ui.colored_label(
            egui::Color32::from_rgb(0x2e, 0xa0, 0x5a),
            if r.renewal { "Renewed." } else { "Replaced." },
        );
        ui.label(
            egui::RichText::new(format!(
                "old  {}  (revocation: {})",
                r.old_fingerprint, r.reason
            ))
            .monospace(),
        );
        ui.label(egui::RichText::new(format!("new  {}", r.new_fingerprint)).monospace());
    }
}
