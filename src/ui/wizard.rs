//! The enrollment wizard: Check card → Credentials → Key → Certificate →
//! Write & self-test → Export. The card work itself is `app::enroll`, run by the
//! reader's worker; this file only holds the form and shows progress.

use std::sync::mpsc::Sender;

use eframe::egui;
use zeroize::Zeroizing;

use crate::app::card_status::CardReport;
use crate::app::console_worker::ConsoleStatus;
use crate::app::enroll::{EnrollOutcome, EnrollRequest, EnrollStep};
use crate::app::failure::{ErrorCode, Failure};
use crate::app::reader_worker::{export_file_name, Job};
use crate::config::Config;
use cardstation_pcsc::CardPresence;
use cardstation_piv::{Pin, PinStatus, Slot};
use cardstation_pki::certificate::format_unix;
use cardstation_pki::subject::parse_subject;

use super::{export, AppEvent, ReaderPane, Waker};

/// The steps as the operator sees them.
pub const STEPS: [&str; 6] = [
    "Check card",
    "Credentials",
    "Key",
    "Certificate",
    "Write & self-test",
    "Export / Upload",
];

#[derive(Debug)]
pub enum Stage {
    Check,
    Credentials,
    Running {
        step: EnrollStep,
        cancelling: bool,
    },
    Done(Box<EnrollOutcome>),
    Failed {
        failure: Failure,
        at: Option<EnrollStep>,
    },
}

/// What the wizard asks the window to do beyond the reader's own worker.
pub enum Action {
    Upload(Box<EnrollOutcome>),
}

pub struct Wizard {
    pub stage: Stage,
    /// Queue the certificate for the console as soon as the card is enrolled.
    pub upload_when_done: bool,
    /// Whether a console is configured (kept current by the window).
    pub console_configured: bool,
    pub slot: Slot,
    pub subject: String,
    pub days: String,
    pub pin: Zeroizing<String>,
    pub replace_confirmed: bool,
    pub export_der: bool,
    pub export_result: Option<Result<String, String>>,
    /// Desk mode: the previous card is done and out; the next blank card goes straight on.
    pub ready_for_next: bool,
    pub note: Option<String>,
    max_object_size: Option<usize>,
}

impl Wizard {
    pub fn new(config: &Config) -> Self {
        Wizard {
            stage: Stage::Check,
            upload_when_done: true,
            console_configured: false,
            slot: config
                .enroll
                .slot
                .parse()
                .unwrap_or(Slot::CardAuthentication),
            subject: config.enroll.subject.clone(),
            days: config.enroll.days.to_string(),
            pin: Zeroizing::new(String::new()),
            replace_confirmed: false,
            export_der: false,
            export_result: None,
            ready_for_next: false,
            note: None,
            max_object_size: config.card.max_object_size,
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self.stage, Stage::Running { .. })
    }

    /// Index into `STEPS` of the step in progress (or reached).
    fn current_index(&self) -> usize {
        match &self.stage {
            Stage::Check => 0,
            Stage::Credentials => 1,
            Stage::Running { step, .. } | Stage::Failed { at: Some(step), .. } => step_index(*step),
            Stage::Failed { at: None, .. } => 1,
            Stage::Done(_) => 5,
        }
    }

    pub fn on_card_inserted(&mut self, desk_mode: bool) {
        match &self.stage {
            Stage::Failed { failure, .. } if failure.is(ErrorCode::CardRemoved) => {
                self.stage = Stage::Credentials;
                self.note =
                    Some("Card reinserted: check the details and press Enroll to resume.".into());
            }
            // A result belongs to the card it was about: a new card starts afresh.
            Stage::Done(_) | Stage::Failed { .. } => {
                if desk_mode {
                    self.ready_next();
                } else {
                    self.stage = Stage::Check;
                    self.note = None;
                }
            }
            _ => {}
        }
    }

    pub fn on_card_removed(&mut self, desk_mode: bool) {
        match &self.stage {
            Stage::Done(outcome) => {
                let note = format!(
                    "The previous card was enrolled (SHA-256 {}…). Insert the next card.",
                    &outcome.fingerprint[..16.min(outcome.fingerprint.len())]
                );
                if desk_mode {
                    self.ready_next();
                } else {
                    self.stage = Stage::Check;
                }
                self.note = Some(note);
            }
            Stage::Credentials => {
                self.stage = Stage::Check;
                self.note = Some("The card was removed.".into());
            }
            _ => {}
        }
    }

