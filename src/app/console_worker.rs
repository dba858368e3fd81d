//! The window's link to the management console, on a thread of its own: it queues
//! uploads, delivers the outbox (retrying with backoff while something is
//! pending, sleeping without a timer when nothing is) and refreshes the trust
//! bundle. Without a configured console it only reports that.

use crate::app::failure::ErrorCode;
use crate::store::AuditAction;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::{Config, Paths};
use crate::console::outbox;
use crate::console::trust::{self, TrustStatus};
use crate::console::ConsoleClient;
use crate::store::OutboxItem;
use cardstation_protocol::bundle::BundleError;
use cardstation_protocol::messages::{
    CertificateRecord, RecordedEvent, RevocationReason, SearchQuery, UploadRequest,
};
use std::collections::BTreeMap;

use super::station::Station;

pub enum ConsoleJob {
    /// Queue this certificate and try to deliver everything.
    Upload {
        fingerprint: String,
        request: Box<UploadRequest>,
    },
    /// Revoke this certificate on the console (queued while it is away).
    Revoke {
        fingerprint: String,
        reason: RevocationReason,
    },
    /// Deliver now and refresh the trust bundle.
    SyncNow,
    /// The operator confirmed the new trust-bundle chain the console started
    /// (`bundle reset`): take it (its id, hex).
    AcceptBundleReset { chain: String },
    /// Record an operator action of the window that has no worker of its own
    /// (e.g. a certificate exported through the save dialog).
    Audit {
        action: AuditAction,
        subject: String,
        details: serde_json::Value,
    },
    /// Find certificates on the console for one screen; `more`: the next page of
    /// the same search, added to what it shows.
    Search {
        purpose: SearchFor,
        query: SearchQuery,
        more: bool,
    },
    /// Fetch what gateways reported about this certificate (the card details show it).
    CardEvents { fingerprint: String },
}

/// Which screen a search is for (each keeps its own results).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchFor {
    /// The Console tab.
    Console,
    /// Card care's Replace: the old card, found by its holder.
    Replace,
}

/// A screen's last search and what the console answered.
#[derive(Debug, Clone)]
pub struct CardSearch {
    pub purpose: SearchFor,
    pub query: SearchQuery,
    /// The last results the console gave (kept, and shown as such, while it is away).
    pub records: Vec<CertificateRecord>,
    pub next_cursor: Option<String>,
    /// When the console gave them.
    pub as_of: Option<i64>,
    /// Why the last search got no answer; the records are the earlier ones.
    pub error: Option<String>,
    /// Counts finished searches: a screen waiting for one sees it change.
    pub seq: u64,
}

/// The most recent gateway events the card details show for one certificate.
pub const CARD_EVENTS_SHOWN: u32 = 20;

/// What the console last said about one certificate's gateway events.
#[derive(Debug, Clone, Default)]
pub struct CardEvents {
    /// Newest first, as the console sent them.
    pub events: Vec<RecordedEvent>,
    /// When they were fetched (unix seconds); `None` if never.
    pub fetched_at: Option<i64>,
    /// Why the latest fetch failed: `events` are then the last known ones.
    pub stale: Option<String>,
}

/// Where the console link stands, as the window shows it.
#[derive(Debug, Clone, Default)]
pub struct ConsoleStatus {
    pub configured: bool,
    /// `None` until the first contact.
    pub reachable: Option<bool>,
    pub last_error: Option<String>,
    pub outbox: Vec<OutboxItem>,
    pub bundle: Option<TrustStatus>,
    /// The console offers a new trust-bundle chain (an explicit reset): its id (hex)
    /// and first version, until the operator accepts it.
    pub reset_offered: Option<(String, u64)>,
    /// Fingerprints delivered in this session.
    pub delivered: Vec<String>,
    /// Each screen's last card search.
    pub searches: Vec<CardSearch>,
    /// Gateway events by certificate fingerprint, as last fetched in this session.
    pub card_events: BTreeMap<String, CardEvents>,
}

impl ConsoleStatus {
    pub fn pending(&self) -> usize {
        self.outbox.iter().filter(|i| i.state == "pending").count()
    }

    pub fn search(&self, purpose: SearchFor) -> Option<&CardSearch> {
        self.searches.iter().find(|s| s.purpose == purpose)
    }
}

pub struct ConsoleWorker {
    jobs: Sender<ConsoleJob>,
    thread: Option<JoinHandle<()>>,
}

