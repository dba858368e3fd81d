//! One decision: the station's spot check (crate `cardstation-verifier`, the same code)
//! judged by the gateway's bundle and its failure policy, turned into grant or deny.

use serde::Serialize;

use cardstation_card::Transport;
use cardstation_piv::Slot;
use cardstation_protocol::bundle::TrustStatus;
use cardstation_protocol::messages::Decision;
use cardstation_protocol::trust_lists::TrustLists;
use cardstation_verifier::{
    spot_check_remembering, ChallengeBook, Policy, SeenCertificates, SpotCheck, Verdict,
};

/// A reason a decision went the way it did: a stable code and words for the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub decision: Decision,
    pub reader: String,
    pub fingerprint: Option<String>,
    pub subject: Option<String>,
    /// Why it was denied; for a grant under `fail_open`, why the bundle was overridden.
    pub reasons: Vec<Reason>,
    pub bundle_version: Option<u64>,
    /// Granted only because `fail_open` is set (no bundle, or an expired one).
    pub fail_open: bool,
    pub apdus: usize,
    /// The check itself, from the first APDU to the verdict.
    pub millis: u128,
    /// From pcscd reporting the card present to the verdict (the daemon only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_present_ms: Option<u128>,
}

/// Findings a fail-open gateway overlooks when its bundle has expired or is missing:
/// the bundle's age, and the absence of a card enrolled since. A revocation in the last
/// good bundle still denies, and the certificate must chain to the issuing CA: without
/// one (card-signed certificates) fail-open is refused at start.
const OVERLOOKED_WHEN_FAIL_OPEN: [&str; 2] = ["bundle-expired", "not-allowed"];

/// Decides, card after card: keeps the outstanding challenges and the certificates of
/// cards already seen (so a known card costs no certificate read).
pub struct Decider {
    slot: Slot,
    issuing_ca: Option<Vec<u8>>,
    fail_open: bool,
    require_attestation: bool,
    book: ChallengeBook,
    seen: SeenCertificates,
}

impl Decider {
    /// `fail_open` takes effect only with an issuing CA (a configuration without one is
    /// refused at start; here it is simply fail-closed).
    pub fn new(slot: Slot, issuing_ca: Option<Vec<u8>>, fail_open: bool) -> Self {
        let fail_open = fail_open && issuing_ca.is_some();
        Decider {
            slot,
            issuing_ca,
            fail_open,
            require_attestation: false,
            book: ChallengeBook::default(),
            seen: SeenCertificates::default(),
        }
    }

    /// Refuse cards whose key the console did not mark attested. Never with `fail_open`
    /// (which does without the bundle that carries the marks).
    pub fn requiring_attestation(mut self, required: bool) -> Self {
        self.require_attestation = required;
        if required {
            self.fail_open = false;
        }
        self
    }

    /// Check the card behind `transport` against `trust` (the held bundle, if any).
    pub fn decide<T: Transport>(
        &mut self,
        transport: T,
        trust: Option<(&TrustLists, TrustStatus)>,
        now: i64,
    ) -> Outcome {
        let policy = Policy {
            bundle: trust.as_ref().map(|(p, s)| (*p, s)),
            issuing_ca: self.issuing_ca.as_deref(),
            now,
            require_attestation: self.require_attestation,
        };
        let (check, _) = spot_check_remembering(
            transport,
            self.slot,
            None,
            &policy,
            &mut self.book,
            Some(&mut self.seen),
        );
        judge(check, self.fail_open)
    }
}

/// Grant only a `Pass`; with `fail_open` (only ever set with an issuing CA), also a
/// card that proved its key and holds a valid certificate issued by that CA while the
/// bundle is missing or expired.
fn judge(check: SpotCheck, fail_open: bool) -> Outcome {
    let failures: Vec<Reason> = check
        .failures()
        .map(|f| Reason {
            code: f.code.to_string(),
            message: f.message.clone(),
        })
        .collect();
    // Fail-open overlooks freshness, never trust: the key proved, the chain verified.
    let proved = check.findings.iter().any(|f| f.code == "signature" && f.ok)
        && check.findings.iter().any(|f| f.code == "chain" && f.ok);
    let (decision, reasons, by_fail_open) = match check.verdict {
        Verdict::Pass => (Decision::Grant, Vec::new(), false),
        Verdict::TrustUnknown => {
            let reason = Reason {
                code: "no-trust-bundle".into(),
                message:
                    "no trust bundle is held: run `cardstation-gateway sync` or check the console"
                        .into(),
            };
            if fail_open && proved && failures.is_empty() {
                (Decision::Grant, vec![reason], true)
            } else {
                (Decision::Deny, vec![reason], false)
            }
        }
        Verdict::Fail => {
            let expired = failures.iter().any(|r| r.code == "bundle-expired");
            let overlookable = failures
                .iter()
                .all(|r| OVERLOOKED_WHEN_FAIL_OPEN.contains(&r.code.as_str()));
            if fail_open && proved && expired && overlookable {
                (Decision::Grant, failures, true)
            } else {
                (Decision::Deny, failures, false)
            }
        }
    };
    Outcome {
        decision,
        reader: check.reader,
        fingerprint: check.fingerprint,
        subject: check.subject,
        reasons,
        bundle_version: check.bundle_version,
        fail_open: by_fail_open,
        apdus: check.apdus,
        millis: check.millis,
        since_present_ms: None,
    }
}