    fn ready_next(&mut self) {
        self.stage = Stage::Check;
        self.ready_for_next = true;
        self.replace_confirmed = false;
        self.export_result = None;
        self.note = None;
    }

    pub fn on_report(&mut self, _report: &CardReport, _desk_mode: bool) {}

    pub fn on_step(&mut self, step: EnrollStep) {
        if let Stage::Running { cancelling, .. } = self.stage {
            self.stage = Stage::Running { step, cancelling };
        }
    }

    pub fn on_enrolled(&mut self, outcome: Box<EnrollOutcome>) {
        self.stage = Stage::Done(outcome);
        self.export_result = None;
        self.replace_confirmed = false;
        self.note = None;
    }

    pub fn on_failed(&mut self, failure: Failure) {
        // A PIN is for one attempt on one card: never resent without the operator.
        self.pin = Zeroizing::new(String::new());
        let at = match &self.stage {
            Stage::Running { step, .. } => Some(*step),
            _ => None,
        };
        self.stage = Stage::Failed { failure, at };
    }

    /// Check the form; `Ok` is a request ready for the worker.
    fn request(&self, report: Option<&CardReport>) -> Result<EnrollRequest, String> {
        let days: u32 = self
            .days
            .trim()
            .parse()
            .ok()
            .filter(|d| (1..=36_500).contains(d))
            .ok_or("Validity must be a number of days between 1 and 36500.")?;
        parse_subject(&self.subject).map_err(|e| format!("Subject: {e}."))?;
        let pin = if self.slot.needs_pin() {
            Some(Pin::card_pin(&self.pin).map_err(|e| format!("{e}."))?)
        } else {
            None
        };
        if slot_occupant(report, self.slot).is_some() && !self.replace_confirmed {
            return Err("This slot is in use: confirm that it may be replaced.".into());
        }
        Ok(EnrollRequest {
            slot: self.slot,
            subject_template: self.subject.clone(),
            valid_days: days,
            pin,
            force: self.replace_confirmed,
            max_object_size: self.max_object_size,
            // Queued together with the enrollment record, delivered by the console link.
            upload: (self.upload_when_done && self.console_configured).then(Default::default),
        })
    }
}

fn step_index(step: EnrollStep) -> usize {
    match step {
        EnrollStep::CheckCard | EnrollStep::Authenticate | EnrollStep::GenerateKey => 2,
        EnrollStep::Certificate => 3,
        EnrollStep::Write | EnrollStep::SelfTest | EnrollStep::Record => 4,
    }
}

fn step_detail(step: EnrollStep) -> &'static str {
    match step {
        EnrollStep::CheckCard => "Checking the card…",
        EnrollStep::Authenticate => "Authenticating with the management key…",
        EnrollStep::GenerateKey => "Generating the P-256 key on the card…",
        EnrollStep::Certificate => "Making the certificate, signed by the card…",
        EnrollStep::Write => "Writing the certificate and a new CHUID…",
        EnrollStep::SelfTest => "Self-test: the card signs a fresh challenge…",
        EnrollStep::Record => "Recording the enrollment…",
    }
}

/// What already occupies `slot`, if anything enrollment would destroy: a certificate,
/// or a key on a card that is no longer on its factory management key.
fn slot_occupant(report: Option<&CardReport>, slot: Slot) -> Option<String> {
    let report = report?;
    let s = report.slots.iter().find(|s| s.slot == slot)?;
    if let Some(c) = &s.certificate {
        return Some(format!("a certificate for \"{}\"", c.subject));
    }
    let factory = report.management_key.is_default == Some(true);
    (s.key_present == Some(true) && !factory).then(|| "a key without certificate".to_string())
}

