//! The site's attestation policy: which roots vouch for cards' attestation keys, whether
//! a key must be proven to be born on a card, and which attested PIN and touch policies
//! are refused per slot. One check serves uploads and issuance alike.
//!
//! ```toml
//! [attestation]
//! # Refuse any upload or certificate request without a valid attestation (default: false)
//! require_attestation = true
//! # Attestation root certificates (PEM or DER, one or more per file); default DATA/attestation-roots
//! roots = "/etc/cardstation/attestation-roots"
//! # Attested policies refused per slot: a 9a key that never asks for the PIN
//! [attestation.refuse."9a"]
//! pin = ["never"]
//! touch = []
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use cardstation_pki::attestation::{
    pin_policy_name, touch_policy_name, verify, AttestationError, Evidence, Expected, Unverified,
    VerifiedAttestation,
};
use cardstation_protocol::messages::{AttestationEvidence, KeyAttestation};

/// Where the attestation roots are looked for when the settings name no directory.
pub const DEFAULT_ROOTS_DIR: &str = "attestation-roots";

/// `[attestation]` in console.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestationSettings {
    #[serde(default)]
    pub require_attestation: bool,
    pub roots: Option<PathBuf>,
    /// Slot ("9a") → the attested policies refused for keys in it.
    #[serde(default)]
    pub refuse: BTreeMap<String, RefusedPolicies>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefusedPolicies {
    #[serde(default)]
    pub pin: Vec<String>,
    #[serde(default)]
    pub touch: Vec<String>,
}

const PIN_POLICIES: &[&str] = &[
    "default",
    "never",
    "once",
    "always",
    "match-once",
    "match-always",
];
const TOUCH_POLICIES: &[&str] = &["default", "never", "always", "cached"];

/// The policy in force, with its roots loaded.
#[derive(Debug, Default)]
pub struct AttestationPolicy {
    pub require: bool,
    /// DER certificates; every one is a trust anchor.
    pub roots: Vec<Vec<u8>>,
    pub roots_dir: PathBuf,
    pub refuse: BTreeMap<String, RefusedPolicies>,
}

/// Why an upload or request is refused, as an error code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

/// What is stored with a record whose attestation passed.
pub struct Attested {
    pub summary: KeyAttestation,
    /// The evidence as verified (JSON of [`AttestationEvidence`]).
    pub evidence_json: String,
}

/// What the attestation must match: the key and the card the upload names.
pub struct Claimed<'a> {
    pub key_sha256: &'a str,
    pub card_serial: Option<u32>,
    pub slot: Option<&'a str>,
}

impl AttestationPolicy {
    /// From the settings: the roots directory read, every name checked.
    pub fn load(settings: &AttestationSettings, data: &Path) -> Result<Self, String> {
        let roots_dir = settings
            .roots
            .clone()
            .unwrap_or_else(|| data.join(DEFAULT_ROOTS_DIR));
        let roots = read_roots(&roots_dir, settings.roots.is_some())?;
        if settings.require_attestation && roots.is_empty() {
            let state = if roots_dir.is_dir() {
                "holds no certificate"
            } else {
                "does not exist"
            };
            return Err(format!(
                "[attestation] require_attestation = true needs attestation roots, and {} {state}: put the vendor's PIV attestation root certificates (e.g. Yubico's) there",
                roots_dir.display()
            ));
        }
        for (slot, refused) in &settings.refuse {
            if !cardstation_protocol::messages::is_piv_slot(&slot.to_ascii_lowercase()) {
                return Err(format!(
                    "[attestation.refuse.\"{slot}\"]: not a PIV key slot (9a, 9c, 9d, 9e, 82 to 95)"
                ));
            }
            for p in &refused.pin {
                if !PIN_POLICIES.contains(&p.as_str()) {
                    return Err(format!(
                        "[attestation.refuse.\"{slot}\"] pin: {p:?} is not one of {}",
                        PIN_POLICIES.join(", ")
                    ));
                }
            }
            for t in &refused.touch {
                if !TOUCH_POLICIES.contains(&t.as_str()) {
                    return Err(format!(
                        "[attestation.refuse.\"{slot}\"] touch: {t:?} is not one of {}",
                        TOUCH_POLICIES.join(", ")
                    ));
                }
            }
        }
        Ok(AttestationPolicy {
            require: settings.require_attestation,
            roots,
            roots_dir,
            refuse: settings
                .refuse
                .iter()
                .map(|(slot, r)| (slot.to_ascii_lowercase(), r.clone()))
                .collect(),
        })
    }

    /// The subjects of roots that are test roots (a virtual card's): they prove nothing.
    pub fn test_roots(&self) -> Vec<String> {
        self.roots
            .iter()
            .filter_map(|der| x509_parser::parse_x509_certificate(der).ok())
            .map(|(_, c)| c.subject().to_string())
            .filter(|s| s.contains("TEST ONLY"))
            .collect()
    }

