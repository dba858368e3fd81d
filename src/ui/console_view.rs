//! The Console tab: every card the console knows (from any station), found by the
//! holder's label, subject, card serial, CHUID GUID, fingerprint prefix or station;
//! one card's details; its revocation, with a reason and a confirmation; the cards
//! to renew (active, not renewed, ending within 30 days). When the
//! console is away the last results stay, marked "offline, as of TIME".

use eframe::egui;

use crate::app::console_worker::{CardSearch, ConsoleStatus, SearchFor};
use cardstation_pki::certificate::format_unix;
use cardstation_protocol::messages::{
    CertificateRecord, CertificateStatus, RevocationReason, SearchQuery,
};

use super::command::Command;
use super::style::{self, CopyFeedback};

/// A search box and what it last found, for one screen (the Console tab, Replace).
#[derive(Default)]
pub struct SearchBox {
    pub text: String,
    /// The search sent and not answered yet: the `seq` it was sent after.
    waiting: Option<u64>,
}

impl SearchBox {
    /// The query this box sends.
    pub fn command(
        &mut self,
        purpose: SearchFor,
        filter: StatusFilter,
        limit: u32,
        last: Option<&CardSearch>,
    ) -> Command {
        self.waiting = Some(last.map_or(0, |s| s.seq));
        Command::SearchConsole {
            purpose,
            query: SearchQuery {
                search: Some(self.text.trim().to_string()).filter(|t| !t.is_empty()),
                status: filter.status(),
                expiring_days: filter.expiring_days(),
                attested: filter.attested(),
                limit: Some(limit),
                ..Default::default()
            },
            more: false,
        }
    }

    /// Whether the answer to the search sent is still out.
    pub fn searching(&mut self, last: Option<&CardSearch>) -> bool {
        let seq = last.map_or(0, |s| s.seq);
        if self.waiting.is_some_and(|w| seq > w) {
            self.waiting = None;
        }
        self.waiting.is_some()
    }

    /// The text field and its Search button; true when a search is asked for.
    pub fn field(&mut self, ui: &mut egui::Ui, label: &str, busy: bool) -> bool {
        let mut go = false;
        ui.horizontal(|ui| {
            let l = ui.label(label);
            let r = ui
                .add(
                    egui::TextEdit::singleline(&mut self.text)
                        .hint_text("name, label, serial, GUID or fingerprint")
                        .desired_width(320.0),
                )
                .labelled_by(l.id);
            go |= r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            go |= ui.add_enabled(!busy, egui::Button::new("Search")).clicked();
        });
        go && !busy
    }

    /// How fresh the results are: searching, offline since when, or how many.
    pub fn state_line(&mut self, ui: &mut egui::Ui, last: Option<&CardSearch>) {
        if self.searching(last) {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Searching the console…");
            });
            return;
        }
        let Some(s) = last else { return };
        match (&s.error, s.as_of) {
            (Some(e), Some(at)) => {
                style::warn(
                    ui,
                    format!(
                        "offline, as of {}: these are the last results the console gave.",
                        format_unix(at)
                    ),
                );
                style::technician_details(ui, "search-error", std::slice::from_ref(e));
            }
            (Some(e), None) => style::failure(ui, "search-failure", e),
            (None, Some(at)) => {
                ui.label(format!(
                    "{} card{}{} (as of {}).",
                    s.records.len(),
                    if s.records.len() == 1 { "" } else { "s" },
                    if s.next_cursor.is_some() {
                        " shown, more on the console"
                    } else {
                        ""
                    },
                    format_unix(at)
                ));
            }
            (None, None) => {}
        }
    }
}

/// "label — subject", or the subject alone.
pub fn holder(r: &CertificateRecord) -> String {
    match &r.label {
        Some(l) => format!("{l} — {}", r.subject),
        None => r.subject.clone(),
    }
}

fn status_text(r: &CertificateRecord) -> String {
    match r.status {
        CertificateStatus::Active => "active".into(),
        CertificateStatus::Revoked => format!(
            "revoked ({})",
            r.revocation_reason.as_deref().unwrap_or("no reason")
        ),
    }
}

/// Which cards the tab lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusFilter {
    #[default]
    Any,
    Active,
    Revoked,
    /// Active, not renewed, ending within [`EXPIRING_DAYS`]: the cards to renew.
    ToRenew,
    /// Active, with no verified proof that the key was born on the card: the cards a
    /// site that starts requiring attestation must replace.
    NotAttested,
}

/// What "to renew" means in the tab (the doctor warns at the same distance).
pub const EXPIRING_DAYS: u32 = 30;

impl StatusFilter {
    const ALL: [StatusFilter; 5] = [
        StatusFilter::Any,
        StatusFilter::Active,
        StatusFilter::Revoked,
        StatusFilter::ToRenew,
        StatusFilter::NotAttested,
    ];