/// Draw the wizard for `pane`.
pub fn show(
    pane: &mut ReaderPane,
    ui: &mut egui::Ui,
    desk_mode: bool,
    events: &Sender<AppEvent>,
    waker: &Waker,
    console: &ConsoleStatus,
) -> Option<Action> {
    let mut action = None;
    pane.wizard.console_configured = console.configured;
    ui.heading(format!("Enroll — {}", pane.name));
    step_indicator(ui, &pane.wizard);
    ui.add_space(8.0);
    if let Some(note) = &pane.wizard.note {
        ui.label(note.clone());
    }
    let enter = ui.input(|i| i.key_pressed(egui::Key::Enter));
    let escape = ui.input(|i| i.key_pressed(egui::Key::Escape));
    let card_present = pane.status.card == CardPresence::Present;

    match &pane.wizard.stage {
        Stage::Check => check_stage(pane, ui, desk_mode, card_present, enter),
        Stage::Credentials => credentials_stage(pane, ui, card_present, enter, escape, console),
        Stage::Running { step, cancelling } => {
            let (step, cancelling) = (*step, *cancelling);
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(step_detail(step));
            });
            ui.label("Keep the card in the reader.");
            let cancel = ui
                .add_enabled(!cancelling, egui::Button::new("Cancel enrollment"))
                .clicked();
            if (cancel || escape) && !cancelling {
                pane.worker.cancel();
                pane.wizard.stage = Stage::Running {
                    step,
                    cancelling: true,
                };
            }
        }
        Stage::Done(outcome) => {
            let outcome = outcome.clone();
            action = done_stage(
                pane, ui, desk_mode, &outcome, events, waker, escape, console,
            );
        }
        Stage::Failed { failure, .. } => {
            let failure = failure.clone();
            ui.colored_label(
                ui.visuals().error_fg_color,
                egui::RichText::new("Enrollment failed").heading(),
            );
            ui.label(&failure.message);
            if failure.is(ErrorCode::CardRemoved) {
                ui.strong("Reinsert the card to resume.");
            }
            ui.label("The card is not enrolled.");
            ui.horizontal(|ui| {
                if ui.button("Try again").clicked() || enter {
                    pane.wizard.stage = Stage::Credentials;
                }
                if ui.button("Back").clicked() || escape {
                    pane.wizard.stage = Stage::Check;
                }
            });
        }
    }
    action
}

/// The steps with their state: a filled green dot when done, the accent colour
/// for the current one, red when it failed, an outline when still to come.
fn step_indicator(ui: &mut egui::Ui, wizard: &Wizard) {
    let current = wizard.current_index();
    let failed = matches!(wizard.stage, Stage::Failed { .. });
    let green = egui::Color32::from_rgb(0x2e, 0xa0, 0x5a);
    ui.horizontal_wrapped(|ui| {
        for (i, name) in STEPS.iter().enumerate() {
            let (state, colour) = if i < current {
                ("done", Some(green))
            } else if i == current && failed {
                ("failed", Some(ui.visuals().error_fg_color))
            } else if i == current {
                ("current", Some(ui.visuals().selection.bg_fill))
            } else {
                ("to do", None)
            };
            let (rect, response) =
                ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
            let stroke = egui::Stroke::new(1.5, ui.visuals().text_color());
            match colour {
                Some(c) => ui.painter().circle_filled(rect.center(), 5.5, c),
                None => ui.painter().circle_stroke(rect.center(), 5.0, stroke),
            };
            response.on_hover_text(state);
            let text = egui::RichText::new(*name);
            ui.label(if i == current { text.strong() } else { text })
                .on_hover_text(format!("{name}: {state}"));
            if i + 1 < STEPS.len() {
                ui.label("›");
            }
        }
    });
}