impl ConsoleWorker {
    pub fn spawn(
        paths: Paths,
        config: Config,
        notify: impl Fn(ConsoleStatus) + Send + 'static,
    ) -> std::io::Result<ConsoleWorker> {
        let (jobs, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("console".into())
            .spawn(move || work(paths, config, rx, notify))?;
        Ok(ConsoleWorker {
            jobs,
            thread: Some(thread),
        })
    }

    pub fn submit(&self, job: ConsoleJob) {
        let _ = self.jobs.send(job);
    }
}

impl Drop for ConsoleWorker {
    fn drop(&mut self) {
        let (dead, _) = mpsc::channel();
        self.jobs = dead;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn work(paths: Paths, config: Config, jobs: Receiver<ConsoleJob>, notify: impl Fn(ConsoleStatus)) {
    let station = match Station::with_config(paths, config) {
        Ok(s) => s,
        Err(e) => {
            notify(ConsoleStatus {
                last_error: Some(e.to_string()),
                ..Default::default()
            });
            return;
        }
    };
    let mut status = ConsoleStatus {
        configured: station.config.console.url.is_some(),
        ..Default::default()
    };
    let client = if status.configured {
        match ConsoleClient::new(&station.config.console) {
            Ok(c) => Some(c),
            Err(e) => {
                status.last_error = Some(e.to_string());
                None
            }
        }
    } else {
        None
    };
    // Deliver whatever an earlier session left behind.
    let mut job = Some(ConsoleJob::SyncNow);
    loop {
        if let Some(j) = job.take() {
            run_job(&station, client.as_ref(), j, &mut status);
            status.outbox = station.store.outbox_items().unwrap_or_default();
            notify(status.clone());
        }
        // Wait for work; while items are pending, also for their next retry.
        let wait = match (&client, station.store.outbox_next_attempt()) {
            (Some(_), Ok(Some(at))) => Some(Duration::from_secs(
                u64::try_from((at - now()).max(1)).unwrap_or(1),
            )),
            _ => None,
        };
        let next = match wait {
            Some(d) => match jobs.recv_timeout(d) {
                Ok(j) => Ok(Some(j)),
                Err(RecvTimeoutError::Timeout) => Ok(None),
                Err(RecvTimeoutError::Disconnected) => Err(()),
            },
            None => jobs.recv().map(Some).map_err(|_| ()),
        };
        match next {
            Ok(Some(j)) => job = Some(j),
            Ok(None) => job = Some(ConsoleJob::SyncNow),
            Err(()) => return,
        }
    }
}

fn run_job(
    station: &Station,
    client: Option<&ConsoleClient>,
    job: ConsoleJob,
    status: &mut ConsoleStatus,
) {
    if let ConsoleJob::Audit {
        action,
        subject,
        details,
    } = &job
    {
        if let Err(e) = station.store.audit(
            &station.operator,
            &station.station_id,
            *action,
            subject,
            "ok",
            details,
        ) {
            status.last_error = Some(format!(
                "{action} could not be written to the audit trail: {e}"
            ));
        }
        return;
    }
    if let ConsoleJob::Search {
        purpose,
        query,
        more,
    } = job
    {
        search(client, purpose, query, more, status);
        return;
    }
    if let ConsoleJob::Upload {
        fingerprint,
        request,
    } = &job
    {
        // The queued row and its audit row are written together.
        // Nothing is sent when it could not be queued: the error stays shown.
        if let Err(e) = outbox::enqueue_upload(&station.store, fingerprint, request) {
            status.last_error = Some(format!("the upload was not queued: {e}"));
            return;
        }
    }
    if let ConsoleJob::Revoke {
        fingerprint,
        reason,
    } = &job
    {
        // The revocation and its audit row are one transaction.
        if let Err(e) = outbox::enqueue_revoke(
            &station.store,
            fingerprint,
            reason.as_str(),
            &station.operator,
            &station.station_id,
        ) {
            status.last_error = Some(format!("the revocation was not queued: {e}"));
            return;
        }
    }
    let Some(client) = client else {
        if let ConsoleJob::CardEvents { fingerprint } = &job {
            let entry = status.card_events.entry(fingerprint.clone()).or_default();
            entry.stale = Some("no console is configured".into());
        }
        return;
    };
    if let ConsoleJob::CardEvents { fingerprint } = &job {
        fetch_card_events(client, fingerprint, status);
        return;
    }
    if matches!(job, ConsoleJob::SyncNow) {
        if let Err(e) = station.store.outbox_due_now(now()) {
            status.last_error = Some(e.to_string());
            return;
        }
    }
    let before: Vec<String> = station
        .store
        .outbox_items()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.fingerprint)
        .collect();
    let settings = station.delivery_settings();
    let sender = outbox::Sender {
        station_id: &station.station_id,
        settings: &settings,
    };
    match outbox::sync(&station.store, client, sender) {
        Ok(report) => {
            status.reachable = Some(!matches!(
                report.error_code,
                Some(
                    ErrorCode::ConsoleUnreachable
                        | ErrorCode::ConsoleTimeout
                        | ErrorCode::ConsoleTls
                )
            ));
            status.last_error = report.error;
            let after: Vec<String> = station
                .store
                .outbox_items()
                .unwrap_or_default()
                .into_iter()
                .map(|i| i.fingerprint)
                .collect();
            status
                .delivered
                .extend(before.into_iter().filter(|fp| !after.contains(fp)));
        }
        Err(e) => status.last_error = Some(e.to_string()),
    }
    // A revocation shows in the screens' results at once.
    if matches!(job, ConsoleJob::Revoke { .. }) && status.reachable == Some(true) {
        for s in status.searches.clone() {
            let mut query = s.query;
            query.cursor = None;
            search(Some(client), s.purpose, query, false, status);
        }
    }
    // The trust bundle rides along with every contact.
    if status.reachable == Some(true) {
        if let Ok(key) = trust::load_key(station.config.console.bundle_key.as_deref()) {
            let confirmed = match &job {
                ConsoleJob::AcceptBundleReset { chain } => Some(chain.as_str()),
                _ => None,
            };
            match trust::sync_accepting(&station.store, client, &key, now(), confirmed) {
                Ok(_) => status.reset_offered = None,
                Err(trust::TrustError::Bundle(BundleError::ResetOffered {
                    chain,
                    version,
                    ..
                })) => {
                    status.reset_offered = Some((chain, version));
                }
                Err(e) => status.last_error = Some(e.to_string()),
            }
            status.bundle = trust::status(&station.store, &key, now()).ok().flatten();
        }
    }
}

/// Run a screen's search; when the console does not answer, keep its earlier
/// results (with the time they are from) and say why.
fn search(
    client: Option<&ConsoleClient>,
    purpose: SearchFor,
    query: SearchQuery,
    more: bool,
    status: &mut ConsoleStatus,
) {
    let index = match status.searches.iter().position(|s| s.purpose == purpose) {
        Some(i) => i,
        None => {
            status.searches.push(CardSearch {
                purpose,
                query: query.clone(),
                records: Vec::new(),
                next_cursor: None,
                as_of: None,
                error: None,
                seq: 0,
            });
            status.searches.len() - 1
        }
    };
    let answer = match client {
        Some(c) => c.search(&query).map_err(|e| {
            if e.is_transient() {
                status.reachable = Some(false);
            }
            e.to_string()
        }),
        None => Err(status
            .last_error
            .clone()
            .unwrap_or_else(|| crate::console::ConsoleError::NotConfigured.to_string())),
    };
    let s = &mut status.searches[index];
    s.seq += 1;
    match answer {
        Ok(page) => {
            if more {
                s.records.extend(page.records);
            } else {
                s.records = page.records;
            }
            s.next_cursor = page.next_cursor;
            s.query = query;
            s.as_of = Some(now());
            s.error = None;
            status.reachable = Some(true);
        }
        Err(e) => {
            if !more {
                s.query = query;
            }
            s.error = Some(e);
        }
    }
}

/// Fetch a certificate's recent gateway events; when the console cannot be asked,
/// keep the last known ones and say why they may be out of date.
fn fetch_card_events(client: &ConsoleClient, fingerprint: &str, status: &mut ConsoleStatus) {
    let entry = status
        .card_events
        .entry(fingerprint.to_string())
        .or_default();
    match client.events(Some(fingerprint), CARD_EVENTS_SHOWN) {
        Ok(list) => {
            // Only what was asked for, however many the console sent.
            entry.events = list
                .events
                .into_iter()
                .filter(|e| e.event.fingerprint.as_deref() == Some(fingerprint))
                .take(CARD_EVENTS_SHOWN as usize)
                .collect();
            entry.fetched_at = Some(now());
            entry.stale = None;
            status.reachable = Some(true);
        }
        Err(e) => {
            if e.is_transient() || matches!(e, crate::console::ConsoleError::Tls { .. }) {
                status.reachable = Some(false);
            }
            entry.stale = Some(e.to_string());
        }
    }
}
