//! The console contract: JSON bodies shared by the station client and the
//! reference console server. See README "Console API".

use serde::{Deserialize, Serialize};

/// `POST /v1/certificates`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UploadRequest {
    /// The certificate, PEM.
    pub certificate: String,
    pub card_serial: Option<u32>,
    pub chuid_guid: Option<String>,
    pub slot: Option<String>,
    pub label: Option<String>,
    pub operator: String,
    pub station_id: String,
    /// Proof that the key was generated on the card, where the card can give it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<AttestationEvidence>,
}

/// A card's PIV attestation of the certificate's key (YubiKey style): the attestation
/// certificate the card made for the key, and the card's own attestation (F9)
/// certificate that signed it, both PEM. The console checks them against its
/// attestation roots; nothing in them is trusted before that.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AttestationEvidence {
    pub attestation: String,
    pub intermediate: String,
}

/// What the console verified about a key's attestation and keeps with its record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyAttestation {
    /// The card serial the attestation names.
    pub card_serial: Option<u32>,
    /// Firmware version, "5.7.1".
    pub firmware: Option<String>,
    /// "never", "once", "always", … as the card enforces them for the key.
    pub pin_policy: Option<String>,
    pub touch_policy: Option<String>,
    pub form_factor: Option<String>,
    /// The attestation root the card's F9 certificate chains to (its subject).
    pub root: String,
    /// When the console verified it.
    pub verified_at: i64,
}

impl KeyAttestation {
    /// One line for people: "card serial 5437251, firmware 5.7.1, PIN once, touch never".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = self.card_serial {
            parts.push(format!("card serial {s}"));
        }
        if let Some(f) = &self.firmware {
            parts.push(format!("firmware {f}"));
        }
        if let Some(p) = &self.pin_policy {
            parts.push(format!("PIN policy {p}"));
        }
        if let Some(t) = &self.touch_policy {
            parts.push(format!("touch policy {t}"));
        }
        if let Some(f) = &self.form_factor {
            parts.push(f.clone());
        }
        parts.join(", ")
    }
}

/// Longest operator name an upload may carry.
pub const OPERATOR_MAX_CHARS: usize = 128;

/// The PIV key slots a certificate may come from (the four key slots, and the
/// twenty retired key-management slots 82–95), as the station names them.
pub fn is_piv_slot(s: &str) -> bool {
    matches!(s, "9a" | "9c" | "9d" | "9e")
        || (s.len() == 2 && u8::from_str_radix(s, 16).is_ok_and(|n| (0x82..=0x95).contains(&n)))
}

impl UploadRequest {
    /// What is wrong with the upload's descriptive fields, as an error code and a
    /// message; `None` when each is what a station sends. (The label has its own
    /// rule, [`check_label`]; the certificate is checked by the console's rules.)
    pub fn field_problem(&self) -> Option<(&'static str, String)> {
        let operator = self.operator.trim();
        if operator.is_empty()
            || operator.chars().count() > OPERATOR_MAX_CHARS
            || operator.chars().any(char::is_control)
        {
            return Some((
                "bad-operator",
                format!(
                    "operator must be 1 to {OPERATOR_MAX_CHARS} characters without control characters"
                ),
            ));
        }
        if let Some(slot) = &self.slot {
            if !is_piv_slot(slot) {
                return Some((
                    "bad-slot",
                    "slot must be a PIV key slot: 9a, 9c, 9d, 9e or 82 to 95".into(),
                ));
            }
        }
        if let Some(guid) = &self.chuid_guid {
            if guid.len() != 32 || !guid.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Some((
                    "bad-guid",
                    "chuid_guid must be the card's CHUID GUID: 32 hex digits".into(),
                ));
            }
        }
        None
    }
}

/// `POST /v1/certificates/issue`: a PKCS#10 request the card signed (proof that the
/// card holds the key), to be answered with a certificate from the site's issuing CA.
/// The descriptive fields are an upload's, and checked alike.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IssueRequest {
    /// The PKCS#10 certificate request, PEM (`CERTIFICATE REQUEST`).
    pub request: String,
    /// The console profile to issue under (lifetime, usages); `None`: the default one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    pub card_serial: Option<u32>,
    pub chuid_guid: Option<String>,
    pub slot: Option<String>,
    /// The holder label: the certificate's subject CN.
    pub label: Option<String>,
    pub operator: String,
    pub station_id: String,
    /// Proof that the requested key was generated on the card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<AttestationEvidence>,
}

