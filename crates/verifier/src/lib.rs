//! The gateway's check, run at the desk: read the slot's certificate, send a fresh
//! random challenge, have the card sign it, verify the signature against the
//! certificate's key, then apply the console's policy from the cached trust bundle.
//! PASS only when every check passed.

use std::collections::HashMap;
use std::time::Instant;

use p256::ecdsa::Signature;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};

use cardstation_card::Transport;
use cardstation_piv::{Pin, PivError, PivSession, Slot};
use cardstation_pki::certificate::{self, format_age, format_unix, CertificateInfo};
use cardstation_pki::rules::{check_certificate, Rules, DEFAULT_MAX_LIFETIME_DAYS};
use cardstation_protocol::bundle::TrustStatus;
use cardstation_protocol::trust_lists::{Standing, TrustLists};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// A gateway would accept the card.
    Pass,
    /// A gateway would refuse it; `reasons` say why.
    Fail,
    /// The card proved its key, but there is no trust bundle to judge it by.
    TrustUnknown,
}

/// One finding, with a stable code for scripts and words for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub code: &'static str,
    pub ok: bool,
    pub message: String,
}

impl Finding {
    fn ok(code: &'static str, message: impl Into<String>) -> Self {
        Finding {
            code,
            ok: true,
            message: message.into(),
        }
    }
    fn fail(code: &'static str, message: impl Into<String>) -> Self {
        Finding {
            code,
            ok: false,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SpotCheck {
    pub verdict: Verdict,
    pub reader: String,
    pub slot: Slot,
    pub fingerprint: Option<String>,
    pub subject: Option<String>,
    pub findings: Vec<Finding>,
    pub bundle_version: Option<u64>,
    pub apdus: usize,
    pub millis: u128,
}

impl SpotCheck {
    /// The reasons it did not pass.
    pub fn failures(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| !f.ok)
    }
}

/// What the check is judged against.
pub struct Policy<'a> {
    /// The cached trust bundle (already verified with the pinned key), and its status.
    pub bundle: Option<(&'a TrustLists, &'a TrustStatus)>,
    /// The issuing CA for CA-issued certificates (DER); `None` accepts card-signed ones.
    pub issuing_ca: Option<&'a [u8]>,
    pub now: i64,
    /// Refuse a card whose key the console did not mark attested (generated on the card).
    pub require_attestation: bool,
}

/// Challenges issued and not yet answered: a signature is accepted only for the
/// challenge just issued, and only once.
#[derive(Default)]
pub struct ChallengeBook {
    outstanding: HashMap<u64, [u8; 32]>,
    next_id: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge {
    pub id: u64,
    pub bytes: [u8; 32],
}

impl ChallengeBook {
    /// A fresh challenge from the OS generator.
    pub fn issue(&mut self) -> Challenge {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        self.next_id += 1;
        self.outstanding.insert(self.next_id, bytes);
        Challenge {
            id: self.next_id,
            bytes,
        }
    }

