//! The gateway's moving parts put together: one decision on a reader, the bundle
//! refresher, the event sender, and the daemon loop that waits for cards.

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use cardstation_pcsc::watcher::{WatchEvent, Watcher};
use cardstation_pcsc::{CardPresence, Pcsc};
use cardstation_pki::certificate;
use cardstation_protocol::bundle::BundleError;
use cardstation_protocol::messages::EventBatch;

use crate::action;
use crate::bundle::{self, Refreshed, SharedTrust, TrustError, TrustKeeper};
use crate::client::{ConsoleClient, ConsoleError, Fetched};
use crate::config::Config;
use crate::decision::{Decider, Outcome};
use crate::queue::{self, Queue, QueueError};

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Console(#[from] ConsoleError),
    #[error("{0}")]
    Settings(String),
    #[error("PC/SC: {0}")]
    Card(#[from] cardstation_card::CardError),
}

/// The decider for this configuration.
pub fn decider(config: &Config) -> Result<Decider, GatewayError> {
    let slot = config.slot().map_err(GatewayError::Settings)?;
    config.fail_open_allowed().map_err(GatewayError::Settings)?;
    let issuing_ca = match &config.gateway.issuing_ca {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| {
                GatewayError::Settings(format!("[gateway] issuing_ca {}: {e}", path.display()))
            })?;
            Some(
                certificate::from_pem_or_der(&bytes)
                    .map_err(|e| GatewayError::Settings(format!("[gateway] issuing_ca: {e}")))?,
            )
        }
        None => None,
    };
    Ok(Decider::new(slot, issuing_ca, config.gateway.fail_open)
        .requiring_attestation(config.gateway.require_attestation))
}

/// The held bundle (an unusable stored one is reported and treated as none: the
/// gateway then decides fail-closed, or fail-open if so configured, until a sync).
pub fn trust_keeper(config: &Config) -> Result<TrustKeeper, GatewayError> {
    let key = bundle::load_key(config.console.bundle_key.as_deref())?;
    match TrustKeeper::open(&config.gateway.data_dir, key) {
        Ok(k) => Ok(k),
        Err(e @ TrustError::Stored { .. }) => {
            tracing::error!("{e}");
            let key = bundle::load_key(config.console.bundle_key.as_deref())?;
            Ok(TrustKeeper::empty(&config.gateway.data_dir, key))
        }
        Err(e) => Err(e.into()),
    }
}

/// One decision on the card in `reader`, inside a PC/SC transaction.
pub fn decide_on(reader: &str, decider: &mut Decider, trust: &SharedTrust) -> Outcome {
    decide_on_at(reader, decider, trust, now())
}

/// [`decide_on`] with the gateway's clock reading `now` (Unix seconds): what a gateway
/// whose clock is wrong, or not yet set, decides.
pub fn decide_on_at(reader: &str, decider: &mut Decider, trust: &SharedTrust, now: i64) -> Outcome {
    // The bundle as held now: a refresh during the card transaction does not wait
    // for it, nor change what this decision judges by.
    let held = trust.held();
    let trust = held.as_ref().map(|h| h.current(now));
    let version = trust.as_ref().map(|(_, s)| s.version);
    let mut card = match Pcsc::establish().and_then(|p| p.connect(reader)) {
        Ok(c) => c,
        Err(e) => return Outcome::card_unreachable(reader, e.to_string(), version),
    };
    let tx = match card.transaction() {
        Ok(tx) => tx,
        Err(e) => return Outcome::card_unreachable(reader, e.to_string(), version),
    };
    decider.decide(tx, trust, now)
}

/// Where the one line of a decision goes.
#[derive(Clone, Copy)]
pub enum LogTo {
    Stdout,
    /// When stdout carries a JSON document.
    Stderr,
}

/// Record the decision made at `at` (the gateway's clock; committed before its action
/// starts, so every action has its event) and log it; returns the event id.
pub fn record(
    queue: &Queue,
    outcome: &Outcome,
    at: i64,
    log: LogTo,
) -> Result<String, GatewayError> {
    let id = queue::new_event_id();
    queue.push(&queue::event_for(outcome, id.clone(), at))?;
    match log {
        LogTo::Stdout => println!("{}", outcome.log_line()),
        LogTo::Stderr => eprintln!("{}", outcome.log_line()),
    }
    Ok(id)
}

/// The action configured for `outcome`'s decision (empty: none).
pub fn action_for<'c>(config: &'c Config, outcome: &Outcome) -> &'c [String] {
    match outcome.decision {
        cardstation_protocol::messages::Decision::Grant => &config.gateway.on_grant,
        cardstation_protocol::messages::Decision::Deny => &config.gateway.on_deny,
    }
}

pub fn action_timeout(config: &Config) -> Duration {
    Duration::from_secs(config.gateway.action_timeout_secs)
}