impl IssueRequest {
    /// The same request as an upload of `certificate`, for the checks they share.
    pub fn as_upload(&self, certificate: String) -> UploadRequest {
        UploadRequest {
            certificate,
            card_serial: self.card_serial,
            chuid_guid: self.chuid_guid.clone(),
            slot: self.slot.clone(),
            label: self.label.clone(),
            operator: self.operator.clone(),
            station_id: self.station_id.clone(),
            attestation: self.attestation.clone(),
        }
    }
}

/// The answer to an [`IssueRequest`]: the card's certificate, the CA chain above it
/// (issuing CA first), and the record the console now holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IssuedCertificate {
    pub certificate: String,
    pub chain: Vec<String>,
    pub record: CertificateRecord,
}

/// How a site's device certificates are made (`GET /v1/issuance`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum IssuanceMode {
    /// Each card signs its own certificate; gateways hold the allow-list.
    CardSigned,
    /// The site's issuing CA signs a request the card signed.
    Ca,
}

/// `GET /v1/issuance`: the site's choice, and under CA issuance its profiles and CA.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Issuance {
    pub mode: IssuanceMode,
    #[serde(default)]
    pub profiles: Vec<IssuanceProfile>,
    /// The issuing CA certificate, PEM (CA issuance only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// What the site asks of a key's origin. Absent (an older console): nothing.
    #[serde(default)]
    pub attestation: SiteAttestation,
}

/// The site's rule on PIV attestation, published so that a station can refuse a card
/// that cannot meet it before the card is changed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SiteAttestation {
    /// Uploads and certificate requests without a valid attestation are refused.
    pub required: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IssuanceProfile {
    pub name: String,
    pub days: u32,
    pub default: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CertificateStatus {
    Active,
    Revoked,
}

/// A certificate as the console holds it (`GET /v1/certificates/{sha256}` and upload answers).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CertificateRecord {
    pub sha256: String,
    pub subject: String,
    pub not_after: i64,
    pub card_serial: Option<u32>,
    pub chuid_guid: Option<String>,
    pub slot: Option<String>,
    pub label: Option<String>,
    pub operator: String,
    pub station_id: String,
    pub uploaded_at: i64,
    pub status: CertificateStatus,
    pub revocation_reason: Option<String>,
    pub revoked_at: Option<i64>,
    /// Who revoked it: a station's name, or "admin". Absent from consoles that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
    /// The certificate that renewed this one (the card's current one); this one stays
    /// valid, and in the allow-list, until its own end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_at: Option<i64>,
    /// The key's verified attestation: proof it was generated on the card. Absent when
    /// the upload carried none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<KeyAttestation>,
}

/// `POST /v1/certificates/{sha256}/supersede`: the card was renewed; `by` is the
/// fingerprint of its new certificate, already at the console.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SupersedeRequest {
    pub by: String,
}

/// `POST /v1/certificates/{sha256}/revoke`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RevokeRequest {
    pub reason: String,
}

/// Why a certificate was revoked. On the wire it is its kebab-case text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RevocationReason {
    Lost,
    Stolen,
    Damaged,
    /// Replaced by a new card (card replacement or renewal).
    Replaced,
    Expired,
    Unspecified,
}

impl RevocationReason {
    pub const ALL: [RevocationReason; 6] = [
        RevocationReason::Lost,
        RevocationReason::Stolen,
        RevocationReason::Damaged,
        RevocationReason::Replaced,
        RevocationReason::Expired,
        RevocationReason::Unspecified,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            RevocationReason::Lost => "lost",
            RevocationReason::Stolen => "stolen",
            RevocationReason::Damaged => "damaged",
            RevocationReason::Replaced => "replaced",
            RevocationReason::Expired => "expired",
            RevocationReason::Unspecified => "unspecified",
        }
    }
}

impl std::fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RevocationReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RevocationReason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("reason must be one of {}", REVOCATION_REASONS.join(", ")))
    }
}

/// Revocation reasons the console accepts, as text.
pub const REVOCATION_REASONS: [&str; 6] = [
    RevocationReason::Lost.as_str(),
    RevocationReason::Stolen.as_str(),
    RevocationReason::Damaged.as_str(),
    RevocationReason::Replaced.as_str(),
    RevocationReason::Expired.as_str(),
    RevocationReason::Unspecified.as_str(),
];

/// Every error answer: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// Whether `s` looks like a SHA-256 fingerprint (64 lower-case hex digits).
pub fn is_fingerprint(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A gateway's decision, as the gateway reports it (`POST /v1/events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Grant,
    Deny,
}

