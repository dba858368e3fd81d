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
    pin_policy_name, touch_policy_name, verify, Evidence, Expected, VerifiedAttestation,
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
            return Err(format!(
                "[attestation] require_attestation = true needs attestation roots: put the vendor's PIV attestation root certificates (e.g. Yubico's) in {}",
                roots_dir.display()
            ));
        }
        for (slot, refused) in &settings.refuse {
            if !cardstation_protocol::messages::is_piv_slot(slot) {
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

    /// Checks the evidence an upload or request carries. Evidence that does not verify is
    /// refused whether or not attestation is required: someone sent a false proof.
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
                    message: "this site requires proof that the key was generated on the card, and none came with it: enroll on a card that attests its keys (a YubiKey 4.3 or newer) with a key it generated; an imported key cannot be attested".into(),
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
        let verified = verify(
            &ev,
            &self.roots,
            &Expected {
                key_sha256: claimed.key_sha256,
                card_serial: claimed.card_serial,
                slot: claimed.slot,
                now,
            },
        )
        .map_err(|e| invalid(e.0))?;
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
                        "the key in slot {slot} has PIN policy \"{pin}\", which this site refuses for {slot}: generate the key with another PIN policy"
                    ),
                });
            }
        }
        if let Some(touch) = v.key.touch_policy.map(touch_policy_name) {
            if refused.touch.contains(&touch) {
                return Err(Refusal {
                    code: "attestation-policy",
                    message: format!(
                        "the key in slot {slot} has touch policy \"{touch}\", which this site refuses for {slot}: generate the key with another touch policy"
                    ),
                });
            }
        }
        Ok(())
    }
}

fn summary(v: &VerifiedAttestation, now: i64) -> KeyAttestation {
    KeyAttestation {
        card_serial: v.key.card_serial,
        firmware: v.key.firmware.map(|(a, b, c)| format!("{a}.{b}.{c}")),
        pin_policy: v.key.pin_policy.map(pin_policy_name),
        touch_policy: v.key.touch_policy.map(touch_policy_name),
        form_factor: v.key.form_factor.map(|f| f.describe()),
        root: v.root.clone(),
        verified_at: now,
    }
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