    fn status(self) -> Option<CertificateStatus> {
        match self {
            StatusFilter::Any => None,
            StatusFilter::Active | StatusFilter::ToRenew | StatusFilter::NotAttested => {
                Some(CertificateStatus::Active)
            }
            StatusFilter::Revoked => Some(CertificateStatus::Revoked),
        }
    }

    fn expiring_days(self) -> Option<u32> {
        (self == StatusFilter::ToRenew).then_some(EXPIRING_DAYS)
    }

    fn attested(self) -> Option<bool> {
        (self == StatusFilter::NotAttested).then_some(false)
    }

    fn text(self) -> &'static str {
        match self {
            StatusFilter::Any => "any status",
            StatusFilter::Active => "active",
            StatusFilter::Revoked => "revoked",
            StatusFilter::ToRenew => "to renew (ends within 30 days)",
            StatusFilter::NotAttested => "active, key not attested",
        }
    }
}

pub struct ConsoleScreen {
    pub search: SearchBox,
    pub filter: StatusFilter,
    /// The card whose details are shown.
    pub selected: Option<String>,
    reason: RevocationReason,
    /// The operator pressed Revoke… for the selected card and must confirm.
    confirming: bool,
    /// Revocations sent from this tab (queued while the console is away).
    revoked: Vec<String>,
    copy: CopyFeedback,
    /// The console shown is the window's demo console.
    pub demo: bool,
    /// The first look at the tab lists the newest cards.
    listed: bool,
}

impl Default for ConsoleScreen {
    fn default() -> Self {
        ConsoleScreen {
            search: SearchBox::default(),
            filter: StatusFilter::Any,
            selected: None,
            reason: RevocationReason::Lost,
            confirming: false,
            revoked: Vec::new(),
            copy: CopyFeedback::default(),
            demo: false,
            listed: false,
        }
    }
}

/// Cards a page of the tab asks for.
const PAGE: u32 = 50;

impl ConsoleScreen {
    /// Which console the tab shows; another one is listed afresh.
    pub fn show_console(&mut self, demo: bool) {
        if self.demo != demo {
            self.demo = demo;
            self.listed = false;
            self.selected = None;
            self.confirming = false;
        }
    }

    pub fn show(&mut self, ui: &mut egui::Ui, console: &ConsoleStatus) -> Option<Command> {
        ui.heading(if self.demo {
            "Cards on the demo console"
        } else {
            "Cards on the console"
        });
        if !console.configured {
            style::wrapped(ui, "No management console is set up at this station: set [console] in the settings to find and revoke cards here.");
            return None;
        }
        let last = console.search(SearchFor::Console);
        let busy = self.search.searching(last);
        let mut command = None;
        let mut go = !self.listed;
        self.listed = true;
        ui.horizontal(|ui| {
            go |= self.search.field(ui, "Find cards", busy);
            let l = ui.label("Status");
            egui::ComboBox::from_id_salt("console-status")
                .selected_text(self.filter.text())
                .show_ui(ui, |ui| {
                    for f in StatusFilter::ALL {
                        go |= ui.selectable_value(&mut self.filter, f, f.text()).clicked();
                    }
                })
                .response
                .labelled_by(l.id);
        });
        if go && !busy {
            command = Some(
                self.search
                    .command(SearchFor::Console, self.filter, PAGE, last),
            );
        }
        self.search.state_line(ui, last);
        let Some(s) = last else { return command };

        if self.filter == StatusFilter::ToRenew && s.error.is_none() {
            style::wrapped(ui, "Renew each at a station (Card care, \"Renew this card\", or `cardstation renew`): the card keeps its key and gateways accept it throughout.");
        }
        ui.add_space(6.0);
        egui::Grid::new("console-cards")
            .num_columns(8)
            .striped(true)
            .spacing([12.0, 4.0])
            .show(ui, |ui| {
                for h in [
                    "Label / subject",
                    "Card serial",
                    "Station",
                    "Uploaded",
                    "Valid until",
                    "Status",
                    "Fingerprint",
                    "",
                ] {
                    ui.strong(h);
                }
                ui.end_row();
                for r in &s.records {
                    let chosen = self.selected.as_deref() == Some(r.sha256.as_str());
                    if ui.selectable_label(chosen, holder(r)).clicked() {
                        self.selected = Some(r.sha256.clone());
                        self.confirming = false;
                    }
                    ui.label(r.card_serial.map(|n| n.to_string()).unwrap_or("-".into()));
                    ui.label(&r.station_id);
                    ui.label(format_unix(r.uploaded_at));
                    ui.label(format_unix(r.not_after));
                    ui.label(status_text(r));
                    ui.label(egui::RichText::new(&r.sha256[..16]).monospace())
                        .on_hover_text(&r.sha256);
                    if ui
                        .small_button("Copy")
                        .on_hover_text("Copy the fingerprint")
                        .clicked()
                    {
                        ui.ctx().copy_text(r.sha256.clone());
                    }
                    ui.end_row();
                }
            });
        if s.next_cursor.is_some()
            && ui
                .add_enabled(!busy && s.error.is_none(), egui::Button::new("Show more"))
                .clicked()
        {
            self.search.waiting = Some(s.seq);
            command = Some(Command::SearchConsole {
                purpose: SearchFor::Console,
                query: SearchQuery {
                    cursor: s.next_cursor.clone(),
                    ..s.query.clone()
                },
                more: true,
            });
        }
        let chosen = self
            .selected
            .as_deref()
            .and_then(|fp| s.records.iter().find(|r| r.sha256 == fp));
        if let Some(r) = chosen {
            ui.add_space(12.0);
            ui.separator();
            if let Some(c) = self.details(ui, r, s.error.is_some()) {
                command = Some(c);
            }
        }
        command
    }