fn check_stage(
    pane: &mut ReaderPane,
    ui: &mut egui::Ui,
    desk_mode: bool,
    card_present: bool,
    enter: bool,
) {
    if !card_present {
        ui.label(if pane.wizard.ready_for_next {
            "Insert the next blank card."
        } else {
            "Insert a card into this reader."
        });
        return;
    }
    let Some(report) = pane.report.as_deref() else {
        if let Some(e) = &pane.report_error {
            ui.colored_label(ui.visuals().error_fg_color, &e.message);
            if ui.button("Read the card again").clicked() {
                pane.inspecting = true;
                pane.worker.submit(Job::Inspect);
            }
        } else {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Checking the card…");
            });
        }
        return;
    };
    if report.is_blank() {
        ui.label("A blank PIV card: ready to enroll.");
    } else {
        ui.label("This card already holds certificates (see the card details below).");
    }
    if report.management_key.is_default == Some(true) {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            "Factory management key: anyone could change this card. Enrollment replaces it with a key of its own.",
        );
    }
    match report.pin {
        PinStatus::Blocked => {
            ui.colored_label(
                ui.visuals().error_fg_color,
                "The PIN is blocked: unblock it with the PUK before using slots that need it.",
            );
        }
        PinStatus::Retries(n) if n <= 1 => {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!("Only {n} PIN try left."),
            );
        }
        _ => {}
    }
    let blank = report.is_blank();
    if desk_mode && pane.wizard.ready_for_next && blank && pane.wizard.slot.needs_pin() {
        ui.label("Desk mode: same profile as the previous card; this card's PIN is needed.");
        if ui.button("Enter the PIN").clicked() || enter {
            pane.wizard.stage = Stage::Credentials;
        }
        return;
    }
    if desk_mode && pane.wizard.ready_for_next && blank {
        ui.label("Desk mode: same profile as the previous card.");
        if ui.button("Enroll next card").clicked() || enter {
            match pane.wizard.request(Some(report)) {
                Ok(req) => submit(pane, req),
                Err(msg) => {
                    pane.wizard.note = Some(msg);
                    pane.wizard.stage = Stage::Credentials;
                }
            }
        }
        return;
    }
    if ui.button("Start enrollment").clicked() || enter {
        pane.wizard.stage = Stage::Credentials;
        pane.wizard.note = None;
    }
}

fn credentials_stage(
    pane: &mut ReaderPane,
    ui: &mut egui::Ui,
    card_present: bool,
    enter: bool,
    escape: bool,
    console: &ConsoleStatus,
) {
    let w = &mut pane.wizard;
    egui::Grid::new("credentials")
        .num_columns(2)
        .spacing([12.0, 8.0])
        .show(ui, |ui| {
            let l = ui.label("Slot");
            egui::ComboBox::from_id_salt("slot")
                .selected_text(w.slot.to_string())
                .show_ui(ui, |ui| {
                    for s in Slot::ALL {
                        ui.selectable_value(&mut w.slot, s, s.to_string());
                    }
                })
                .response
                .labelled_by(l.id);
            ui.end_row();

            let l = ui.label("Subject");
            ui.add(egui::TextEdit::singleline(&mut w.subject).desired_width(420.0))
                .labelled_by(l.id)
                .on_hover_text(
                    "e.g. CN=gateway-17,O=Acme — {serial} and {guid} are filled in from the card",
                );
            ui.end_row();

            let l = ui.label("Validity (days)");
            ui.add(egui::TextEdit::singleline(&mut w.days).desired_width(80.0))
                .labelled_by(l.id);
            ui.end_row();

            if w.slot.needs_pin() {
                let l = ui.label("Card PIN");
                ui.add(
                    egui::TextEdit::singleline(&mut *w.pin)
                        .password(true)
                        .desired_width(120.0),
                )
                .labelled_by(l.id);
                ui.end_row();
            }
        });
    if let (true, Some(r)) = (w.slot.needs_pin(), pane.report.as_deref()) {
        match r.pin {
            PinStatus::Retries(1) => {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    "Last PIN try: a wrong PIN now blocks the PIN.",
                );
            }
            PinStatus::Retries(n) => {
                ui.label(format!("{n} PIN tries left."));
            }
            PinStatus::Blocked => {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    "The PIN is blocked: unblock it with the PUK first.",
                );
            }
            PinStatus::Verified => {}
        }
    }
    if w.slot.needs_pin() && Pin::card_pin(&w.pin).is_ok_and(|p| p.is_factory_default()) {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            "This is the factory PIN: have the holder change it after enrollment.",
        );
    } else if !w.slot.needs_pin() {
        ui.label(format!(
            "Slot {} needs no PIN: it is what a gateway uses at a tap.",
            w.slot.short()
        ));
    }
    if let Some(what) = slot_occupant(pane.report.as_deref(), w.slot) {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            format!("Slot {} already holds {what}.", w.slot.short()),
        );
        ui.checkbox(
            &mut w.replace_confirmed,
            "Replace it (the old key and certificate are destroyed)",
        );
    }
    if console.configured {
        ui.checkbox(
            &mut pane.wizard.upload_when_done,
            "Upload the certificate to the console when enrolled",
        );
    }
    let problem = pane.wizard.request(pane.report.as_deref()).err();
    if let Some(p) = &problem {
        ui.colored_label(ui.visuals().warn_fg_color, p);
    }
    ui.horizontal(|ui| {
        let can = problem.is_none() && card_present;
        let go = ui.add_enabled(can, egui::Button::new("Enroll")).clicked() || (enter && can);
        if go {
            if let Ok(req) = pane.wizard.request(pane.report.as_deref()) {
                submit(pane, req);
            }
        }
        if ui.button("Cancel").clicked() || escape {
            pane.wizard.stage = Stage::Check;
        }
    });
}

