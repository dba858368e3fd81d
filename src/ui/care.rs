//! The Card care screen: PIN and PUK for the holder at the desk, reset of a
//! blocked card, revocation, renewal before expiry (same key, no downtime), and
//! card replacement (lost, stolen, damaged).

use crate::app::pin_care;
use crate::store::AuditAction;
use eframe::egui;
use zeroize::Zeroizing;

use crate::app::console_worker::ConsoleStatus;
use crate::app::console_worker::SearchFor;
use crate::app::enroll::EnrollRequest;
use crate::app::failure::Failure;
use crate::app::pin_care::{reset_confirmation, RESET_WARNING};
use crate::app::reader_worker::{Job, PinCareOp};
use crate::app::renew::{RenewOutcome, RenewRequest};
use crate::app::replace::{ReplaceOutcome, ReplaceRequest};
use crate::config::Config;
use crate::store::EnrollmentRecord;
use cardstation_piv::{Pin, PinStatus};
use cardstation_pki::certificate::format_unix;
use cardstation_protocol::messages::{is_fingerprint, CertificateRecord, RevocationReason};

use super::command::{CardView, Command};
use super::console_view::{holder, SearchBox, StatusFilter};
use super::style::{self, GREEN};

/// What the station knows of the certificate a replacement revokes.
enum OldCard {
    LookingUp,
    Known(Box<EnrollmentRecord>),
    Unknown,
    Failed(String),
}

pub struct CareScreen {
    pub old_pin: Zeroizing<String>,
    pub new_pin: Zeroizing<String>,
    pub puk: Zeroizing<String>,
    pub new_puk: Zeroizing<String>,
    pub last_try: bool,
    pub confirm: String,
    pub replace_old: String,
    pub replace_reason: RevocationReason,
    /// The old card found by its holder on the console.
    pub replace_search: SearchBox,
    picked: Option<Box<CertificateRecord>>,
    /// The operator saw the old card and asked to go on.
    replace_asked: bool,
    old_card: Option<(String, OldCard)>,
    revoke_reason: RevocationReason,
    revoke_confirmed: bool,
    revoked: Vec<String>,
    pub busy: bool,
    pub result: Option<Result<String, Failure>>,
    pub replaced: Option<Box<ReplaceOutcome>>,
    /// The PIN for renewing a slot that signs only after it (9a, 9c, 9d).
    renew_pin: Zeroizing<String>,
    /// Renew onto a key made on the card now (the old key is replaced).
    pub renew_new_key: bool,
    pub renewed: Option<Box<RenewOutcome>>,
    /// Replacement enrols with the station's profile from the settings.
    profile: EnrollRequest,
}

impl CareScreen {
    pub fn new(config: &Config) -> Self {
        CareScreen {
            old_pin: Zeroizing::default(),
            new_pin: Zeroizing::default(),
            puk: Zeroizing::default(),
            new_puk: Zeroizing::default(),
            last_try: false,
            confirm: String::new(),
            replace_old: String::new(),
            replace_reason: RevocationReason::Lost,
            replace_search: SearchBox::default(),
            picked: None,
            replace_asked: false,
            old_card: None,
            revoke_reason: RevocationReason::Lost,
            revoke_confirmed: false,
            revoked: Vec::new(),
            busy: false,
            result: None,
            replaced: None,
            renew_pin: Zeroizing::default(),
            renew_new_key: false,
            renewed: None,
            profile: EnrollRequest::from_settings(config),
        }
    }

    /// Secrets are for one attempt: cleared whatever the outcome.
    fn clear_secrets(&mut self) {
        self.old_pin = Zeroizing::default();
        self.new_pin = Zeroizing::default();
        self.puk = Zeroizing::default();
        self.new_puk = Zeroizing::default();
        self.renew_pin = Zeroizing::default();
        self.last_try = false;
    }

    pub fn on_done(&mut self, result: Result<AuditAction, Failure>) {
        self.busy = false;
        self.result = Some(result.map(|a| pin_care::done_message(a).to_string()));
    }

    pub fn on_replaced(&mut self, outcome: Box<ReplaceOutcome>) {
        self.busy = false;
        self.replace_asked = false;
        self.replaced = Some(outcome);
    }

