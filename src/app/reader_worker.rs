//! One worker thread per reader: card I/O is blocking by nature, so the window
//! sends jobs here and gets events back; it never waits on a card itself.

use crate::store::AuditAction;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::config::{Config, Paths};

use super::failure::{Coded, ErrorCode, Failure};
use cardstation_card::Transport;

pub use super::card_source::CardSource;
use super::card_status::{inspect, CardReport};
use super::enroll::{enroll, EnrollContext, EnrollOutcome, EnrollRequest, EnrollStep};
use super::pin_care;
use super::replace::{replace, ReplaceOutcome, ReplaceRequest};
use super::spot_check::{check_with_station, ChallengeBook, SpotCheck};
use super::station::Station;
use cardstation_piv::{Pin, Slot};

pub enum Job {
    Inspect,
    Enroll(Box<EnrollRequest>),
    /// The gateway's check on `slot` (PIN for slots that need it).
    SpotCheck {
        slot: Slot,
        pin: Option<Pin>,
    },
    /// A PIN care operation.
    PinCare(Box<PinCareOp>),
    /// Replace a card (or renew it) onto the card in this reader.
    Replace(Box<ReplaceRequest>),
}

/// PIN care as the window asks for it.
pub enum PinCareOp {
    ChangePin {
        old: Pin,
        new: Pin,
        last_try: bool,
    },
    ChangePuk {
        old: Pin,
        new: Pin,
        last_try: bool,
    },
    Unblock {
        puk: Pin,
        new_pin: Pin,
        last_try: bool,
    },
    Reset {
        confirmation: String,
    },
}

impl PinCareOp {
    fn action(&self) -> AuditAction {
        match self {
            PinCareOp::ChangePin { .. } => AuditAction::PinChange,
            PinCareOp::ChangePuk { .. } => AuditAction::PukChange,
            PinCareOp::Unblock { .. } => AuditAction::PinUnblock,
            PinCareOp::Reset { .. } => AuditAction::CardReset,
        }
    }
}

#[derive(Debug)]
pub enum JobEvent {
    Inspected(Box<CardReport>),
    InspectFailed(Failure),
    Step(EnrollStep),
    Enrolled(Box<EnrollOutcome>),
    EnrollFailed(Failure),
    Checked(Box<SpotCheck>),
    CheckFailed(Failure),
    /// A PIN care operation finished: what was done, or why not.
    PinCareDone(Result<AuditAction, Failure>),
    Replaced(Box<ReplaceOutcome>),
    ReplaceFailed(Failure),
}

pub struct ReaderWorker {
    jobs: Sender<Job>,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ReaderWorker {
    /// Start a worker for `source`. `notify` runs on the worker thread for every event.
    pub fn spawn(
        source: CardSource,
        paths: Paths,
        config: Config,
        notify: impl Fn(JobEvent) + Send + 'static,
    ) -> std::io::Result<ReaderWorker> {
        let (jobs, rx) = mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let c = cancel.clone();
        let thread = std::thread::Builder::new()
            .name(format!("reader {}", source.name()))
            .spawn(move || work(source, paths, config, rx, c, notify))?;
        Ok(ReaderWorker {
            jobs,
            cancel,
            thread: Some(thread),
        })
    }

    pub fn submit(&self, job: Job) {
        self.cancel.store(false, Ordering::SeqCst);
        // A worker that has gone away has already reported why.
        let _ = self.jobs.send(job);
    }

    /// Ask a running enrollment to stop before its next step.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }
}

impl Drop for ReaderWorker {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::SeqCst);
        // Closing the channel ends the loop once the current job is done.
        let (dead, _) = mpsc::channel();
        self.jobs = dead;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn work(
    source: CardSource,
    paths: Paths,
    config: Config,
    jobs: Receiver<Job>,
    cancel: Arc<AtomicBool>,
    notify: impl Fn(JobEvent),
) {
    let mut station: Option<Station> = None;
    let mut book = ChallengeBook::default();
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Inspect => {
                let result = source.with_card(|t| inspect(t));
                notify(match result {
                    Ok(Ok(report)) => JobEvent::Inspected(Box::new(report)),
                    Ok(Err(e)) => JobEvent::InspectFailed(Failure::from(e)),
                    Err(e) => JobEvent::InspectFailed(Failure::from(e)),
                });
            }
            Job::Enroll(request) => match open_station(&mut station, &paths, &config) {
                Ok(st) => notify(
                    match run_card_workflow(&source, st, &cancel, &notify, |t, ctx, step| {
                        enroll(t, &request, ctx, step)
                    }) {
                        Ok(outcome) => JobEvent::Enrolled(Box::new(outcome)),
                        Err(f) => JobEvent::EnrollFailed(f),
                    },
                ),
                Err(f) => notify(JobEvent::EnrollFailed(f)),
            },
            Job::SpotCheck { slot, pin } => {
                let st = match open_station(&mut station, &paths, &config) {
                    Ok(st) => st,
                    Err(f) => {
                        notify(JobEvent::CheckFailed(f));
                        continue;
                    }
                };
                let result =
                    source.with_card(|t| check_with_station(t, st, slot, pin.as_ref(), &mut book));
                notify(match result {
                    Ok(Ok((check, _))) => JobEvent::Checked(Box::new(check)),
                    Ok(Err(e)) => JobEvent::CheckFailed(Failure::new(ErrorCode::VerifySetup, e)),
                    Err(e) => JobEvent::CheckFailed(Failure::from(e)),
                });
            }
            Job::PinCare(op) => {
                let st = match open_station(&mut station, &paths, &config) {
                    Ok(st) => st,
                    Err(f) => {
                        notify(JobEvent::PinCareDone(Err(f)));
                        continue;
                    }
                };
                notify(JobEvent::PinCareDone(run_pin_care(&source, st, &op)));
            }
            Job::Replace(req) => {
                let st = match open_station(&mut station, &paths, &config) {
                    Ok(st) => st,
                    Err(f) => {
                        notify(JobEvent::ReplaceFailed(f));
                        continue;
                    }
                };
                notify(
                    match run_card_workflow(&source, st, &cancel, &notify, |t, ctx, step| {
                        replace(t, &req, ctx, step)
                    }) {
                        Ok(outcome) => JobEvent::Replaced(Box::new(outcome)),
                        Err(f) => JobEvent::ReplaceFailed(f),
                    },
                );
            }
        }
    }
}