impl Decision {
    pub const fn as_str(self) -> &'static str {
        match self {
            Decision::Grant => "grant",
            Decision::Deny => "deny",
        }
    }
}

/// One decision at a gateway. `id` is chosen by the gateway when it decides and never
/// changes, so a batch sent again after a lost answer is recognised: the console keeps
/// each id once (delivery exactly once, end to end).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GatewayEvent {
    /// 32 lower-case hex digits (128 random bits).
    pub id: String,
    /// Unix seconds at the gateway when it decided, or [`AT_UNKNOWN`] (0) when the
    /// gateway cannot vouch for its clock (it read a time before 2000: never set, NTP
    /// not yet synchronised). The console records an event of unknown time at its own
    /// receive time (the decision was made no later); any other time before 2000 is
    /// refused.
    pub at: i64,
    pub reader: String,
    pub decision: Decision,
    /// SHA-256 of the card's certificate, when the card presented one.
    pub fingerprint: Option<String>,
    pub subject: Option<String>,
    /// Finding codes that decided it (e.g. "revoked", "not-allowed", "card").
    pub reasons: Vec<String>,
    /// The trust-bundle version the decision was made with.
    pub bundle_version: Option<u64>,
}

/// [`GatewayEvent::at`] of a decision whose time the gateway cannot vouch for.
pub const AT_UNKNOWN: i64 = 0;
/// 2000-01-01T00:00:00Z: a gateway clock reading earlier than this was never set.
pub const EARLIEST_EVENT_TIME: i64 = 946_684_800;
/// The longest subject (in characters) an event may carry; the gateway cuts longer
/// ones on a character boundary, ending them in [`CUT_MARK`].
pub const MAX_EVENT_SUBJECT: usize = 1024;
/// The longest reader name (in characters) an event may carry.
pub const MAX_EVENT_READER: usize = 256;
/// How the gateway marks text it had to cut.
pub const CUT_MARK: &str = "…[cut]";

/// Text as an event carries it: control characters replaced by '?', at most `max`
/// characters (cut on a character boundary and ending in [`CUT_MARK`]).
pub fn event_text(s: &str, max: usize) -> String {
    let clean = |c: char| if c.is_control() { '?' } else { c };
    if s.chars().count() <= max {
        return s.chars().map(clean).collect();
    }
    let keep = max.saturating_sub(CUT_MARK.chars().count());
    let mut out: String = s.chars().take(keep).map(clean).collect();
    out.push_str(CUT_MARK);
    out
}

/// `POST /v1/events` body. The gateway is named by its client certificate, not here.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventBatch {
    pub events: Vec<GatewayEvent>,
}

/// `POST /v1/events` answer: how many were new and how many the console already had.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventsAccepted {
    pub accepted: usize,
    pub duplicates: usize,
}

/// `POST /v1/events` answer as a whole: the counts of [`EventsAccepted`] and the events
/// the console did not keep, each named (the others of the batch were kept). `refused`
/// is absent when every event was taken, and from consoles that refuse a batch whole.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventsAnswer {
    #[serde(flatten)]
    pub counts: EventsAccepted,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RefusedEvent>,
}

/// One event of a batch the console refused.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefusedEvent {
    /// Its place in the batch (0 = the first): names it even when its id is malformed.
    pub index: usize,
    /// Its id as sent.
    pub id: String,
    /// [`REFUSED_FOR_GOOD`]: it will never be taken, sending it again is pointless.
    /// [`REFUSED_FOR_NOW`]: dated further ahead of the console's clock than allowed;
    /// it may be taken later.
    pub code: String,
    pub message: String,
}

pub const REFUSED_FOR_GOOD: &str = "bad-event";
pub const REFUSED_FOR_NOW: &str = "event-ahead";

impl RefusedEvent {
    /// Whether sending the event again can never succeed.
    pub fn for_good(&self) -> bool {
        self.code != REFUSED_FOR_NOW
    }
}

/// Whether `s` looks like an event id (32 lower-case hex digits).
pub fn is_event_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `GET /v1/certificates?search=&status=&station=&limit=&cursor=`: one page of
/// certificates, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SearchPage {
    pub records: Vec<CertificateRecord>,
    /// Give it as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