    pub fn on_renewed(&mut self, outcome: Box<RenewOutcome>) {
        self.busy = false;
        self.renewed = Some(outcome);
    }

    pub fn on_failed(&mut self, failure: Failure) {
        self.busy = false;
        self.replace_asked = false;
        self.result = Some(Err(failure));
    }

    pub fn on_old_card(
        &mut self,
        fingerprint: &str,
        record: Result<Option<Box<EnrollmentRecord>>, String>,
    ) {
        if let Some((fp, state)) = &mut self.old_card {
            if fp == fingerprint {
                *state = match record {
                    Ok(Some(r)) => OldCard::Known(r),
                    Ok(None) => OldCard::Unknown,
                    Err(e) => OldCard::Failed(e),
                };
            }
        }
    }

    fn submit(&mut self, op: PinCareOp) -> Command {
        self.clear_secrets();
        self.busy = true;
        self.result = None;
        Command::Job(Job::PinCare(Box::new(op)))
    }

    pub fn show(
        &mut self,
        ui: &mut egui::Ui,
        card: &CardView<'_>,
        console: &ConsoleStatus,
    ) -> Option<Command> {
        ui.heading(format!("Card care — {}", card.reader));
        if !card.present {
            ui.label("Insert the holder's card.");
            return None;
        }
        let pin = card.report.map(|r| r.pin);
        match pin {
            Some(PinStatus::Retries(1)) => {
                style::error(ui, "1 PIN try left: the next wrong PIN blocks it.");
            }
            Some(PinStatus::Retries(n)) => {
                ui.label(format!("{n} PIN tries left."));
            }
            Some(PinStatus::Blocked) => {
                style::error(ui, "The PIN is blocked: unblock it with the PUK below.");
            }
            Some(PinStatus::Verified) | None => {}
        }
        if self.busy {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Working with the card…");
            });
        }
        match &self.result {
            Some(Ok(text)) => {
                style::good(ui, text.as_str());
            }
            Some(Err(f)) => {
                style::failure(ui, "care-failure", &f.message);
            }
            None => {}
        }
        let idle = !self.busy && !card.busy;
        let last = matches!(pin, Some(PinStatus::Retries(1)));
        let mut command = None;

        ui.add_space(8.0);
        ui.strong("Change the PIN");
        secret_field(ui, "Current PIN", &mut self.old_pin);
        secret_field(ui, "New PIN", &mut self.new_pin);
        if last {
            ui.checkbox(&mut self.last_try, "I understand this is the last try");
        }
        if ui
            .add_enabled(idle, egui::Button::new("Change PIN"))
            .clicked()
        {
            match (Pin::card_pin(&self.old_pin), Pin::card_pin(&self.new_pin)) {
                (Ok(old), Ok(new)) => {
                    let last_try = self.last_try;
                    command = Some(self.submit(PinCareOp::ChangePin { old, new, last_try }));
                }
                (Err(e), _) | (_, Err(e)) => self.result = Some(Err(Failure::from(e))),
            }
        }

        ui.add_space(8.0);
        ui.strong("Unblock the PIN with the PUK");
        secret_field(ui, "PUK", &mut self.puk);
        secret_field(ui, "New PIN for unblocking", &mut self.new_puk);
        if ui
            .add_enabled(idle, egui::Button::new("Unblock PIN"))
            .clicked()
        {
            match (Pin::puk(&self.puk), Pin::card_pin(&self.new_puk)) {
                (Ok(puk), Ok(new_pin)) => {
                    let last_try = self.last_try;
                    command = Some(self.submit(PinCareOp::Unblock {
                        puk,
                        new_pin,
                        last_try,
                    }));
                }
                (Err(e), _) | (_, Err(e)) => self.result = Some(Err(Failure::from(e))),
            }
        }

        if pin == Some(PinStatus::Blocked) {
            ui.add_space(8.0);
            ui.strong("Reset the card (PIN and PUK both blocked)");
            style::warn(ui, RESET_WARNING);
            let expected = reset_confirmation(card.reader);
            ui.horizontal(|ui| {
                let l = ui.label(format!("Type \"{expected}\""));
                ui.add(egui::TextEdit::singleline(&mut self.confirm).desired_width(260.0))
                    .labelled_by(l.id);
            });
            let typed = self.confirm.trim() == expected;
            if ui
                .add_enabled(idle && typed, egui::Button::new("Reset card"))
                .clicked()
            {
                let confirmation = std::mem::take(&mut self.confirm);
                command = Some(self.submit(PinCareOp::Reset { confirmation }));
            }
        }

        ui.add_space(12.0);
        ui.separator();
        if let Some(c) = self.revoke_section(ui, card, console) {
            command = Some(c);
        }
        ui.add_space(12.0);
        ui.separator();
        if let Some(c) = self.renew_section(ui, card, console, idle) {
            command = Some(c);
        }
        ui.add_space(12.0);
        ui.separator();
        if let Some(c) = self.replace_section(ui, card, console, idle) {
            command = Some(c);
        }
        command
    }

    /// Revoke the certificate on the card in the reader: gateways refuse it once
    /// they hold the next trust bundle.
    fn revoke_section(
        &mut self,
        ui: &mut egui::Ui,
        card: &CardView<'_>,
        console: &ConsoleStatus,
    ) -> Option<Command> {
        ui.strong("Revoke this card");
        let certs: Vec<_> = card
            .report
            .map(|r| {
                r.slots
                    .iter()
                    .filter_map(|s| s.certificate.as_ref().map(|c| (s.slot, c)))
                    .collect()
            })
            .unwrap_or_default();
        let Some((slot, cert)) = certs.first() else {
            ui.label("The card holds no certificate to revoke.");
            return None;
        };
        if !console.configured {
            style::wrapped(ui, "Revocation goes through the management console, and none is set up at this station.");
            return None;
        }
        let fp = cert.sha256.clone();
        if self.revoked.contains(&fp) {
            if console.delivered.contains(&fp)
                || !console.outbox.iter().any(|i| i.fingerprint == fp)
            {
                style::good(ui, "Revoked on the console: gateways refuse this card once they have the new trust bundle.");
            } else {
                style::warn(
                    ui,
                    "Revocation queued: it is sent as soon as the console answers.",
                );
            }
            return None;
        }
        style::wrapped(
            ui,
            format!(
                "Slot {}: \"{}\", valid until {}.",
                slot.short(),
                cert.subject,
                format_unix(cert.not_after)
            ),
        );
        let mut command = None;
        ui.horizontal(|ui| {
            let l = ui.label("Reason");
            reason_combo(ui, "revoke-reason", &mut self.revoke_reason).labelled_by(l.id);
            ui.checkbox(
                &mut self.revoke_confirmed,
                "Gateways must refuse this card from now on",
            );
            if ui
                .add_enabled(
                    self.revoke_confirmed,
                    egui::Button::new("Revoke certificate"),
                )
                .clicked()
            {
                self.revoked.push(fp.clone());
                self.revoke_confirmed = false;
                command = Some(Command::Revoke {
                    fingerprint: fp.clone(),
                    reason: self.revoke_reason,
                });
            }
        });
        command
    }

    /// Renew the certificate in the station's slot: the same key (or one made on the
    /// card now), a certificate that ends later; the old one is retired at the console only after the new one
    /// passed its self-test, and gateways accept both until the old one's end.
    fn renew_section(
        &mut self,
        ui: &mut egui::Ui,
        card: &CardView<'_>,
        console: &ConsoleStatus,
        idle: bool,
    ) -> Option<Command> {
        ui.strong("Renew this card");
        let slot = self.profile.slot;
        let cert = card.report.and_then(|r| {
            r.slots
                .iter()
                .find(|s| s.slot == slot)
                .and_then(|s| s.certificate.as_ref())
        });
        let Some(cert) = cert else {
            ui.label(format!(
                "Slot {} holds no certificate to renew: enrol the card instead.",
                slot.short()
            ));
            return None;
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let days_left = (cert.not_after - now).div_euclid(86_400);
        let line = format!(
            "Slot {}: \"{}\", valid until {} ({}).",
            slot.short(),
            cert.subject,
            format_unix(cert.not_after),
            if days_left < 0 {
                "expired".to_string()
            } else {
                format!("{days_left} days left")
            }
        );
        if days_left < i64::from(super::console_view::EXPIRING_DAYS) {
            style::warn(ui, line);
        } else {
            style::wrapped(ui, line);
        }
        style::wrapped(
            ui,
            "The card gets a certificate that ends later; gateways accept the card throughout.",
        );
        ui.checkbox(
            &mut self.renew_new_key,
            "On a new key made on the card (the old key is replaced)",
        );
        if slot.needs_pin() {
            secret_field(ui, "Card PIN", &mut self.renew_pin);
        }
        let mut command = None;
        if ui
            .add_enabled(idle, egui::Button::new("Renew certificate"))
            .clicked()
        {
            let pin = if slot.needs_pin() {
                match Pin::card_pin(&self.renew_pin) {
                    Ok(pin) => Some(pin),
                    Err(e) => {
                        self.result = Some(Err(Failure::from(e)));
                        return None;
                    }
                }
            } else {
                None
            };
            self.renew_pin = Zeroizing::default();
            self.busy = true;
            self.result = None;
            self.renewed = None;
            command = Some(Command::Job(Job::Renew(Box::new(RenewRequest {
                slot,
                valid_days: self.profile.valid_days,
                pin,
                upload: console.configured,
                new_key: self.renew_new_key,
            }))));
        }
        if let Some(r) = &self.renewed {
            ui.colored_label(
                GREEN,
                format!(
                    "Renewed: valid until {}. The old certificate stays valid until {}{}.",
                    format_unix(r.not_after),
                    format_unix(r.old_not_after),
                    if console.configured {
                        " and is marked renewed at the console"
                    } else {
                        ""
                    }
                ),
            );
            ui.label(egui::RichText::new(format!("old  {}", r.old_fingerprint)).monospace());
            ui.label(egui::RichText::new(format!("new  {}", r.fingerprint)).monospace());
        }
        command
    }

    fn replace_section(
        &mut self,
        ui: &mut egui::Ui,
        card: &CardView<'_>,
        console: &ConsoleStatus,
        idle: bool,
    ) -> Option<Command> {
        ui.strong("Replace a card");
        style::wrapped(ui, "For a card lost, stolen or damaged: revokes the old certificate on the console (queued when it is away) and enrols the card in this reader for the same holder or device. A card that is only expiring is renewed above instead, with nothing revoked.");
        let mut command = None;
        if console.configured {
            // Start from who holds the old card: their name, a device label, a serial.
            let last = console.search(SearchFor::Replace);
            let busy = self.replace_search.searching(last);
            if self.replace_search.field(ui, "Find the old card", busy) {
                command = Some(self.replace_search.command(
                    SearchFor::Replace,
                    StatusFilter::Active,
                    20,
                    last,
                ));
            }
            self.replace_search.state_line(ui, last);
            if let Some(s) = last {
                for r in &s.records {
                    let chosen = self.replace_old.trim() == r.sha256;
                    let text = format!(
                        "{} · serial {} · station {} · uploaded {}",
                        holder(r),
                        r.card_serial.map(|n| n.to_string()).unwrap_or("-".into()),
                        r.station_id,
                        format_unix(r.uploaded_at)
                    );
                    if ui.selectable_label(chosen, text).clicked() {
                        self.replace_old = r.sha256.clone();
                        self.picked = Some(Box::new(r.clone()));
                        self.replace_asked = false;
                    }
                }
            }
        }
        ui.horizontal(|ui| {
            let l = ui.label("Old certificate (SHA-256)");
            let r = ui
                .add(egui::TextEdit::singleline(&mut self.replace_old).desired_width(480.0))
                .labelled_by(l.id);
            if r.changed() {
                self.replace_asked = false;
            }
        });
        ui.horizontal(|ui| {
            let l = ui.label("Reason");
            reason_combo(ui, "replace-reason", &mut self.replace_reason).labelled_by(l.id);
        });
        let fp = self
            .replace_old
            .trim()
            .to_ascii_lowercase()
            .replace(':', "");
        let fp_ok = is_fingerprint(&fp);
        if fp_ok && self.old_card.as_ref().is_none_or(|(f, _)| f != &fp) {
            self.old_card = Some((fp.clone(), OldCard::LookingUp));
            command = Some(Command::LookUp(fp.clone()));
        }
        // The old card as the station knows it, or as the card in the reader shows it.
        let in_reader = card.report.and_then(|r| {
            r.slots
                .iter()
                .filter_map(|s| s.certificate.as_ref())
                .find(|c| c.sha256 == fp)
        });
        if fp_ok {
            match (&self.old_card, in_reader) {
                (_, Some(c)) => {
                    style::wrapped(
                        ui,
                        format!(
                            "Old card: \"{}\", in this reader now (renewal), valid until {}.",
                            c.subject,
                            format_unix(c.not_after)
                        ),
                    );
                }
                (Some((_, OldCard::Known(r))), None) => {
                    style::wrapped(
                        ui,
                        format!(
                            "Old card: \"{}\", enrolled {} at station {} by {}.",
                            r.subject,
                            format_unix(r.finished_at.unwrap_or(r.started_at)),
                            r.station_id,
                            r.operator
                        ),
                    );
                }
                (Some((_, OldCard::Unknown)), None) => {
                    match self.picked.as_ref().filter(|p| p.sha256 == fp) {
                        Some(p) => {
                            style::wrapped(
                                ui,
                                format!(
                                "Old card: \"{}\", card serial {}, uploaded {} by station {} ({}).",
                                holder(p),
                                p.card_serial.map(|n| n.to_string()).unwrap_or("-".into()),
                                format_unix(p.uploaded_at),
                                p.station_id,
                                p.operator
                            ),
                            );
                        }
                        None => {
                            style::warn(ui, "This station has no record of that certificate: check the fingerprint. It is revoked all the same.");
                        }
                    }
                }
                (Some((_, OldCard::Failed(e))), None) => {
                    style::failure(ui, "old-card", e);
                }
                (Some((_, OldCard::LookingUp)), None) | (None, None) => {
                    ui.label("Looking up the old card…");
                }
            }
        }
        let can = idle && fp_ok && card.present;
        if !self.replace_asked {
            if ui
                .add_enabled(can, egui::Button::new("Replace card…"))
                .clicked()
            {
                self.replace_asked = true;
            }
        } else {
            style::warn(
                ui,
                format!(
                "Revoke the old certificate ({}) and enrol the card in {} with slot {}, {} days?",
                self.replace_reason,
                card.reader,
                self.profile.slot.short(),
                self.profile.valid_days
            ),
            );
            ui.horizontal(|ui| {
                if ui
                    .add_enabled(can, egui::Button::new("Confirm replacement"))
                    .clicked()
                {
                    self.busy = true;
                    self.result = None;
                    self.replaced = None;
                    let req = ReplaceRequest {
                        old_fingerprint: fp.clone(),
                        reason: self.replace_reason,
                        subject_override: None,
                        old_record: self.picked.as_deref().filter(|p| p.sha256 == fp).cloned(),
                        enroll: EnrollRequest {
                            upload: Some(Default::default()),
                            ..self.profile.clone()
                        },
                    };
                    command = Some(Command::Job(Job::Replace(Box::new(req))));
                }
                if ui.button("Back").clicked() {
                    self.replace_asked = false;
                }
            });
        }
        if let Some(r) = &self.replaced {
            ui.colored_label(GREEN, if r.renewal { "Renewed." } else { "Replaced." });
            ui.label(
                egui::RichText::new(format!(
                    "old  {}  (revocation: {})",
                    r.old_fingerprint, r.reason
                ))
                .monospace(),
            );
            ui.label(egui::RichText::new(format!("new  {}", r.new_fingerprint)).monospace());
        }
        command
    }
}

fn reason_combo(ui: &mut egui::Ui, id: &str, reason: &mut RevocationReason) -> egui::Response {
    egui::ComboBox::from_id_salt(id)
        .selected_text(reason.as_str())
        .show_ui(ui, |ui| {
            for r in RevocationReason::ALL {
                ui.selectable_value(reason, r, r.as_str());
            }
        })
        .response
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