    fn details(
        &mut self,
        ui: &mut egui::Ui,
        r: &CertificateRecord,
        offline: bool,
    ) -> Option<Command> {
        ui.strong(format!("Card: {}", holder(r)));
        let t = format_unix;
        egui::Grid::new("console-card")
            .num_columns(2)
            .spacing([12.0, 4.0])
            .show(ui, |ui| {
                let mut row = |k: &str, v: String| {
                    ui.label(k);
                    style::wrapped(ui, v);
                    ui.end_row();
                };
                row("Holder label", r.label.clone().unwrap_or("-".into()));
                row("Subject", r.subject.clone());
                row("Status", status_text(r));
                if let (Some(at), Some(by)) = (r.revoked_at, &r.revoked_by) {
                    row("Revoked", format!("{} by {by}", t(at)));
                }
                row(
                    "Uploaded",
                    format!(
                        "{} by station {} (operator {})",
                        t(r.uploaded_at),
                        r.station_id,
                        r.operator
                    ),
                );
                row(
                    "Card serial",
                    r.card_serial.map(|n| n.to_string()).unwrap_or("-".into()),
                );
                row("CHUID GUID", r.chuid_guid.clone().unwrap_or("-".into()));
                row("Slot", r.slot.clone().unwrap_or("-".into()));
                row("Valid until", t(r.not_after));
                row(
                    "Key",
                    match &r.attestation {
                        Some(a) => format!(
                            "generated on the card (attested: {}; root {})",
                            a.describe(),
                            a.root
                        ),
                        None => "not attested".into(),
                    },
                );
                if let Some(new) = &r.superseded_by {
                    row(
                        "Renewed",
                        format!(
                            "{} by {}… (this one stays valid until its end)",
                            r.superseded_at.map(t).unwrap_or("-".into()),
                            new.get(..16).unwrap_or(new)
                        ),
                    );
                }
                ui.label("SHA-256");
                ui.label(egui::RichText::new(&r.sha256).monospace());
                ui.end_row();
            });
        self.copy.button(ui, "Copy fingerprint", &r.sha256);
        if r.status == CertificateStatus::Revoked {
            return None;
        }
        if self.revoked.contains(&r.sha256) {
            style::warn(
                ui,
                "Revocation sent: it is queued until the console confirms it.",
            );
            return None;
        }
        ui.add_space(8.0);
        let mut command = None;
        if !self.confirming {
            ui.horizontal(|ui| {
                let l = ui.label("Reason");
                reason_combo(ui, &mut self.reason).labelled_by(l.id);
                if ui.button("Revoke…").clicked() {
                    self.confirming = true;
                }
            });
        } else {
            style::warn(
                ui,
                format!(
                    "Revoke \"{}\" ({})? Gateways refuse this card once they hold the next trust bundle; only the console administrator can undo it.{}",
                    holder(r),
                    self.reason,
                    if offline { " The console is away: the revocation is queued." } else { "" }
                ),
            );
            ui.horizontal(|ui| {
                if ui.button("Confirm revocation").clicked() {
                    self.confirming = false;
                    self.revoked.push(r.sha256.clone());
                    command = Some(Command::Revoke {
                        fingerprint: r.sha256.clone(),
                        reason: self.reason,
                    });
                }
                if ui.button("Back").clicked() {
                    self.confirming = false;
                }
            });
        }
        command
    }
}

fn reason_combo(ui: &mut egui::Ui, reason: &mut RevocationReason) -> egui::Response {
    egui::ComboBox::from_id_salt("console-revoke-reason")
        .selected_text(reason.as_str())
        .show_ui(ui, |ui| {
            for r in RevocationReason::ALL {
                ui.selectable_value(reason, r, r.as_str());
            }
        })
        .response
}
