//! The enrollment wizard: Check card → Credentials → Key → Certificate →
//! Write & self-test → Export / Upload. The card work itself is `app::enroll`, run
//! by the reader's worker; the rules (validity, what a slot may hold) are asked of
//! `app::enroll`. This screen holds the form, shows progress and returns commands.

use eframe::egui;
use zeroize::Zeroizing;

use crate::app::console_worker::ConsoleStatus;
use crate::app::enroll::{slot_occupant, EnrollOutcome, EnrollRequest, EnrollStep};
use crate::app::failure::{ErrorCode, Failure};
use crate::app::reader_worker::{export_file_name, Job};
use crate::config::Config;
use cardstation_piv::{Pin, PinStatus, Slot};
use cardstation_pki::certificate::format_unix;

use super::command::{CardView, Command};
use super::events::Saved;
use super::style::{self, CopyFeedback, GREEN};

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

/// What the window around the wizard knows that the wizard shows.
pub struct WizardContext<'a> {
    pub card: CardView<'a>,
    pub desk_mode: bool,
    /// The console link this reader's cards go to.
    pub console: &'a ConsoleStatus,
    /// That link is the window's throw-away demo console.
    pub demo_console: bool,
}

pub struct Wizard {
    pub stage: Stage,
    /// Queue the certificate for the console as soon as the card is enrolled.
    pub upload_when_done: bool,
    pub slot: Slot,
    pub subject: String,
    /// Who or what holds the card ("gw-17 Plant B", "J. Smith").
    pub label: String,
    pub days: String,
    pub pin: Zeroizing<String>,
    pub replace_confirmed: bool,
    pub export_der: bool,
    pub export_result: Option<Result<Saved, String>>,
    /// Desk mode: the previous card is done and out; the next blank card goes straight on.
    pub ready_for_next: bool,
    pub note: Option<String>,
    profile: EnrollRequest,
    /// The first field of a step takes the keyboard once, when the step opens.
    focus_pending: bool,
    /// Validation speaks once the operator typed something or tried to go on.
    show_problems: bool,
    copy: CopyFeedback,
}

impl Wizard {
    pub fn new(config: &Config) -> Self {
        let profile = EnrollRequest::from_settings(config);
        Wizard {
            stage: Stage::Check,
            upload_when_done: true,
            slot: profile.slot,
            subject: profile.subject_template.clone(),
            label: String::new(),
            days: profile.valid_days.to_string(),
            pin: Zeroizing::new(String::new()),
            replace_confirmed: false,
            export_der: false,
            export_result: None,
            ready_for_next: false,
            note: None,
            profile,
            focus_pending: true,
            show_problems: false,
            copy: CopyFeedback::default(),
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self.stage, Stage::Running { .. })
    }