fn submit(pane: &mut ReaderPane, req: EnrollRequest) {
    // The request carries its own copy; the form forgets the PIN.
    pane.wizard.pin = Zeroizing::new(String::new());
    pane.wizard.note = None;
    pane.wizard.ready_for_next = false;
    pane.wizard.stage = Stage::Running {
        step: EnrollStep::CheckCard,
        cancelling: false,
    };
    pane.worker.submit(Job::Enroll(Box::new(req)));
}

#[allow(clippy::too_many_arguments)]
fn done_stage(
    pane: &mut ReaderPane,
    ui: &mut egui::Ui,
    desk_mode: bool,
    outcome: &EnrollOutcome,
    events: &Sender<AppEvent>,
    waker: &Waker,
    escape: bool,
    console: &ConsoleStatus,
) -> Option<Action> {
    let mut action = None;
    let green = egui::Color32::from_rgb(0x2e, 0xa0, 0x5a);
    ui.colored_label(
        green,
        egui::RichText::new("Done — remove the card")
            .heading()
            .strong(),
    );
    if desk_mode {
        ui.label("Then insert the next blank card.");
    }
    egui::Grid::new("outcome")
        .num_columns(2)
        .spacing([12.0, 4.0])
        .show(ui, |ui| {
            ui.label("Subject");
            ui.label(&outcome.subject);
            ui.end_row();
            ui.label("Slot");
            ui.label(outcome.slot.to_string());
            ui.end_row();
            ui.label("Valid until");
            ui.label(format_unix(outcome.not_after));
            ui.end_row();
            ui.label("CHUID GUID");
            ui.label(&outcome.chuid_guid);
            ui.end_row();
            ui.label("SHA-256");
            ui.label(egui::RichText::new(&outcome.fingerprint).monospace());
            ui.end_row();
        });
    ui.horizontal(|ui| {
        if ui.button("Copy fingerprint").clicked() {
            ui.ctx().copy_text(outcome.fingerprint.clone());
        }
        ui.separator();
        ui.radio_value(&mut pane.wizard.export_der, false, "PEM");
        ui.radio_value(&mut pane.wizard.export_der, true, "DER");
        if ui.button("Export certificate…").clicked() {
            let name = export_file_name(
                outcome.card_serial,
                &outcome.chuid_guid,
                outcome.slot.short(),
                &outcome.fingerprint,
                pane.wizard.export_der,
            );
            pane.wizard.export_result = None;
            export::save_with_dialog(
                pane.name.clone(),
                outcome.certificate_der.clone(),
                name,
                events.clone(),
                waker.clone(),
            );
        }
    });
    match &pane.wizard.export_result {
        Some(Ok(path)) => {
            ui.label(format!("Saved to {path}"));
        }
        Some(Err(e)) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        None => {}
    }
    let fp = &outcome.fingerprint;
    if !console.configured {
        ui.label("Console upload: no console is configured at this station ([console] in the config file).");
    } else if console.delivered.contains(fp) {
        ui.label("Uploaded to the console.");
    } else if let Some(item) = console.outbox.iter().find(|i| &i.fingerprint == fp) {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            format!(
                "Queued for the console ({} attempts){}",
                item.attempts,
                item.last_error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
        );
    } else if ui.button("Upload to console").clicked() {
        action = Some(Action::Upload(Box::new(outcome.clone())));
    }
    if ui.button("Enroll another").clicked() || escape {
        pane.wizard.stage = Stage::Check;
    }
    action
}