fn run_pin_care(
    source: &CardSource,
    station: &Station,
    op: &PinCareOp,
) -> Result<AuditAction, Failure> {
    let result = source.with_fresh_card(|t| match op {
        PinCareOp::ChangePin { old, new, last_try } => pin_care::change(t, old, new, *last_try),
        PinCareOp::ChangePuk { old, new, last_try } => pin_care::change(t, old, new, *last_try),
        PinCareOp::Unblock {
            puk,
            new_pin,
            last_try,
        } => pin_care::unblock_pin(t, puk, new_pin, *last_try),
        PinCareOp::Reset { confirmation } => pin_care::reset(t, confirmation),
    });
    let outcome = match &result {
        Ok(Ok(())) => Ok(op.action()),
        Ok(Err(e)) => Err(Failure::new(e.code(), e)),
        Err(e) => Err(Failure::new(Coded::code(e), e)),
    };
    let recorded = station.store.audit(
        &station.operator,
        &station.station_id,
        op.action(),
        &source.name(),
        outcome
            .as_ref()
            .map(|_| "ok")
            .unwrap_or_else(|f| f.code.as_str()),
        &serde_json::json!({"error": outcome.as_ref().err().map(|f| f.message.clone())}),
    );
    // An action missing from the audit trail is reported, never passed over.
    match (outcome, recorded) {
        (outcome, Ok(())) => outcome,
        (Ok(action), Err(e)) => Err(Failure::new(
            ErrorCode::StationDatabase,
            format!(
                "{action} was done on the card but could not be written to the audit trail: {e}"
            ),
        )),
        (Err(f), Err(e)) => Err(Failure::new(
            f.code,
            format!(
                "{} (and it could not be written to the audit trail: {e})",
                f.message
            ),
        )),
    }
}

/// The station database, opened on first use by this worker.
fn open_station<'s>(
    station: &'s mut Option<Station>,
    paths: &Paths,
    config: &Config,
) -> Result<&'s Station, Failure> {
    if station.is_none() {
        *station =
            Some(Station::with_config(paths.clone(), config.clone()).map_err(Failure::from)?);
    }
    station
        .as_ref()
        .ok_or_else(|| Failure::new(ErrorCode::Station, "the station database is not open"))
}

/// Run a card-changing workflow (enrollment, replacement) with the station's
/// context, reporting each step and stopping at the next step once cancelled.
fn run_card_workflow<R, E: Coded>(
    source: &CardSource,
    station: &Station,
    cancel: &AtomicBool,
    notify: &dyn Fn(JobEvent),
    workflow: impl FnOnce(
        &mut dyn Transport,
        &EnrollContext<'_>,
        &mut dyn FnMut(EnrollStep) -> std::ops::ControlFlow<()>,
    ) -> Result<R, E>,
) -> Result<R, Failure> {
    let secret = station.site_secret().map_err(Failure::from)?;
    let ctx = EnrollContext {
        store: &station.store,
        site_secret: &secret,
        operator: &station.operator,
        station_id: &station.station_id,
    };
    let result = source.with_card(|t| {
        workflow(t, &ctx, &mut |step| {
            if cancel.load(Ordering::SeqCst) {
                return std::ops::ControlFlow::Break(());
            }
            notify(JobEvent::Step(step));
            std::ops::ControlFlow::Continue(())
        })
    });
    match result {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(e)) => Err(Failure::from(e)),
        Err(e) => Err(Failure::from(e)),
    }
}

/// Default export file name: card serial (or GUID), slot and fingerprint prefix.
pub fn export_file_name(
    outcome_serial: Option<u32>,
    guid: &str,
    slot: &str,
    sha256: &str,
    der: bool,
) -> PathBuf {
    let who = outcome_serial
        .map(|s| s.to_string())
        .unwrap_or_else(|| guid.chars().take(8).collect());
    let prefix: String = sha256.chars().take(8).collect();
    PathBuf::from(format!(
        "card-{who}-{slot}-{prefix}.{}",
        if der { "der" } else { "pem" }
    ))
}