    /// A short word for the readers panel: where this reader's enrollment stands.
    pub fn summary(&self) -> Option<&'static str> {
        match &self.stage {
            Stage::Credentials => Some("enrollment: details"),
            Stage::Running {
                cancelling: true, ..
            } => Some("cancelling…"),
            Stage::Running { .. } => Some("enrolling…"),
            Stage::Done(_) => Some("done — remove the card"),
            Stage::Failed { .. } => Some("enrollment failed"),
            Stage::Check => None,
        }
    }

    fn go(&mut self, stage: Stage) {
        self.stage = stage;
        self.focus_pending = true;
        self.show_problems = false;
        self.copy.clear();
    }

    /// Index into `STEPS` of the step in progress (or reached, or failed).
    fn current_index(&self, uploaded: bool) -> usize {
        match &self.stage {
            Stage::Check => 0,
            Stage::Credentials => 1,
            Stage::Running { step, .. } => step_index(*step),
            Stage::Failed { failure, at } => failed_index(failure, *at),
            Stage::Done(_) if uploaded || matches!(self.export_result, Some(Ok(_))) => STEPS.len(),
            Stage::Done(_) => STEPS.len() - 1,
        }
    }

    pub fn on_card_inserted(&mut self, desk_mode: bool) {
        match &self.stage {
            Stage::Failed { failure, .. } if failure.is(ErrorCode::CardRemoved) => {
                self.go(Stage::Credentials);
                self.note =
                    Some("Card reinserted: check the details and press Enroll to resume.".into());
            }
            // A result belongs to the card it was about: a new card starts afresh.
            Stage::Done(_) | Stage::Failed { .. } => {
                if desk_mode {
                    self.ready_next();
                } else {
                    self.go(Stage::Check);
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
                    self.go(Stage::Check);
                }
                self.note = Some(note);
            }
            Stage::Credentials => {
                self.go(Stage::Check);
                self.note = Some("The card was removed.".into());
            }
            _ => {}
        }
    }

    fn ready_next(&mut self) {
        self.go(Stage::Check);
        self.ready_for_next = true;
        self.replace_confirmed = false;
        self.export_result = None;
        self.note = None;
    }

    pub fn on_step(&mut self, step: EnrollStep) {
        if let Stage::Running { cancelling, .. } = self.stage {
            self.stage = Stage::Running { step, cancelling };
        }
    }

    pub fn on_enrolled(&mut self, outcome: Box<EnrollOutcome>) {
        self.go(Stage::Done(outcome));
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
        self.go(Stage::Failed { failure, at });
    }

    /// The form as a request, checked by `app::enroll`'s own rules.
    fn request(&self, card: &CardView<'_>, upload: bool) -> Result<EnrollRequest, String> {
        let valid_days = self
            .days
            .trim()
            .parse()
            .map_err(|_| "Validity: give a number of days.".to_string())?;
        let pin = if self.slot.needs_pin() {
            Some(Pin::card_pin(&self.pin).map_err(|e| format!("Card PIN: {e}."))?)
        } else {
            None
        };
        let req = EnrollRequest {
            slot: self.slot,
            subject_template: self.subject.clone(),
            valid_days,
            pin,
            force: self.replace_confirmed,
            upload: upload.then(Default::default),
            label: Some(self.label.trim().to_string()).filter(|l| !l.is_empty()),
            ..self.profile.clone()
        };
        req.validate().map_err(|e| capitalised(&e.to_string()))?;
        let occupied = card.report.and_then(|r| slot_occupant(r, self.slot));
        if occupied.is_some() && !self.replace_confirmed {
            return Err("This slot is in use: confirm that it may be replaced.".into());
        }
        Ok(req)
    }

    fn submit(&mut self, req: EnrollRequest) -> Command {
        // The request carries its own copy; the form forgets the PIN.
        self.pin = Zeroizing::new(String::new());
        self.note = None;
        self.ready_for_next = false;
        self.go(Stage::Running {
            step: EnrollStep::CheckCard,
            cancelling: false,
        });
        Command::Job(Job::Enroll(Box::new(req)))
    }

    /// Draw the wizard for the card in `cx`.
    pub fn show(&mut self, ui: &mut egui::Ui, cx: &WizardContext<'_>) -> Option<Command> {
        let uploads = cx.console.configured;
        let uploaded =
            matches!(&self.stage, Stage::Done(o) if cx.console.delivered.contains(&o.fingerprint));
        ui.heading(format!("Enroll — {}", cx.card.reader));
        step_indicator(
            ui,
            STEPS.as_slice(),
            self.current_index(uploaded),
            self.failed(),
        );
        ui.add_space(8.0);
        if let Some(note) = &self.note {
            style::wrapped(ui, note.as_str());
        }
        let enter = ui.input(|i| i.key_pressed(egui::Key::Enter));
        let escape = ui.input(|i| i.key_pressed(egui::Key::Escape));
        match &self.stage {
            Stage::Check => self.check_stage(ui, cx, enter, uploads),
            Stage::Credentials => self.credentials_stage(ui, cx, enter, escape, uploads),
            Stage::Running { step, cancelling } => {
                let (step, cancelling) = (*step, *cancelling);
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(if cancelling {
                        "Cancelling…"
                    } else {
                        step_detail(step)
                    });
                });
                ui.label("Keep the card in the reader.");
                let cancel = ui
                    .add_enabled(!cancelling, egui::Button::new("Cancel enrollment"))
                    .clicked();
                if (cancel || escape) && !cancelling {
                    self.stage = Stage::Running {
                        step,
                        cancelling: true,
                    };
                    return Some(Command::Cancel);
                }
                None
            }
            Stage::Done(outcome) => {
                let outcome = outcome.clone();
                self.done_stage(ui, cx, &outcome, escape)
            }
            Stage::Failed { failure, at } => {
                let (failure, at) = (failure.clone(), *at);
                let cancelled = failure.is(ErrorCode::Cancelled);
                let heading = if cancelled {
                    "Enrollment cancelled"
                } else {
                    "Enrollment failed"
                };
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    egui::RichText::new(heading).heading(),
                );
                if let Some(step) = at {
                    style::wrapped(
                        ui,
                        format!("Stopped at: {}.", STEPS[failed_index(&failure, Some(step))]),
                    );
                }
                style::failure(ui, "enroll-failure", &failure.message);
                if failure.is(ErrorCode::CardRemoved) {
                    ui.strong("Reinsert the card to resume.");
                }
                ui.label("The card is not enrolled.");
                ui.horizontal(|ui| {
                    if ui.button("Try again").clicked() || enter {
                        self.go(Stage::Credentials);
                    }
                    if ui.button("Back").clicked() || escape {
                        self.go(Stage::Check);
                    }
                });
                None
            }
        }
    }

    fn failed(&self) -> bool {
        matches!(self.stage, Stage::Failed { .. })
    }

    fn check_stage(
        &mut self,
        ui: &mut egui::Ui,
        cx: &WizardContext<'_>,
        enter: bool,
        uploads: bool,
    ) -> Option<Command> {
        let card = &cx.card;
        if !card.present {
            ui.label(if self.ready_for_next {
                "Insert the next blank card."
            } else {
                "Insert a card into this reader."
            });
            return None;
        }
        let Some(report) = card.report else {
            if let Some(e) = card.report_error {
                style::failure(ui, "inspect-failure", &e.message);
                if ui.button("Read the card again").clicked() {
                    return Some(Command::Inspect);
                }
            } else {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Checking the card…");
                });
            }
            return None;
        };
        if let Some(refusal) = card.refusal {
            // Known before the card is touched: enrolling it would only be refused.
            style::failure(ui, "site-refuses-card", &refusal.message);
            return None;
        }
        if report.is_blank() {
            ui.label("A blank PIV card: ready to enroll.");
        } else {
            ui.label("This card already holds certificates (see the card details below).");
        }
        if report.management_key.is_default == Some(true) {
            style::warn(
                ui,
                "Factory management key: anyone could change this card. Enrollment replaces it with a key of its own.",
            );
        }
        match report.pin {
            PinStatus::Blocked => {
                style::error(
                    ui,
                    "The PIN is blocked: unblock it with the PUK (Card care) before using slots that need it.",
                );
            }
            PinStatus::Retries(n) if n <= 1 => {
                style::warn(ui, format!("Only {n} PIN try left."));
            }
            _ => {}
        }
        let blank = report.is_blank();
        let start = if self.ready_for_next && cx.desk_mode && blank {
            if self.slot.needs_pin() {
                ui.label(
                    "Desk mode: same profile as the previous card; this card's PIN is needed.",
                );
                self.focused_button(ui, "Enter the PIN").clicked() || enter
            } else {
                ui.label("Desk mode: same profile as the previous card.");
                if self.focused_button(ui, "Enroll next card").clicked() || enter {
                    match self.request(card, uploads && self.upload_when_done) {
                        Ok(req) => return Some(self.submit(req)),
                        Err(msg) => {
                            self.go(Stage::Credentials);
                            self.note = Some(msg);
                            self.show_problems = true;
                        }
                    }
                }
                false
            }
        } else {
            self.focused_button(ui, "Start enrollment").clicked() || enter
        };
        if start && !card.busy {
            self.go(Stage::Credentials);
            self.note = None;
        }
        None
    }

    /// The step's main button, focused when the step opens so Enter and Space work.
    fn focused_button(&mut self, ui: &mut egui::Ui, label: &str) -> egui::Response {
        let r = ui.button(label);
        if std::mem::take(&mut self.focus_pending) {
            r.request_focus();
        }
        r
    }

    fn credentials_stage(
        &mut self,
        ui: &mut egui::Ui,
        cx: &WizardContext<'_>,
        enter: bool,
        escape: bool,
        uploads: bool,
    ) -> Option<Command> {
        let card = &cx.card;
        let focus = std::mem::take(&mut self.focus_pending);
        let mut edited = false;
        let mut left_field = false;
        egui::Grid::new("credentials")
            .num_columns(2)
            .spacing([12.0, 8.0])
            .show(ui, |ui| {
                let l = ui.label("Slot");
                egui::ComboBox::from_id_salt("slot")
                    .selected_text(self.slot.to_string())
                    .show_ui(ui, |ui| {
                        for s in Slot::ALL {
                            ui.selectable_value(&mut self.slot, s, s.to_string());
                        }
                    })
                    .response
                    .labelled_by(l.id);
                ui.end_row();

                let l = ui.label("Subject");
                let subject = ui
                    .add(egui::TextEdit::singleline(&mut self.subject).desired_width(420.0))
                    .labelled_by(l.id)
                    .on_hover_text(
                        "e.g. CN=gateway-17,O=Acme — {serial} and {guid} are filled in from the card",
                    );
                if focus && !self.slot.needs_pin() {
                    subject.request_focus();
                }
                edited |= subject.changed();
                left_field |= subject.lost_focus();
                ui.end_row();

                let l = ui.label("Holder label");
                let label = ui
                    .add(
                        egui::TextEdit::singleline(&mut self.label)
                            .hint_text("who or what holds the card")
                            .desired_width(420.0),
                    )
                    .labelled_by(l.id)
                    .on_hover_text(
                        "e.g. gw-17 Plant B, or J. Smith: kept with the enrollment and searchable on the console",
                    );
                edited |= label.changed();
                left_field |= label.lost_focus();
                ui.end_row();

                let l = ui.label("Validity (days)");
                let days = ui
                    .add(egui::TextEdit::singleline(&mut self.days).desired_width(80.0))
                    .labelled_by(l.id);
                edited |= days.changed();
                left_field |= days.lost_focus();
                ui.end_row();

                if self.slot.needs_pin() {
                    let l = ui.label("Card PIN");
                    let pin = ui
                        .add(
                            egui::TextEdit::singleline(&mut *self.pin)
                                .password(true)
                                .desired_width(120.0),
                        )
                        .labelled_by(l.id);
                    // The PIN is what this step needs most: it takes the keyboard.
                    if focus {
                        pin.request_focus();
                    }
                    left_field |= pin.lost_focus() && !self.pin.is_empty();
                    ui.end_row();
                }
            });
        if edited && !self.slot.needs_pin() {
            self.show_problems = true;
        }
        if left_field {
            self.show_problems = true;
        }
        if let (true, Some(r)) = (self.slot.needs_pin(), card.report) {
            match r.pin {
                PinStatus::Retries(1) => {
                    style::error(ui, "Last PIN try: a wrong PIN now blocks the PIN.");
                }
                PinStatus::Retries(n) => {
                    ui.label(format!("{n} PIN tries left."));
                }
                PinStatus::Blocked => {
                    style::error(
                        ui,
                        "The PIN is blocked: unblock it with the PUK first (Card care).",
                    );
                }
                PinStatus::Verified => {}
            }
        }
        if self.slot.needs_pin() && Pin::card_pin(&self.pin).is_ok_and(|p| p.is_factory_default()) {
            style::warn(
                ui,
                "This is the factory PIN: have the holder change it after enrollment.",
            );
        } else if !self.slot.needs_pin() {
            ui.label(format!(
                "Slot {} needs no PIN: it is what a gateway uses at a tap.",
                self.slot.short()
            ));
        }
        if let Some(what) = card.report.and_then(|r| slot_occupant(r, self.slot)) {
            style::warn(
                ui,
                format!("Slot {} already holds {what}.", self.slot.short()),
            );
            ui.checkbox(
                &mut self.replace_confirmed,
                "Replace it (the old key and certificate are destroyed)",
            );
        }
        if uploads {
            let label = if cx.demo_console {
                "Upload the certificate to the demo console when enrolled"
            } else {
                "Upload the certificate to the console when enrolled"
            };
            ui.checkbox(&mut self.upload_when_done, label);
        }
        let request = self.request(card, uploads && self.upload_when_done);
        if let (Err(p), true) = (&request, self.show_problems) {
            style::warn(ui, p.as_str());
        }
        let mut command = None;
        ui.horizontal(|ui| {
            let can = card.present && !card.busy;
            let go = ui.add_enabled(can, egui::Button::new("Enroll")).clicked() || (enter && can);
            if go {
                match &request {
                    Ok(req) => command = Some(self.submit(req.clone())),
                    Err(_) => self.show_problems = true,
                }
            }
            if ui.button("Cancel").clicked() || escape {
                self.go(Stage::Check);
            }
        });
        command
    }

    fn done_stage(
        &mut self,
        ui: &mut egui::Ui,
        cx: &WizardContext<'_>,
        outcome: &EnrollOutcome,
        escape: bool,
    ) -> Option<Command> {
        let mut command = None;
        ui.colored_label(
            GREEN,
            egui::RichText::new("Done — remove the card")
                .heading()
                .strong(),
        );
        if cx.card.demo {
            style::wrapped(
                ui,
                "Demo card: recorded only in this window's throw-away demo database, never in the station's records or at a production console.",
            );
        }
        if cx.desk_mode {
            ui.label("Then insert the next blank card.");
        }
        egui::Grid::new("outcome")
            .num_columns(2)
            .spacing([12.0, 4.0])
            .show(ui, |ui| {
                ui.label("Subject");
                style::wrapped(ui, outcome.subject.as_str());
                ui.end_row();
                if let Some(l) = &outcome.label {
                    ui.label("Holder label");
                    style::wrapped(ui, l.as_str());
                    ui.end_row();
                }
                ui.label("Slot");
                ui.label(outcome.slot.to_string());
                ui.end_row();
                ui.label("Valid until");
                ui.label(format_unix(outcome.not_after));
                ui.end_row();
                ui.label("CHUID GUID");
                ui.label(&outcome.chuid_guid);
                ui.end_row();
                ui.label("Key");
                style::wrapped(ui, outcome.key_proof.describe());
                ui.end_row();
                ui.label("SHA-256");
                ui.add(
                    egui::Label::new(egui::RichText::new(&outcome.fingerprint).monospace()).wrap(),
                );
                ui.end_row();
            });
        ui.horizontal(|ui| {
            self.copy
                .button(ui, "Copy fingerprint", &outcome.fingerprint);
            ui.separator();
            ui.radio_value(&mut self.export_der, false, "PEM");
            ui.radio_value(&mut self.export_der, true, "DER");
            if ui.button("Export certificate…").clicked() {
                let name = export_file_name(
                    outcome.card_serial,
                    &outcome.chuid_guid,
                    outcome.slot.short(),
                    &outcome.fingerprint,
                    self.export_der,
                );
                self.export_result = None;
                command = Some(Command::Export {
                    der: outcome.certificate_der.clone(),
                    name,
                    fingerprint: outcome.fingerprint.clone(),
                });
            }
        });
        match &self.export_result {
            Some(Ok(saved)) if saved.without_dialog => {
                style::wrapped(
                    ui,
                    format!(
                        "This desktop has no save dialog, so the certificate was saved to {}",
                        saved.path
                    ),
                );
            }
            Some(Ok(saved)) => {
                style::wrapped(ui, format!("Saved to {}", saved.path));
            }
            Some(Err(e)) => {
                style::failure(ui, "export-failure", e);
            }
            None => {}
        }
        let console = cx.console;
        let fp = &outcome.fingerprint;
        let which = if cx.demo_console {
            "demo console"
        } else {
            "console"
        };
        if !console.configured {
            style::wrapped(
                ui,
                "Console upload: this station has no management console set up. Ask your administrator to connect it; until then, export the certificate.",
            );
        } else if console.delivered.contains(fp) {
            style::good(ui, format!("Uploaded to the {which}."));
        } else if let Some(item) = console.outbox.iter().find(|i| &i.fingerprint == fp) {
            style::warn(
                ui,
                format!(
                    "Waiting to be delivered to the {which} (tried {} times). It is sent as soon as the console answers.",
                    item.attempts
                ),
            );
            if let Some(e) = &item.last_error {
                style::technician_details(ui, "upload-error", std::slice::from_ref(e));
            }
        } else if ui.button(format!("Upload to the {which}")).clicked() {
            command = Some(Command::Upload(Box::new(outcome.clone())));
        }
        if ui.button("Enroll another").clicked() || escape {
            self.go(Stage::Check);
        }
        command
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => {
            f.to_uppercase().collect::<String>()
                + c.as_str()
                + if s.ends_with('.') { "" } else { "." }
        }
        None => String::new(),
    }
}

