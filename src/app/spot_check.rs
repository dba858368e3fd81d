//! The spot check at the desk: the gateway's own check (crate `cardstation-verifier`)
//! judged by this station's policy (its cached trust bundle and issuing CA) and recorded.

pub use cardstation_verifier::*;

use crate::store::AuditAction;
use cardstation_card::Transport;
use cardstation_piv::{Pin, Slot};
use cardstation_pki::certificate;

/// Write the check to the audit trail (no secrets: identities, verdict, reasons).
pub fn record(
    store: &crate::store::Store,
    operator: &str,
    station_id: &str,
    check: &SpotCheck,
) -> Result<(), crate::store::StoreError> {
    let reasons: Vec<&str> = check.failures().map(|f| f.message.as_str()).collect();
    store.audit(
        operator,
        station_id,
        AuditAction::SpotCheck,
        check.fingerprint.as_deref().unwrap_or("(no certificate)"),
        match check.verdict {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::TrustUnknown => "trust-unknown",
        },
        &serde_json::json!({
            "reader": check.reader, "slot": check.slot.short(), "subject": check.subject,
            "reasons": reasons, "bundle_version": check.bundle_version,
        }),
    )
}

/// Run a spot check with the station's own policy: its cached trust bundle
/// (verified again with the pinned key) and its configured issuing CA; record it.
pub fn check_with_station<T: Transport>(
    transport: T,
    station: &super::station::Station,
    slot: Slot,
    pin: Option<&Pin>,
    book: &mut ChallengeBook,
) -> Result<(SpotCheck, Option<CapturedExchange>), String> {
    use crate::console::trust;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // A damaged bundle is judged as none at all (TRUST UNKNOWN, never PASS), and says so.
    let mut damaged = None;
    let held = match trust::load_key(station.config.console.bundle_key.as_deref()) {
        Ok(key) => match trust::held(&station.store, &key, now) {
            Ok(held) => held,
            Err(e @ trust::TrustError::Damaged(_)) => {
                damaged = Some(e.to_string());
                None
            }
            Err(e) => return Err(e.to_string()),
        },
        Err(trust::TrustError::NoKey) => None,
        Err(e) => return Err(e.to_string()),
    };
    let issuing_ca = match &station.config.verify.issuing_ca {
        Some(path) => {
            let bytes = std::fs::read(path)
                .map_err(|e| format!("[verify] issuing_ca {}: {e}", path.display()))?;
            Some(
                certificate::from_pem_or_der(&bytes)
                    .map_err(|e| format!("[verify] issuing_ca: {e}"))?,
            )
        }
        None => None,
    };
    let policy = Policy {
        bundle: held.as_ref().map(|h| (&h.view.lists, &h.status)),
        issuing_ca: issuing_ca.as_deref(),
        now,
        require_attestation: station.config.verify.require_attestation,
    };
    let (mut check, captured) = spot_check(transport, slot, pin, &policy, book);
    if let Some(message) = damaged {
        for f in check
            .findings
            .iter_mut()
            .filter(|f| f.code == "no-trust-bundle")
        {
            f.code = "trust-bundle-damaged";
            f.message.clone_from(&message);
        }
    }
    record(
        &station.store,
        &station.operator,
        &station.station_id,
        &check,
    )
    .map_err(|e| {
        format!("the spot check could not be written to the audit trail, so it does not count: {e}")
    })?;
    Ok((check, captured))
}