    /// Checks the evidence an upload or request carries. Evidence found false (forged, for
    /// another key or card, spliced) is refused whether or not attestation is required:
    /// someone sent a false proof. Evidence that cannot be checked here (its vendor's root
    /// is not among the site's) is refused only where attestation is required; elsewhere
    /// the record is kept without it, as one from a card that cannot attest.
    pub fn check(
        &self,
        evidence: Option<&AttestationEvidence>,
        claimed: &Claimed<'_>,
        now: i64,
    ) -> Result<Option<Attested>, Refusal> {
        let Some(evidence) = evidence else {
            return if self.require {
                Err(Refusal {
                    code: "attestation-required",
                    message: "this site requires proof that the key was generated on the card, and none came with it: enroll with the station on a card that attests its keys (a YubiKey 4.3 or newer) so the card's proof travels with the certificate; a certificate file from elsewhere, or an imported key, carries none".into(),
                })
            } else {
                Ok(None)
            };
        };
        let invalid = |message: String| Refusal {
            code: "attestation-invalid",
            message: format!("the key's attestation is not valid: {message}"),
        };
        if self.roots.is_empty() {
            // Nothing to check it against: the record is kept without it rather than
            // marked attested on the station's word.
            return Ok(None);
        }
        let decode = |pem_text: &str, what: &str| {
            pem::parse(pem_text)
                .ok()
                .filter(|p| p.tag() == "CERTIFICATE")
                .map(pem::Pem::into_contents)
                .ok_or_else(|| invalid(format!("the {what} is not a PEM CERTIFICATE block")))
        };
        let ev = Evidence {
            attestation: decode(&evidence.attestation, "attestation certificate")?,
            intermediate: decode(&evidence.intermediate, "F9 attestation certificate")?,
        };
        let verified = match verify(
            &ev,
            &self.roots,
            &Expected {
                key_sha256: claimed.key_sha256,
                card_serial: claimed.card_serial,
                slot: claimed.slot,
                now,
            },
        ) {
            Ok(v) => v,
            Err(AttestationError(reason, Unverified::UnknownRoot)) if !self.require => {
                tracing::info!("an attestation was not checked and not kept: {reason}");
                return Ok(None);
            }
            Err(e) => return Err(invalid(e.0)),
        };
        self.allowed(&verified, claimed.slot)?;
        let evidence_json = serde_json::to_string(evidence).map_err(|e| invalid(e.to_string()))?;
        Ok(Some(Attested {
            summary: summary(&verified, now),
            evidence_json,
        }))
    }

    /// The site's rule on the attested PIN and touch policy for the slot.
    fn allowed(&self, v: &VerifiedAttestation, slot: Option<&str>) -> Result<(), Refusal> {
        let Some(slot) = slot.or(v.key.slot.as_deref()) else {
            return Ok(());
        };
        let Some(refused) = self.refuse.get(&slot.to_ascii_lowercase()) else {
            return Ok(());
        };
        if let Some(pin) = v.key.pin_policy.map(pin_policy_name) {
            if refused.pin.contains(&pin) {
                return Err(Refusal {
                    code: "attestation-policy",
                    message: format!(
                        "the key in slot {slot} has PIN policy \"{pin}\", which this site refuses for {slot}: the station generates a key with the card's own policy for its slot, so enroll into a slot whose policy the site allows (9a asks for the PIN once), or ask the administrator"
                    ),
                });
            }
        }
        if let Some(touch) = v.key.touch_policy.map(touch_policy_name) {
            if refused.touch.contains(&touch) {
                return Err(Refusal {
                    code: "attestation-policy",
                    message: format!(
                        "the key in slot {slot} has touch policy \"{touch}\", which this site refuses for {slot}: the station generates a key with the card's own policy for its slot, so enroll into a slot whose policy the site allows, or ask the administrator"
                    ),
                });
            }
        }
        Ok(())
    }
}

fn summary(v: &VerifiedAttestation, now: i64) -> KeyAttestation {
    v.key.summary(&v.root, now)
}