/// What a certificate search asks for (the query string of `GET /v1/certificates`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Words that must each begin a word of the subject, label, station, card serial,
    /// CHUID GUID or fingerprint (case-insensitive): "smith", "gw-17 plant", "a3f9".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CertificateStatus>,
    /// Uploaded by this station.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub station: Option<String>,
    /// Records per page: 1 to [`SEARCH_MAX_LIMIT`], default [`SEARCH_DEFAULT_LIMIT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Only active certificates not yet renewed that end within this many days (1 to
    /// [`SEARCH_MAX_EXPIRING_DAYS`]): the cards to renew.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiring_days: Option<u32>,
    /// Only records whose key the console found attested (`true`), or only those
    /// without a verified attestation (`false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attested: Option<bool>,
}

/// The `attested` filter from a command line's `--attested` / `--unattested` flags.
pub fn attested_filter(attested: bool, unattested: bool) -> Option<bool> {
    match (attested, unattested) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        // Neither, or both (which asks for every record).
        _ => None,
    }
}

pub const SEARCH_MAX_EXPIRING_DAYS: u32 = 3650;

pub const SEARCH_DEFAULT_LIMIT: u32 = 50;
pub const SEARCH_MAX_LIMIT: u32 = 200;
/// Longest search text accepted, in bytes, and most words in it.
pub const SEARCH_MAX_TEXT: usize = 200;
pub const SEARCH_MAX_WORDS: usize = 8;

/// Longest holder label, in characters.
pub const LABEL_MAX_CHARS: usize = 128;

/// A holder label ("gw-17 Plant B", "J. Smith"): trimmed, at most
/// [`LABEL_MAX_CHARS`] characters, no control characters. Empty means none.
pub fn check_label(label: &str) -> Result<Option<String>, String> {
    let label = label.trim();
    if label.is_empty() {
        return Ok(None);
    }
    if label.chars().count() > LABEL_MAX_CHARS {
        return Err(format!(
            "the label is longer than {LABEL_MAX_CHARS} characters"
        ));
    }
    if label.chars().any(char::is_control) {
        return Err("the label holds control characters".into());
    }
    Ok(Some(label.to_string()))
}

/// The words a search matches against, lower case: runs of letters and digits.
/// "CN=gw-17,O=Acme" gives "gw", "17", "acme" (attribute names are not words).
pub fn search_words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect()
}

/// An event as the console keeps it (`GET /v1/events`): the gateway that reported
/// it (named by its verified client certificate) and when the console received it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordedEvent {
    pub gateway: String,
    /// Unix seconds at the console when the event arrived (the console's clock).
    pub received_at: i64,
    #[serde(flatten)]
    pub event: GatewayEvent,
}

/// `GET /v1/events` answer: newest first, at most the `limit` asked for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventList {
    pub events: Vec<RecordedEvent>,
}

/// `POST /v1/audit-anchor`: the head of the station's audit hash chain (how many
/// rows it has and the hash of the last), sent with its deliveries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditHead {
    pub rows: u64,
    /// 64 lower-case hex digits.
    pub hash: String,
}

/// `GET /v1/audit-anchor` (and the answer of a POST): the head the console keeps
/// for the calling station, with when it received it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditAnchor {
    pub rows: u64,
    pub hash: String,
    pub received_at: i64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn piv_slots_are_the_key_slots_and_the_retired_ones() {
        for ok in ["9a", "9c", "9d", "9e", "82", "8f", "95"] {
            assert!(is_piv_slot(ok), "{ok}");
        }
        for bad in ["9b", "81", "96", "9A ", "", "9a9a", "zz"] {
            assert!(!is_piv_slot(bad), "{bad}");
        }
    }

    #[test]
    fn event_text_is_clean_and_bounded_on_a_char_boundary() {
        assert_eq!(event_text("CN=a\u{0}b\u{1b}[2J", 100), "CN=a?b?[2J");
        let long = format!("CN={}", "é".repeat(2000));
        let cut = event_text(&long, MAX_EVENT_SUBJECT);
        assert_eq!(cut.chars().count(), MAX_EVENT_SUBJECT);
        assert!(cut.ends_with(CUT_MARK) && cut.starts_with("CN=éé"), "{cut}");
        let exact = "x".repeat(MAX_EVENT_SUBJECT);
        assert_eq!(event_text(&exact, MAX_EVENT_SUBJECT), exact);
    }

    #[test]
    fn an_answer_without_refusals_reads_as_before() {
        let old: EventsAnswer = serde_json::from_str(r#"{"accepted":2,"duplicates":1}"#).unwrap();
        assert!(old.refused.is_empty());
        assert_eq!(
            serde_json::to_string(&old).unwrap(),
            r#"{"accepted":2,"duplicates":1}"#
        );
    }
}