impl Outcome {
    /// A decision that never reached the card (reader gone, card pulled before connect).
    pub fn card_unreachable(reader: &str, message: String, bundle_version: Option<u64>) -> Self {
        Outcome {
            decision: Decision::Deny,
            reader: reader.to_string(),
            fingerprint: None,
            subject: None,
            reasons: vec![Reason {
                code: "card".into(),
                message,
            }],
            bundle_version,
            fail_open: false,
            apdus: 0,
            millis: 0,
            since_present_ms: None,
        }
    }

    pub fn reason_codes(&self) -> String {
        self.reasons
            .iter()
            .map(|r| r.code.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The one log line of a decision.
    pub fn log_line(&self) -> String {
        let q = |s: &Option<String>| {
            s.as_deref()
                .map(|v| format!("{v:?}"))
                .unwrap_or_else(|| "-".into())
        };
        format!(
            "{} reader={:?} fingerprint={} subject={} reasons={} bundle={} {}apdus={} ms={}{}",
            self.decision.as_str(),
            self.reader,
            self.fingerprint.as_deref().unwrap_or("-"),
            q(&self.subject),
            if self.reasons.is_empty() {
                "-".to_string()
            } else {
                self.reason_codes()
            },
            self.bundle_version
                .map(|v| format!("v{v}"))
                .unwrap_or_else(|| "none".into()),
            if self.fail_open { "fail-open " } else { "" },
            self.apdus,
            self.millis,
            self.since_present_ms
                .map(|ms| format!(" present_ms={ms}"))
                .unwrap_or_default()
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use cardstation_verifier::Finding;

    fn check(verdict: Verdict, findings: &[(&'static str, bool)]) -> SpotCheck {
        SpotCheck {
            verdict,
            reader: "R".into(),
            slot: Slot::CardAuthentication,
            fingerprint: Some("ab".repeat(32)),
            subject: Some("CN=x".into()),
            findings: findings
                .iter()
                .map(|(code, ok)| Finding {
                    code,
                    ok: *ok,
                    message: (*code).into(),
                })
                .collect(),
            bundle_version: Some(1),
            apdus: 3,
            millis: 1,
        }
    }

    #[test]
    fn fail_closed_by_default_and_fail_open_never_overrides_a_revocation() {
        let good = [("signature", true), ("allowed", true)];
        assert_eq!(
            judge(check(Verdict::Pass, &good), false).decision,
            Decision::Grant
        );
        let unknown = [
            ("signature", true),
            ("chain", true),
            ("no-trust-bundle", true),
        ];
        assert_eq!(
            judge(check(Verdict::TrustUnknown, &unknown), false).decision,
            Decision::Deny
        );
        let open = judge(check(Verdict::TrustUnknown, &unknown), true);
        assert_eq!((open.decision, open.fail_open), (Decision::Grant, true));
        let expired = [
            ("signature", true),
            ("chain", true),
            ("not-allowed", false),
            ("bundle-expired", false),
        ];
        assert_eq!(
            judge(check(Verdict::Fail, &expired), false).decision,
            Decision::Deny
        );
        assert_eq!(
            judge(check(Verdict::Fail, &expired), true).decision,
            Decision::Grant
        );
        let revoked = [
            ("signature", true),
            ("chain", true),
            ("revoked", false),
            ("bundle-expired", false),
        ];
        assert_eq!(
            judge(check(Verdict::Fail, &revoked), true).decision,
            Decision::Deny
        );
        // A card that did not prove its key is never granted, fail-open or not.
        let unproved = [("signature-mismatch", false), ("bundle-expired", false)];
        assert_eq!(
            judge(check(Verdict::Fail, &unproved), true).decision,
            Decision::Deny
        );
        let no_sig = [("card", false)];
        assert_eq!(
            judge(check(Verdict::TrustUnknown, &no_sig), true).decision,
            Decision::Deny
        );
        // Fail-open overlooks freshness, never trust: a certificate that does not chain to
        // the issuing CA (a card that made its own) is denied with or without a bundle.
        let self_made = [
            ("signature", true),
            ("unknown-issuer", false),
            ("not-allowed", false),
            ("bundle-expired", false),
        ];
        assert_eq!(
            judge(check(Verdict::Fail, &self_made), true).decision,
            Decision::Deny
        );
        let unchained = [("signature", true), ("no-trust-bundle", true)];
        assert_eq!(
            judge(check(Verdict::TrustUnknown, &unchained), true).decision,
            Decision::Deny
        );
        // Without an issuing CA there is no fail-open at all.
        assert!(!Decider::new(Slot::CardAuthentication, None, true).fail_open);
        assert!(Decider::new(Slot::CardAuthentication, Some(vec![0x30]), true).fail_open);
        // The bundle merely unknown, but the bundle fresh and the card not on it: deny.
        let not_allowed = [("signature", true), ("not-allowed", false)];
        assert_eq!(
            judge(check(Verdict::Fail, &not_allowed), true).decision,
            Decision::Deny
        );
    }
}
