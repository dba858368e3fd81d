//! One worker thread per reader: card I/O is blocking by nature, so the window
//! sends jobs here and gets events back; it never waits on a card itself.

use crate::store::AuditAction;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{Config, Paths};

use super::failure::{Coded, ErrorCode, Failure};
use cardstation_card::Transport;

pub use super::card_source::CardSource;
use super::card_status::{inspect, CardReport};
use super::enroll::{enroll, EnrollContext, EnrollError, EnrollOutcome, EnrollRequest, EnrollStep};
use super::pin_care;
use super::renew::{renew, RenewOutcome, RenewRequest};
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
    /// A new certificate for the key on the card in this reader.
    Renew(Box<RenewRequest>),
}

impl Job {
    /// How long the job may take before the station gives up on the card. Generous:
    /// a slow card generates a key in a few seconds, a hung one never answers.
    pub fn time_limit(&self) -> Duration {
        match self {
            Job::Inspect | Job::SpotCheck { .. } | Job::PinCare(_) => Duration::from_secs(30),
            Job::Enroll(_) | Job::Replace(_) | Job::Renew(_) => Duration::from_secs(120),
        }
    }
}

/// How long a cancelled job may take to reach its next step before it is abandoned.
pub const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// Why a job was stopped from outside (see `ReaderWorker::stalled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    TimedOut(Duration),
    CancelIgnored,
}

impl Stall {
    /// What the operator is told: what happened and what to do.
    pub fn failure(self) -> Failure {
        match self {
            Stall::TimedOut(limit) => Failure::new(
                ErrorCode::CardTimeout,
                format!(
                    "The card did not finish within {} seconds and the work was stopped. \
                     Remove the card, put it back and try again; if it happens again, try another reader.",
                    limit.as_secs()
                ),
            ),
            Stall::CancelIgnored => Failure::new(
                ErrorCode::Cancelled,
                "Cancelled: the card stopped answering, so the work was abandoned. \
                 Remove the card and put it back before using it again.",
            ),
        }
    }
}

/// The job running on a worker thread right now, as the window's watchdog sees it.
#[derive(Default)]
struct Running {
    /// Started at, with its limit; `None` between jobs.
    job: Option<(Instant, Duration)>,
    cancelled_at: Option<Instant>,
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
    /// The card as read, and why this site would refuse to enroll it, if it would
    /// (asked of the console when the card cannot attest).
    Inspected(Box<CardReport>, Option<Failure>),
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
    Renewed(Box<RenewOutcome>),
    RenewFailed(Failure),
}

type Notify = Arc<dyn Fn(JobEvent) + Send + Sync>;

/// One thread working for a reader. A thread stuck on a card that stopped answering
/// is abandoned (`ReaderWorker::abandon`): it is detached, and whatever it reports
/// later is dropped.
struct Lane {
    jobs: Sender<Job>,
    cancel: Arc<AtomicBool>,
    running: Arc<Mutex<Running>>,
    live: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Lane {
    fn spawn(
        source: CardSource,
        paths: Paths,
        config: Config,
        notify: Notify,
    ) -> std::io::Result<Lane> {
        let (jobs, rx) = mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let running = Arc::new(Mutex::new(Running::default()));
        let live = Arc::new(AtomicBool::new(true));
        let (c, r, l) = (cancel.clone(), running.clone(), live.clone());
        let thread = std::thread::Builder::new()
            .name(format!("reader {}", source.name()))
            .spawn(move || {
                let notify = move |e: JobEvent| {
                    if l.load(Ordering::SeqCst) {
                        notify(e);
                    }
                };
                work(source, paths, config, rx, c, r, notify)
            })?;
        Ok(Lane {
            jobs,
            cancel,
            running,
            live,
            thread: Some(thread),
        })
    }
}

pub struct ReaderWorker {
    source: CardSource,
    paths: Paths,
    config: Config,
    notify: Notify,
    lane: Lane,
}

impl ReaderWorker {
    /// Start a worker for `source`. `notify` runs on the worker thread for every event.
    pub fn spawn(
        source: CardSource,
        paths: Paths,
        config: Config,
        notify: impl Fn(JobEvent) + Send + Sync + 'static,
    ) -> std::io::Result<ReaderWorker> {
        let notify: Notify = Arc::new(notify);
        let lane = Lane::spawn(
            source.clone(),
            paths.clone(),
            config.clone(),
            notify.clone(),
        )?;
        Ok(ReaderWorker {
            source,
            paths,
            config,
            notify,
            lane,
        })
    }

    pub fn submit(&self, job: Job) {
        self.lane.cancel.store(false, Ordering::SeqCst);
        if let Ok(mut r) = self.lane.running.lock() {
            r.cancelled_at = None;
        }
        // A worker that has gone away has already reported why.
        let _ = self.lane.jobs.send(job);
    }

    /// Ask the running job to stop before its next step. One that does not (a card
    /// that stopped answering) is reported by `stalled` after `CANCEL_GRACE`.
    pub fn cancel(&self) {
        self.lane.cancel.store(true, Ordering::SeqCst);
        if let Ok(mut r) = self.lane.running.lock() {
            if r.job.is_some() {
                r.cancelled_at.get_or_insert_with(Instant::now);
            }
        }
    }

    /// Whether the running job is past its time limit, or ignored a cancel.
    pub fn stalled(&self) -> Option<Stall> {
        let r = self.lane.running.lock().ok()?;
        let (started, limit) = r.job?;
        if r.cancelled_at.is_some_and(|c| c.elapsed() >= CANCEL_GRACE) {
            return Some(Stall::CancelIgnored);
        }
        (started.elapsed() >= limit).then_some(Stall::TimedOut(limit))
    }