/// Fetch the bundle and apply it. The network wait happens without holding the bundle,
/// so decisions go on meanwhile.
pub fn refresh(
    trust: &SharedTrust,
    client: &ConsoleClient,
    accept_reset: Option<&str>,
) -> Result<Refreshed, GatewayError> {
    let (since, tag) = trust.read(|k| (k.since(), k.etag().map(str::to_string)));
    let fetched = client.trust_bundle(since, tag.as_deref())?;
    let apply = |fetched: Fetched| -> Result<Refreshed, TrustError> {
        trust.update(|k| match fetched {
            Fetched::NotModified { etag } => k.not_modified(etag, now()),
            Fetched::Bundle { bytes, etag } => k.accept(&bytes, etag, now(), accept_reset),
        })
    };
    match apply(fetched) {
        // A delta that does not fit what is held: take the full bundle instead.
        Err(TrustError::Bundle(BundleError::DeltaBase { .. } | BundleError::DeltaMismatch(_)))
            if since.is_some() =>
        {
            Ok(apply(client.trust_bundle(None, None)?)?)
        }
        other => Ok(other?),
    }
}

/// Send every pending event, oldest first, in batches; returns how many the console
/// took. An event the console refuses for good is set aside (and counted in `status`)
/// so that the events after it still go; one it refuses for now (dated ahead of the
/// console's clock) stays queued for a later round.
pub fn deliver(queue: &mut Queue, client: &ConsoleClient) -> Result<usize, GatewayError> {
    const BATCH: usize = 200;
    let mut delivered = 0;
    loop {
        let pending = queue.pending(BATCH)?;
        if pending.is_empty() {
            return Ok(delivered);
        }
        let (seqs, events): (Vec<i64>, Vec<_>) = pending
            .into_iter()
            .map(|(seq, e)| (seq, queue::sendable(e)))
            .unzip();
        let answer = client.post_events(&EventBatch { events })?;
        let mut later = std::collections::HashSet::new();
        for r in &answer.refused {
            let Some(&seq) = seqs.get(r.index) else {
                continue;
            };
            if r.for_good() {
                tracing::error!(
                    "the console refused event {} for good, set aside: {}",
                    r.id,
                    r.message
                );
                queue.set_aside(seq, &format!("{}: {}", r.code, r.message), now())?;
            } else {
                tracing::warn!("the console takes event {} later: {}", r.id, r.message);
            }
            later.insert(seq);
        }
        let taken: Vec<i64> = seqs
            .iter()
            .copied()
            .filter(|s| !later.contains(s))
            .collect();
        queue.mark_sent(&taken, now())?;
        delivered += taken.len();
        let set_aside = answer.refused.iter().filter(|r| r.for_good()).count();
        if taken.is_empty() && set_aside == 0 {
            // Only events the console takes later: try again at the next round.
            return Ok(delivered);
        }
    }
}

/// Whether `name` is one of the configured readers (exact, or a case-insensitive
/// substring); an empty list means every reader.
pub fn watched(configured: &[String], name: &str) -> bool {
    configured.is_empty()
        || configured
            .iter()
            .any(|c| c == name || name.to_lowercase().contains(&c.to_lowercase()))
}

enum Wake {
    /// The readers, and when pcscd reported them.
    Readers(Vec<cardstation_pcsc::ReaderStatus>, std::time::Instant),
    Unavailable(String),
}