    /// Accept `sig` over the challenge `id` once; any later use of `id` is a replay.
    pub fn redeem(
        &mut self,
        id: u64,
        sig: &Signature,
        key: &p256::PublicKey,
    ) -> Result<(), &'static str> {
        let bytes = self
            .outstanding
            .remove(&id)
            .ok_or("replay: this challenge was already answered (or never issued)")?;
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        if certificate::verify_prehash(key, &digest, sig) {
            Ok(())
        } else {
            Err("the signature does not match the certificate's public key for this challenge")
        }
    }
}

/// Why a card did not prove it holds the certificate's key.
#[derive(Debug, thiserror::Error)]
pub enum PossessionError {
    #[error(transparent)]
    Card(#[from] PivError),
    #[error("{0}")]
    SignatureMismatch(&'static str),
}

/// The challenge-response itself, the one implementation the enrollment self-test,
/// the spot check and a gateway share: a fresh challenge from `book` (OS generator),
/// signed by the card's key in `slot`, redeemed once against `key`.
pub fn prove_possession<T: Transport>(
    session: &mut PivSession<T>,
    slot: Slot,
    key: &p256::PublicKey,
    book: &mut ChallengeBook,
) -> Result<CapturedExchange, PossessionError> {
    let challenge = book.issue();
    let digest: [u8; 32] = Sha256::digest(challenge.bytes).into();
    let signature = session.sign_p256(slot, &digest)?;
    book.redeem(challenge.id, &signature, key)
        .map_err(PossessionError::SignatureMismatch)?;
    Ok(CapturedExchange {
        challenge,
        signature,
        key: *key,
    })
}

/// One captured exchange, as a replaying attacker would hold it.
#[derive(Debug, Clone)]
pub struct CapturedExchange {
    pub challenge: Challenge,
    pub signature: Signature,
    pub key: p256::PublicKey,
}

/// Certificates already read, keyed by the card's CHUID (SHA-256 of its content).
///
/// Enrollment writes a new CHUID GUID with every certificate, so an unchanged CHUID
/// means an unchanged certificate: a gateway that has seen the card skips reading it
/// again. Nothing is trusted on that account: the card must still sign a fresh
/// challenge with the cached certificate's key, and when it does not, the certificate
/// is read from the card and the check runs again in full.
#[derive(Default)]
pub struct SeenCertificates {
    by_chuid: HashMap<[u8; 32], Vec<u8>>,
    order: std::collections::VecDeque<[u8; 32]>,
}

impl SeenCertificates {
    /// Cards remembered at most (the oldest is forgotten first).
    pub const CAPACITY: usize = 4096;

    pub fn len(&self) -> usize {
        self.by_chuid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_chuid.is_empty()
    }

    fn get(&self, chuid: &[u8; 32]) -> Option<&Vec<u8>> {
        self.by_chuid.get(chuid)
    }

    fn put(&mut self, chuid: [u8; 32], der: Vec<u8>) {
        if self.by_chuid.insert(chuid, der).is_none() {
            self.order.push_back(chuid);
        }
        while self.order.len() > Self::CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.by_chuid.remove(&old);
            }
        }
    }