    /// When `stalled` may next change its answer (the window wakes up then), if a job runs.
    pub fn next_deadline(&self) -> Option<Duration> {
        let r = self.lane.running.lock().ok()?;
        let (started, limit) = r.job?;
        let by_limit = limit.saturating_sub(started.elapsed());
        let by_cancel = r
            .cancelled_at
            .map(|c| CANCEL_GRACE.saturating_sub(c.elapsed()));
        Some(by_cancel.map_or(by_limit, |c| c.min(by_limit)))
    }

    /// Give up on the stuck thread and start a fresh one for this reader. Jobs queued
    /// behind the stuck one are dropped with it.
    pub fn abandon(&mut self) -> std::io::Result<()> {
        let fresh = Lane::spawn(
            self.source.clone(),
            self.paths.clone(),
            self.config.clone(),
            self.notify.clone(),
        )?;
        let mut old = std::mem::replace(&mut self.lane, fresh);
        old.live.store(false, Ordering::SeqCst);
        old.cancel.store(true, Ordering::SeqCst);
        // Detached: it ends when the card answers or the reader goes away.
        drop(old.thread.take());
        Ok(())
    }
}

impl Drop for Lane {
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
    running: Arc<Mutex<Running>>,
    notify: impl Fn(JobEvent),
) {
    let mut station: Option<Station> = None;
    let mut book = ChallengeBook::default();
    let set_running = |job: Option<(Instant, Duration)>| {
        if let Ok(mut r) = running.lock() {
            r.job = job;
            if job.is_none() {
                r.cancelled_at = None;
            }
        }
    };
    while let Ok(job) = jobs.recv() {
        set_running(Some((Instant::now(), job.time_limit())));
        run_job(
            job,
            &source,
            &paths,
            &config,
            &cancel,
            &mut station,
            &mut book,
            &notify,
        );
        set_running(None);
    }
}

#[allow(clippy::too_many_arguments)]
fn run_job(
    job: Job,
    source: &CardSource,
    paths: &Paths,
    config: &Config,
    cancel: &AtomicBool,
    station: &mut Option<Station>,
    book: &mut ChallengeBook,
    notify: &dyn Fn(JobEvent),
) {
    match job {
        Job::Inspect => {
            let result = source.with_card(|t| inspect(t));
            notify(match result {
                Ok(Ok(report)) => {
                    let refusal = (report.attests == Some(false)
                        && open_station(station, paths, config)
                            .is_ok_and(|st| st.site_requires_attestation()))
                    .then(|| Failure::from(EnrollError::AttestationRequired));
                    JobEvent::Inspected(Box::new(report), refusal)
                }
                Ok(Err(e)) => JobEvent::InspectFailed(Failure::from(e)),
                Err(e) => JobEvent::InspectFailed(Failure::from(e)),
            });
        }
        Job::Enroll(request) => match open_station(station, paths, config) {
            Ok(st) => notify(
                match run_card_workflow(source, st, cancel, notify, |t, ctx, step| {
                    enroll(t, &request, ctx, step)
                }) {
                    Ok(outcome) => JobEvent::Enrolled(Box::new(outcome)),
                    Err(f) => JobEvent::EnrollFailed(f),
                },
            ),
            Err(f) => notify(JobEvent::EnrollFailed(f)),
        },
        Job::SpotCheck { slot, pin } => {
            let st = match open_station(station, paths, config) {
                Ok(st) => st,
                Err(f) => {
                    notify(JobEvent::CheckFailed(f));
                    return;
                }
            };
            let result = source.with_card(|t| check_with_station(t, st, slot, pin.as_ref(), book));
            notify(match result {
                Ok(Ok((check, _))) => JobEvent::Checked(Box::new(check)),
                Ok(Err(e)) => JobEvent::CheckFailed(Failure::new(ErrorCode::VerifySetup, e)),
                Err(e) => JobEvent::CheckFailed(Failure::from(e)),
            });
        }
        Job::PinCare(op) => {
            let st = match open_station(station, paths, config) {
                Ok(st) => st,
                Err(f) => {
                    notify(JobEvent::PinCareDone(Err(f)));
                    return;
                }
            };
            notify(JobEvent::PinCareDone(run_pin_care(source, st, &op)));
        }
        Job::Replace(req) => {
            let st = match open_station(station, paths, config) {
                Ok(st) => st,
                Err(f) => {
                    notify(JobEvent::ReplaceFailed(f));
                    return;
                }
            };
            notify(
                match run_card_workflow(source, st, cancel, notify, |t, ctx, step| {
                    replace(t, &req, ctx, step)
                }) {
                    Ok(outcome) => JobEvent::Replaced(Box::new(outcome)),
                    Err(f) => JobEvent::ReplaceFailed(f),
                },
            );
        }
        Job::Renew(req) => match open_station(station, paths, config) {
            Ok(st) => notify(
                match run_card_workflow(source, st, cancel, notify, |t, ctx, step| {
                    renew(t, &req, ctx, step)
                }) {
                    Ok(outcome) => JobEvent::Renewed(Box::new(outcome)),
                    Err(f) => JobEvent::RenewFailed(f),
                },
            ),
            Err(f) => notify(JobEvent::RenewFailed(f)),
        },
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
    let issuer = station.certificate_issuer()?;
    let ctx = station.enroll_context(&secret, issuer.as_ref());
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