/// Every certificate in `dir` (PEM files may hold several). A missing directory is no
/// roots unless the settings named it.
fn read_roots(dir: &Path, named: bool) -> Result<Vec<Vec<u8>>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => return Ok(Vec::new()),
        Err(e) => {
            return Err(format!(
                "attestation roots directory {}: {e}",
                dir.display()
            ))
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let mut roots = Vec::new();
    for path in paths {
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let found: Vec<Vec<u8>> = if bytes.first() == Some(&0x30) {
            vec![bytes]
        } else {
            pem::parse_many(&bytes)
                .map_err(|e| format!("{}: not PEM or DER: {e}", path.display()))?
                .into_iter()
                .filter(|p| p.tag() == "CERTIFICATE")
                .map(pem::Pem::into_contents)
                .collect()
        };
        if found.is_empty() {
            return Err(format!("{}: holds no certificate", path.display()));
        }
        for der in found {
            if x509_parser::parse_x509_certificate(&der).is_err() {
                return Err(format!(
                    "{}: a certificate in it cannot be parsed",
                    path.display()
                ));
            }
            roots.push(der);
        }
    }
    Ok(roots)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use cardstation_pki::certificate::to_pem;
    use cardstation_virtual_card::attestation::{AttestedFacts, TestRoot};
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use p256::pkcs8::EncodePublicKey;
    use sha2::Digest;

    const NOW: i64 = 1_800_000_000;

    /// A key attested under `root` for slot 9e: its SPKI hash and the evidence.
    fn attested_under(root: &TestRoot) -> (String, AttestationEvidence) {
        let at = time::OffsetDateTime::from_unix_timestamp(NOW - 86_400).unwrap();
        let f9 = root.new_card_key(at).unwrap();
        let key = p256::SecretKey::random(&mut rand::rngs::OsRng).public_key();
        let facts = AttestedFacts {
            serial: 7,
            firmware: (5, 7, 1),
            pin_policy: 1,
            touch_policy: 1,
            form_factor: 3,
        };
        let att = f9
            .attest(0x9e, key.to_encoded_point(false).as_bytes(), &facts)
            .unwrap();
        let spki = key.to_public_key_der().unwrap();
        (
            hex::encode(sha2::Sha256::digest(spki.as_bytes())),
            AttestationEvidence {
                attestation: to_pem(&att),
                intermediate: to_pem(f9.certificate()),
            },
        )
    }

    fn policy(require: bool, roots: &[&TestRoot]) -> AttestationPolicy {
        AttestationPolicy {
            require,
            roots: roots.iter().map(|r| r.certificate().to_vec()).collect(),
            ..AttestationPolicy::default()
        }
    }

    fn claimed(key: &str) -> Claimed<'_> {
        Claimed {
            key_sha256: key,
            card_serial: Some(7),
            slot: Some("9e"),
        }
    }

    #[test]
    fn a_proof_from_another_vendors_root_is_kept_out_not_refused_unless_required() {
        let (site, other) = (
            TestRoot::generate("Site").unwrap(),
            TestRoot::generate("Other vendor").unwrap(),
        );
        let (key, ev) = attested_under(&other);
        // Optional: the record is kept, without an attestation.
        assert!(policy(false, &[&site])
            .check(Some(&ev), &claimed(&key), NOW)
            .unwrap()
            .is_none());
        // Required: refused, saying which root it needs.
        let r = policy(true, &[&site])
            .check(Some(&ev), &claimed(&key), NOW)
            .err()
            .unwrap();
        assert_eq!(r.code, "attestation-invalid");
        assert!(
            r.message
                .contains("not among this site's attestation roots"),
            "{}",
            r.message
        );
        // Trusted: kept with its facts.
        let a = policy(false, &[&site, &other])
            .check(Some(&ev), &claimed(&key), NOW)
            .unwrap()
            .unwrap();
        assert_eq!(a.summary.firmware.as_deref(), Some("5.7.1"));
        assert_eq!(a.summary.pin_policy.as_deref(), Some("never"));
    }

    #[test]
    fn a_false_proof_is_refused_even_where_attestation_is_optional() {
        let site = TestRoot::generate("Site").unwrap();
        let (_, ev) = attested_under(&site);
        let (other_key, _) = attested_under(&site);
        let r = policy(false, &[&site])
            .check(Some(&ev), &claimed(&other_key), NOW)
            .err()
            .unwrap();
        assert_eq!(r.code, "attestation-invalid");
        assert!(r.message.contains("another key"), "{}", r.message);
    }

    #[test]
    fn settings_are_checked_with_messages_that_say_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let settings = |text: &str| -> AttestationSettings { toml::from_str(text).unwrap() };
        let missing = AttestationPolicy::load(&settings("require_attestation = true"), dir.path())
            .unwrap_err();
        assert!(missing.contains("does not exist"), "{missing}");
        std::fs::create_dir(dir.path().join(DEFAULT_ROOTS_DIR)).unwrap();
        let empty = AttestationPolicy::load(&settings("require_attestation = true"), dir.path())
            .unwrap_err();
        assert!(empty.contains("holds no certificate"), "{empty}");
        // Slots in either case; policies by name.
        let p =
            AttestationPolicy::load(&settings("[refuse.\"9E\"]\npin = [\"never\"]"), dir.path())
                .unwrap();
        assert!(p.refuse.contains_key("9e"));
        let bad =
            AttestationPolicy::load(&settings("[refuse.\"9e\"]\npin = [\"nevr\"]"), dir.path())
                .unwrap_err();
        assert!(bad.contains("\"nevr\" is not one of"), "{bad}");
    }

    #[test]
    fn a_refused_policy_names_the_slot_and_the_policy() {
        let site = TestRoot::generate("Site").unwrap();
        let (key, ev) = attested_under(&site);
        let mut p = policy(false, &[&site]);
        p.refuse.insert(
            "9e".into(),
            RefusedPolicies {
                pin: vec!["never".into()],
                touch: vec![],
            },
        );
        let r = p.check(Some(&ev), &claimed(&key), NOW).err().unwrap();
        assert_eq!(r.code, "attestation-policy");
        assert!(r.message.contains("PIN policy \"never\""), "{}", r.message);
    }
}