    fn forget(&mut self, chuid: &[u8; 32]) {
        self.by_chuid.remove(chuid);
        self.order.retain(|c| c != chuid);
    }
}

/// Run the gateway's check on the card behind `transport`.
pub fn spot_check<T: Transport>(
    transport: T,
    slot: Slot,
    pin: Option<&Pin>,
    policy: &Policy<'_>,
    book: &mut ChallengeBook,
) -> (SpotCheck, Option<CapturedExchange>) {
    spot_check_remembering(transport, slot, pin, policy, book, None)
}

/// [`spot_check`], reusing the certificate of a card seen before when its CHUID is
/// unchanged (see [`SeenCertificates`]); the same check, fewer APDUs.
pub fn spot_check_remembering<T: Transport>(
    transport: T,
    slot: Slot,
    pin: Option<&Pin>,
    policy: &Policy<'_>,
    book: &mut ChallengeBook,
    seen: Option<&mut SeenCertificates>,
) -> (SpotCheck, Option<CapturedExchange>) {
    let started = Instant::now();
    let mut check = SpotCheck {
        verdict: Verdict::Fail,
        reader: transport.reader().to_string(),
        slot,
        fingerprint: None,
        subject: None,
        findings: Vec::new(),
        bundle_version: policy.bundle.map(|(_, s)| s.version),
        apdus: 0,
        millis: 0,
    };
    let mut session = match PivSession::open(transport) {
        Ok(s) => s,
        Err(e) => {
            check.findings.push(card_failure(&e));
            check.millis = started.elapsed().as_millis();
            return (check, None);
        }
    };
    let captured = run(&mut session, slot, pin, policy, book, seen, &mut check);
    check.apdus = session.channel().apdu_count();
    check.millis = started.elapsed().as_millis();
    check.verdict = if check.findings.iter().any(|f| !f.ok) {
        Verdict::Fail
    } else if policy.bundle.is_none() {
        Verdict::TrustUnknown
    } else {
        Verdict::Pass
    };
    (check, captured)
}

/// The card's CHUID, hashed, as the key of [`SeenCertificates`]; `None` when the card
/// has none (then nothing is remembered).
fn chuid_key<T: Transport>(session: &mut PivSession<T>) -> Result<Option<[u8; 32]>, PivError> {
    Ok(session
        .get_data(cardstation_piv::objects::CHUID)?
        .map(|content| Sha256::digest(content).into()))
}

fn run<T: Transport>(
    session: &mut PivSession<T>,
    slot: Slot,
    pin: Option<&Pin>,
    policy: &Policy<'_>,
    book: &mut ChallengeBook,
    mut seen: Option<&mut SeenCertificates>,
    check: &mut SpotCheck,
) -> Option<CapturedExchange> {
    // A remembered certificate is tried first; if the card does not sign for its key,
    // the certificate is read from the card and the whole check runs again.
    let chuid = match seen.as_deref_mut() {
        Some(_) => match chuid_key(session) {
            Ok(key) => key,
            Err(e) => {
                check.findings.push(card_failure(&e));
                return None;
            }
        },
        None => None,
    };
    if let (Some(cache), Some(key)) = (seen.as_deref_mut(), chuid) {
        if let Some(der) = cache.get(&key).cloned() {
            let mut attempt = check.clone();
            let captured = judge(session, slot, pin, policy, book, der, &mut attempt);
            let mismatch = attempt
                .findings
                .iter()
                .any(|f| f.code == "signature-mismatch");
            if !mismatch {
                *check = attempt;
                return captured;
            }
            cache.forget(&key);
        }
    }
    // The certificate the card presents.
    let f = &mut check.findings;
    let der = match session.read_certificate(slot) {
        Ok(Some(obj)) => obj.der,
        Ok(None) => {
            f.push(Finding::fail(
                "no-certificate",
                format!("slot {slot} holds no certificate: the card is not enrolled"),
            ));
            return None;
        }
        Err(e) => {
            f.push(card_failure(&e));
            return None;
        }
    };
    if let (Some(cache), Some(key)) = (seen, chuid) {
        cache.put(key, der.clone());
    }
    judge(session, slot, pin, policy, book, der, check)
}

/// Everything after the certificate is known: parse it, challenge the card, apply policy.
fn judge<T: Transport>(
    session: &mut PivSession<T>,
    slot: Slot,
    pin: Option<&Pin>,
    policy: &Policy<'_>,
    book: &mut ChallengeBook,
    der: Vec<u8>,
    check: &mut SpotCheck,
) -> Option<CapturedExchange> {
    let f = &mut check.findings;
    let info = match CertificateInfo::parse(&der) {
        Ok(i) => i,
        Err(e) => {
            f.push(Finding::fail(
                "bad-certificate",
                format!("the certificate on the card cannot be read: {e}"),
            ));
            return None;
        }
    };
    check.fingerprint = Some(info.sha256.clone());
    check.subject = Some(info.subject.clone());
    let Some(key) = info.public_key else {
        f.push(Finding::fail(
            "not-p256",
            "the certificate's key is not ECDSA P-256",
        ));
        return None;
    };

    // Challenge-response with a fresh challenge.
    if let Some(pin) = pin {
        if let Err(e) = session.verify_pin(pin) {
            f.push(card_failure(&e));
            return None;
        }
    }
    let captured = match prove_possession(session, slot, &key, book) {
        Ok(exchange) => {
            f.push(Finding::ok(
                "signature",
                "the card signed a fresh challenge with the certificate's key",
            ));
            Some(exchange)
        }
        Err(PossessionError::Card(PivError::NotAuthorized { .. })) => {
            f.push(Finding::fail(
                "pin-required",
                format!("slot {slot} signs only after the PIN: give the card's PIN to check it"),
            ));
            return None;
        }
        Err(PossessionError::Card(e)) => {
            f.push(card_failure(&e));
            return None;
        }
        Err(PossessionError::SignatureMismatch(why)) => {
            f.push(Finding::fail("signature-mismatch", why));
            None
        }
    };

    // The certificate itself: the rules the console applies to every upload. The
    // issuing CA is the configured one, else the one a revocation-only bundle names
    // (signed by the pinned console key, so trusted as much as the bundle).
    let bundle_ca = policy
        .bundle
        .and_then(|(b, _)| b.authority())
        .and_then(|a| cardstation_pki::rules::issuer_among(&der, &a.cas));
    let rules = Rules {
        issuing_ca: policy.issuing_ca.or(bundle_ca),
        now: policy.now,
        max_lifetime_days: DEFAULT_MAX_LIFETIME_DAYS,
    };
    f.extend(
        check_certificate(&der, &rules)
            .into_iter()
            .map(|c| Finding {
                code: c.code,
                ok: c.ok,
                message: c.message,
            }),
    );

    // The console's policy.
    match policy.bundle {
        None => f.push(Finding::ok(
            "no-trust-bundle",
            "no trust bundle is held here: the signature is valid but trust is unknown; fetch the console's trust bundle",
        )),
        Some((bundle, status)) => {
            let key = cardstation_pki::rules::public_key_sha256(&der);
            f.push(standing_finding(
                bundle.standing_hex(&info.sha256, key.as_deref()),
            ));
            f.extend(attestation_finding(
                bundle,
                &info,
                policy.require_attestation,
            ));
            if let Some(mark) = bundle.authority().map(|a| a.issued_up_to) {
                if info.not_before > mark {
                    f.push(Finding::ok(
                        "newer-than-bundle",
                        format!(
                            "issued after the newest certificate trust bundle version {} accounts for ({}): revocations are as of that version; sync to be current",
                            status.version,
                            format_unix(mark)
                        ),
                    ));
                }
            }
            if status.expired {
                f.push(Finding::fail(
                    "bundle-expired",
                    format!(
                        "the trust bundle (version {}) expired; it is {} old. Sync with the console",
                        status.version,
                        format_age(status.age_secs)
                    ),
                ));
            }
        }
    }
    captured
}

/// Whether the console marked the certificate's key attested (generated on the card):
/// said when it did, a failure when it did not and attestation is required.
///
/// An allow-list bundle marks attested certificates one by one. A revocation-only bundle
/// says since when its CA issues only for attested keys: a certificate of that CA that
/// begins then or later holds one (the chain to the CA is a finding of its own).
fn attestation_finding(
    bundle: &TrustLists,
    cert: &cardstation_pki::CertificateInfo,
    required: bool,
) -> Option<Finding> {
    let attested = match bundle.authority() {
        Some(a) => a.vouches_attested(cert.not_before),
        None => cardstation_protocol::trust_lists::fingerprint_from_hex(&cert.sha256)
            .is_some_and(|fp| bundle.is_attested(&fp)),
    };
    match (attested, required, bundle.authority()) {
        (true, _, _) => Some(Finding::ok(
            "attested",
            "the key was generated on the card: the console verified the card's attestation",
        )),
        (false, true, None) => Some(Finding::fail(
            "not-attested",
            "the console holds no proof that this card's key was generated on the card (no valid attestation at upload), and this check requires one: enroll the card again on a card that attests its keys",
        )),
        (false, true, Some(a)) if a.attested_since != 0 => Some(Finding::fail(
            "not-attested",
            format!(
                "the certificate was issued before the site's CA required attestation ({}): renew the card onto a key the card attests",
                format_unix(a.attested_since)
            ),
        )),
        (false, true, Some(_)) => Some(Finding::fail(
            "not-attested",
            "attestation is required here, but this site's CA does not require it at issuance: set [attestation] require_attestation = true at the console",
        )),
        (false, false, _) => None,
    }
}

/// What the bundle's lists say of the certificate, in an operator's words.
pub fn standing_finding(standing: Standing<'_>) -> Finding {
    match standing {
        Standing::Revoked(r) => Finding::fail(
            "revoked",
            format!("revoked ({}) on {}", r.reason, format_unix(r.at)),
        ),
        Standing::KeyRevoked => Finding::fail(
            "key-revoked",
            "the card's key was revoked under another certificate: a revoked key is never trusted again, whatever certificate it comes in",
        ),
        Standing::RevokedId => Finding::fail(
            "revoked",
            "revoked at the console (the certificate or its key is on the trust bundle's revocation list; `cardstation-console cards show` has the reason)",
        ),
        Standing::Allowed => Finding::ok("allowed", "on the console's allow-list"),
        Standing::ChainDecides => Finding::ok(
            "not-revoked",
            "not revoked: the trust bundle accepts any certificate the site's CA issued that is in date and not revoked",
        ),
        Standing::NotAllowed => Finding::fail(
            "not-allowed",
            "not on the console's allow-list: the certificate was never uploaded (or not yet delivered)",
        ),
    }
}

fn card_failure(e: &PivError) -> Finding {
    Finding::fail("card", format!("the card could not be checked: {e}"))
}

/// The replay demonstration: one exchange is captured, then presented again as a
/// gateway that does not issue fresh challenges would see it. Both replays fail.
pub fn replay_findings(book: &mut ChallengeBook, captured: &CapturedExchange) -> Vec<Finding> {
    let key = &captured.key;
    let mut out = Vec::new();
    // 1. The same challenge id again: already answered.
    match book.redeem(captured.challenge.id, &captured.signature, key) {
        Ok(()) => out.push(Finding::fail(
            "replay-accepted",
            "a replayed answer was accepted",
        )),
        Err(why) => out.push(Finding::ok(
            "replay-rejected",
            format!("same challenge again: {why}"),
        )),
    }
    // 2. The old signature against a fresh challenge.
    let fresh = book.issue();
    match book.redeem(fresh.id, &captured.signature, key) {
        Ok(()) => out.push(Finding::fail(
            "replay-accepted",
            "an old signature passed for a new challenge",
        )),
        Err(why) => out.push(Finding::ok(
            "replay-rejected",
            format!("old signature, fresh challenge: {why}"),
        )),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_is_redeemed_once() {
        let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let public = p256::PublicKey::from(key.verifying_key());
        let mut book = ChallengeBook::default();
        let c = book.issue();
        let digest: [u8; 32] = Sha256::digest(c.bytes).into();
        let sig: Signature =
            p256::ecdsa::signature::hazmat::PrehashSigner::sign_prehash(&key, &digest).unwrap();
        assert!(book.redeem(c.id, &sig, &public).is_ok());
        assert!(book
            .redeem(c.id, &sig, &public)
            .unwrap_err()
            .starts_with("replay"));
        let captured = CapturedExchange {
            challenge: c,
            signature: sig,
            key: public,
        };
        let findings = replay_findings(&mut book, &captured);
        assert!(
            findings.iter().all(|f| f.ok && f.code == "replay-rejected"),
            "{findings:?}"
        );
        // Two fresh challenges are never the same.
        assert_ne!(book.issue().bytes, book.issue().bytes);
    }

    #[test]
    fn remembered_certificates_are_bounded_oldest_first() {
        let mut seen = SeenCertificates::default();
        let key = |i: usize| -> [u8; 32] { Sha256::digest(i.to_le_bytes()).into() };
        for i in 0..=SeenCertificates::CAPACITY {
            seen.put(key(i), vec![1]);
        }
        assert_eq!(seen.len(), SeenCertificates::CAPACITY);
        assert!(seen.get(&key(0)).is_none());
        assert!(seen.get(&key(SeenCertificates::CAPACITY)).is_some());
        // The same card again does not take a second place.
        seen.put(key(5), vec![2]);
        assert_eq!(seen.len(), SeenCertificates::CAPACITY);
        seen.forget(&key(5));
        assert!(seen.get(&key(5)).is_none());
    }
}
