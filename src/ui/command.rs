//! What a screen asks the window to do. Screens own their state and draw it; the
//! work they start (card jobs, console jobs, files) is done by the shell.

use std::path::PathBuf;

use crate::app::card_status::CardReport;
use crate::app::console_worker::SearchFor;
use crate::app::enroll::EnrollOutcome;
use crate::app::failure::Failure;
use crate::app::reader_worker::Job;
use cardstation_protocol::messages::{RevocationReason, SearchQuery};

pub enum Command {
    /// Run a job on the reader the screen shows.
    Job(Job),
    /// Stop the reader's running job.
    Cancel,
    /// Read the card again.
    Inspect,
    Upload(Box<EnrollOutcome>),
    Revoke {
        fingerprint: String,
        reason: RevocationReason,
    },
    Export {
        der: Vec<u8>,
        name: PathBuf,
        fingerprint: String,
    },
    /// Look up the station's record of a certificate (replace shows the old card).
    LookUp(String),
    SyncConsole,
    /// Find certificates on the console for a screen (`more`: the next page).
    SearchConsole {
        purpose: SearchFor,
        query: SearchQuery,
        more: bool,
    },
    /// Take the new trust-bundle chain (its id), after the operator confirmed.
    AcceptBundleReset(String),
    RunDiagnostics,
    SaveDiagnostics,
    LoadAudit,
    /// Fetch what gateways reported about this certificate.
    LoadCardEvents(String),
}

/// The card in the reader a screen shows, read-only.
pub struct CardView<'a> {
    pub reader: &'a str,
    pub demo: bool,
    pub present: bool,
    pub report: Option<&'a CardReport>,
    pub report_error: Option<&'a Failure>,
    /// Why this site would refuse to enroll the card.
    pub refusal: Option<&'a Failure>,
    pub inspecting: bool,
    /// Some job runs on this reader.
    pub busy: bool,
}