fn step_index(step: EnrollStep) -> usize {
    match step {
        EnrollStep::CheckCard => 0,
        EnrollStep::Authenticate | EnrollStep::GenerateKey => 2,
        EnrollStep::Certificate => 3,
        EnrollStep::Write | EnrollStep::SelfTest | EnrollStep::Record => 4,
    }
}

/// The step a failure belongs to: what the operator entered is "Credentials",
/// wherever on the card the mistake came to light.
fn failed_index(failure: &Failure, at: Option<EnrollStep>) -> usize {
    let the_form = matches!(
        failure.code,
        ErrorCode::WrongPin
            | ErrorCode::Blocked
            | ErrorCode::PinFormat
            | ErrorCode::PinRequired
            | ErrorCode::SlotInUse
            | ErrorCode::Subject
            | ErrorCode::InvalidRequest
            | ErrorCode::CertificateTooBig
    );
    match at {
        _ if the_form => 1,
        Some(step) => step_index(step),
        None => 1,
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

/// The steps with their state: a filled green dot when done, the accent colour
/// for the current one, red when it failed, an outline when still to come.
fn step_indicator(ui: &mut egui::Ui, steps: &[&str], current: usize, failed: bool) {
    ui.horizontal_wrapped(|ui| {
        for (i, name) in steps.iter().enumerate() {
            let (state, colour) = if i < current {
                ("done", Some(GREEN))
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
            if i + 1 < steps.len() {
                ui.label("›");
            }
        }
    });
}