/// `cardstation-gateway run`: wait for cards until killed. Nothing is lost on a kill:
/// the bundle is written atomically and every decision is committed before its action.
pub fn run(config: &Config) -> Result<(), GatewayError> {
    let mut decider = decider(config)?;
    let keeper = Arc::new(SharedTrust::new(trust_keeper(config)?));
    let queue = Queue::open(&config.gateway.data_dir)?;
    let client = match config.console_client() {
        Ok(c) => Some(Arc::new(c)),
        Err(ConsoleError::NotConfigured) => {
            tracing::warn!("no [console] url: the bundle is not refreshed and events stay queued");
            None
        }
        Err(e) => return Err(e.into()),
    };
    match keeper.held().map(|h| h.current(now()).1) {
        Some(s) => tracing::info!(
            "trust bundle v{} held ({}, expires {})",
            s.version,
            s.counts(),
            certificate::format_unix(s.expires_at)
        ),
        None => tracing::warn!(
            "no trust bundle held yet: every card is {} until one is fetched",
            if config.gateway.fail_open {
                "judged fail-open"
            } else {
                "denied"
            }
        ),
    }

    // The sender: woken by every decision and every successful refresh; while the
    // console is away it retries with a growing pause. Idle, it sleeps without a timer.
    let (send_tx, send_rx) = mpsc::channel::<()>();
    if let Some(client) = client.clone() {
        let data_dir = config.gateway.data_dir.clone();
        std::thread::Builder::new()
            .name("event-sender".into())
            .spawn(move || sender(&data_dir, &client, &send_rx))
            .map_err(|e| GatewayError::Settings(format!("cannot start the sender: {e}")))?;
        let _ = send_tx.send(());
    }
    if let Some(client) = client.clone() {
        let keeper = keeper.clone();
        let every = Duration::from_secs(config.gateway.refresh_secs);
        let wake = send_tx.clone();
        std::thread::Builder::new()
            .name("bundle-refresh".into())
            .spawn(move || refresher(&keeper, &client, every, &wake))
            .map_err(|e| GatewayError::Settings(format!("cannot start the refresher: {e}")))?;
    }

    let (tx, rx) = mpsc::channel::<Wake>();
    let _watcher = Watcher::spawn(move |ev| {
        let _ = tx.send(match ev {
            WatchEvent::Readers(r) => Wake::Readers(r, std::time::Instant::now()),
            WatchEvent::Unavailable(m) => Wake::Unavailable(m),
        });
    })
    .map_err(|e| GatewayError::Settings(format!("cannot start the reader watcher: {e}")))?;
    tracing::info!(
        "waiting for cards on {}",
        if config.gateway.readers.is_empty() {
            "every reader".to_string()
        } else {
            config.gateway.readers.join(", ")
        }
    );

    // Actions run beside the loop, so that a slow one never delays a decision.
    let mut actions = action::Actions::new(action_timeout(config));
    // A card is checked once when it appears; it must leave before it is checked again.
    let mut present: HashMap<String, bool> = HashMap::new();
    for wake in rx {
        match wake {
            Wake::Unavailable(msg) => {
                tracing::error!("{msg}");
                present.clear();
            }
            Wake::Readers(readers, reported) => {
                let mut seen = HashMap::new();
                for r in readers {
                    if !watched(&config.gateway.readers, &r.name) {
                        continue;
                    }
                    let is_present = r.card != CardPresence::Absent;
                    let was_present = present.get(&r.name).copied().unwrap_or(false);
                    if is_present && !was_present && r.card == CardPresence::Present {
                        let at = now();
                        let mut outcome = decide_on_at(&r.name, &mut decider, &keeper, at);
                        outcome.since_present_ms = Some(reported.elapsed().as_millis());
                        match record(&queue, &outcome, at, LogTo::Stdout) {
                            Ok(id) => actions.start(action_for(config, &outcome), &outcome, &id),
                            // Not acted on: a decision that left no record would be
                            // a door opened that no one can account for.
                            Err(e) => tracing::error!("{e}; the decision is not acted on"),
                        }
                        let _ = send_tx.send(());
                    }
                    seen.insert(r.name, is_present);
                }
                present = seen;
            }
        }
    }
    // The watcher stopped for good (it only does when dropped).
    Ok(())
}

fn refresher(
    keeper: &SharedTrust,
    client: &ConsoleClient,
    every: Duration,
    wake_sender: &mpsc::Sender<()>,
) {
    let mut last_error: Option<String> = None;
    loop {
        match refresh(keeper, client, None) {
            Ok(outcome) => {
                match &outcome {
                    Refreshed::Updated { from, to, delta } => tracing::info!(
                        "trust bundle updated: {} -> v{to} ({})",
                        from.map(|v| format!("v{v}"))
                            .unwrap_or_else(|| "none".into()),
                        if *delta { "delta" } else { "full bundle" }
                    ),
                    Refreshed::Unchanged { version } => {
                        tracing::debug!("trust bundle v{version} unchanged")
                    }
                    Refreshed::NotModified { version } => {
                        tracing::debug!("trust bundle v{version} not modified")
                    }
                }
                if last_error.take().is_some() {
                    tracing::info!("the console answers again");
                }
                let _ = wake_sender.send(());
            }
            Err(e) => {
                let msg = e.to_string();
                if last_error.as_ref() != Some(&msg) {
                    tracing::warn!("bundle refresh: {msg}; deciding on the last good trust bundle");
                    last_error = Some(msg);
                }
            }
        }
        std::thread::sleep(every);
    }
}

fn sender(data_dir: &Path, client: &ConsoleClient, wake: &mpsc::Receiver<()>) {
    const MAX_PAUSE: Duration = Duration::from_secs(60);
    let mut queue = match Queue::open(data_dir) {
        Ok(q) => q,
        Err(e) => {
            tracing::error!("event sender: {e}");
            return;
        }
    };
    let mut pause: Option<Duration> = None;
    let mut last_error: Option<String> = None;
    loop {
        let woken = match pause {
            None => wake.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(p) => wake.recv_timeout(p),
        };
        if let Err(RecvTimeoutError::Disconnected) = woken {
            return;
        }
        while wake.try_recv().is_ok() {}
        match deliver(&mut queue, client) {
            Ok(n) => {
                if n > 0 {
                    tracing::info!("{n} event(s) delivered to the console");
                }
                last_error = None;
                pause = None;
            }
            Err(e) => {
                let msg = e.to_string();
                if last_error.as_ref() != Some(&msg) {
                    tracing::warn!("events stay queued: {msg}");
                    last_error = Some(msg);
                }
                pause = Some(
                    pause
                        .map(|p| (p * 2).min(MAX_PAUSE))
                        .unwrap_or(Duration::from_secs(1)),
                );
            }
        }
    }
}
