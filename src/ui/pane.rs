//! One reader as the window shows it: its worker, its card, and the screens'
//! state for it. Events from its worker land here and go to the screen they concern.

use crate::app::card_status::CardReport;
use crate::app::failure::Failure;
use crate::app::reader_worker::{JobEvent, ReaderWorker, Stall};
use crate::app::replace::ReplaceOutcome;
use crate::app::spot_check::SpotCheck;
use crate::config::Config;
use cardstation_pcsc::{CardPresence, ReaderStatus};

use super::card_details::CardDetails;
use super::care::CareScreen;
use super::command::CardView;
use super::spot_check::SpotCheckScreen;
use super::wizard::Wizard;

/// Where a reader comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A PC/SC reader.
    Pcsc,
    /// The demo card built into the window.
    Demo,
    /// A reader served in process and treated like hardware (tests, kiosks).
    Attached,
}

pub struct ReaderPane {
    pub name: String,
    pub origin: Origin,
    pub is_demo: bool,
    pub status: ReaderStatus,
    pub worker: ReaderWorker,
    pub report: Option<Box<CardReport>>,
    pub report_error: Option<Failure>,
    /// Why this site would refuse to enroll the card in the reader.
    pub refusal: Option<Failure>,
    pub inspecting: bool,
    pub wizard: Wizard,
    pub spot: SpotCheckScreen,
    pub care: CareScreen,
    pub details: CardDetails,
}

pub struct Parts<'a> {
    pub card: CardView<'a>,
    pub wizard: &'a mut Wizard,
    pub spot: &'a mut SpotCheckScreen,
    pub care: &'a mut CareScreen,
    pub details: &'a mut CardDetails,
}

/// What an event asks of the window beyond the pane.
#[derive(Default)]
pub struct FollowUp {
    /// Read the card again (tries left, slots may have changed).
    pub inspect: bool,
    /// Deliver the console outbox now.
    pub sync: bool,
    pub checked: Option<Box<SpotCheck>>,
    pub enrolled: bool,
    pub replaced: Option<Box<ReplaceOutcome>>,
}

impl ReaderPane {
    pub fn new(
        name: String,
        origin: Origin,
        status: ReaderStatus,
        worker: ReaderWorker,
        config: &Config,
    ) -> Self {
        ReaderPane {
            name,
            origin,
            is_demo: origin == Origin::Demo,
            status,
            worker,
            report: None,
            report_error: None,
            refusal: None,
            inspecting: false,
            wizard: Wizard::new(config),
            spot: SpotCheckScreen::default(),
            care: CareScreen::new(config),
            details: CardDetails::default(),
        }
    }

    pub fn present(&self) -> bool {
        self.status.card == CardPresence::Present
    }

    /// Some job runs on this reader's worker.
    pub fn busy(&self) -> bool {
        self.wizard.is_running() || self.spot.running || self.care.busy || self.inspecting
    }

    /// The card view and each screen's state, borrowed side by side.
    pub fn parts(&mut self) -> Parts<'_> {
        let busy = self.wizard.is_running() || self.spot.running || self.care.busy;
        Parts {
            card: CardView {
                reader: &self.name,
                demo: self.is_demo,
                present: self.status.card == CardPresence::Present,
                report: self.report.as_deref(),
                report_error: self.report_error.as_ref(),
                refusal: self.refusal.as_ref(),
                inspecting: self.inspecting,
                busy,
            },
            wizard: &mut self.wizard,
            spot: &mut self.spot,
            care: &mut self.care,
            details: &mut self.details,
        }
    }

    pub fn view(&self) -> CardView<'_> {
        CardView {
            reader: &self.name,
            demo: self.is_demo,
            present: self.present(),
            report: self.report.as_deref(),
            report_error: self.report_error.as_ref(),
            refusal: self.refusal.as_ref(),
            inspecting: self.inspecting,
            busy: self.wizard.is_running() || self.spot.running || self.care.busy,
        }
    }

    /// One line for the readers panel: the card, and what this reader is doing.
    pub fn summary(&self) -> String {
        let card = match self.status.card {
            CardPresence::Absent => "no card".to_string(),
            CardPresence::InUse => "card in use by another program".to_string(),
            CardPresence::Mute => "card does not answer".to_string(),
            CardPresence::Present => match (&self.report, &self.report_error, self.inspecting) {
                (_, _, true) => "reading card…".to_string(),
                (Some(r), _, _) => {
                    let state = if r.is_blank() { "blank" } else { "enrolled" };
                    format!("PIV card, {state}")
                }
                (None, Some(_), _) => "card could not be read".to_string(),
                (None, None, false) => "card present".to_string(),
            },
        };
        let doing = if self.spot.running {
            Some("checking…")
        } else if self.care.busy {
            Some("card care…")
        } else {
            self.wizard.summary()
        };
        match doing {
            Some(d) => format!("{card} — {d}"),
            None => card,
        }
    }

    pub fn on_presence(&mut self, now: CardPresence, desk_mode: bool) {
        self.report = None;
        self.report_error = None;
        self.refusal = None;
        match now {
            CardPresence::Present => {
                self.wizard.on_card_inserted(desk_mode);
                self.spot.on_card_changed();
            }
            _ => self.wizard.on_card_removed(desk_mode),
        }
    }

    pub fn on_job_event(&mut self, event: JobEvent, upload_configured: bool) -> FollowUp {
        let mut f = FollowUp::default();
        match event {
            JobEvent::Inspected(report, refusal) => {
                self.inspecting = false;
                self.report_error = None;
                self.report = Some(report);
                self.refusal = refusal;
            }
            JobEvent::InspectFailed(e) => {
                self.inspecting = false;
                self.report = None;
                self.refusal = None;
                self.report_error = Some(e);
            }
            JobEvent::Step(step) => self.wizard.on_step(step),
            JobEvent::Enrolled(outcome) => {
                // Its upload (if asked for) was queued with the record: deliver it.
                f.sync = self.wizard.upload_when_done && upload_configured;
                self.wizard.on_enrolled(outcome);
                f.enrolled = true;
                f.inspect = true;
            }
            JobEvent::EnrollFailed(e) => {
                self.wizard.on_failed(e);
                f.inspect = true;
            }
            JobEvent::Checked(check) => {
                f.checked = Some(check.clone());
                self.spot.on_checked(check);
            }
            JobEvent::CheckFailed(e) => self.spot.on_failed(e),
            JobEvent::PinCareDone(result) => {
                self.care.on_done(result);
                f.inspect = true;
            }
            JobEvent::Replaced(outcome) => {
                f.replaced = Some(outcome.clone());
                self.care.on_replaced(outcome);
                f.inspect = true;
                f.sync = true;
            }
            JobEvent::ReplaceFailed(e) | JobEvent::RenewFailed(e) => {
                self.care.on_failed(e);
                f.inspect = true;
            }
            JobEvent::Renewed(outcome) => {
                self.care.on_renewed(outcome);
                f.inspect = true;
                // The new certificate and the old one's retirement go to the console.
                f.sync = true;
            }
        }
        f.inspect &= self.present();
        f
    }

    /// The worker gave up on its job (time limit, or a cancel the card ignored): the
    /// screen that started it shows why.
    pub fn on_stall(&mut self, stall: Stall) {
        let failure = stall.failure();
        if self.wizard.is_running() {
            self.wizard.on_failed(failure.clone());
        }
        if self.spot.running {
            self.spot.on_failed(failure.clone());
        }
        if self.care.busy {
            self.care.on_failed(failure.clone());
        }
        if self.inspecting {
            self.inspecting = false;
            self.report_error = Some(failure);
        }
    }
}
