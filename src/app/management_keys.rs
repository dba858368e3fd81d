//! Which management key a card has and which it gets: the candidate policy (most
//! likely first, no wild guessing, so an enrolled card costs at most one failed
//! attempt) and the per-card key derived from the site secret (docs/DECISIONS.md).

use cardstation_card::Transport;
use cardstation_piv::session::ManagementKeyState;
use cardstation_piv::{Algorithm, Guid, ManagementKey, PivError, PivSession};

use crate::store::{Store, StoreError};

use super::site_keys::{CardIdentity, SiteSecret};

/// Why a card's management key could not be used or set. The workflows turn it into
/// their own errors (enrollment's, PIN care's), so this module names none of theirs.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Piv(#[from] PivError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the card does not accept the factory management key nor this site's key. It was set up elsewhere: enrol it at the station of the site that issued it, or reset it")]
    Unknown,
}

/// Try the keys this card may have, most likely first, without guessing wildly:
/// our derived key when this station knows the card, otherwise the factory key.
/// Returns whether the factory key was the one that worked.
pub(crate) fn authenticate_current<T: Transport>(
    session: &mut PivSession<T>,
    store: &Store,
    secret: &SiteSecret,
    mgmt: ManagementKeyState,
    identity: &CardIdentity,
    guid_hex: Option<&str>,
) -> Result<bool, KeyError> {
    let (alg, metadata_default) = (mgmt.algorithm, mgmt.is_default);
    let ours = secret
        .management_key(identity, alg)
        .map_err(PivError::from)?;
    let factory = ManagementKey::factory_default(alg);
    let known = match guid_hex {
        Some(g) => store.knows_guid(g)?,
        None => false,
    };
    let mut candidates: Vec<ManagementKey> = Vec::new();
    match (metadata_default, known) {
        (Some(true), _) => candidates.extend(factory),
        (Some(false), _) | (None, true) => {
            candidates.push(ours);
            candidates.extend(interrupted_keys(store, secret, identity, alg)?);
            if metadata_default.is_none() {
                candidates.extend(factory);
            }
        }
        (None, false) => {
            candidates.extend(factory);
            candidates.push(ours);
            candidates.extend(interrupted_keys(store, secret, identity, alg)?);
        }
    }
    for key in &candidates {
        match session.authenticate(key) {
            Ok(()) => return Ok(key.is_factory_default()),
            Err(PivError::ManagementKeyRejected) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(KeyError::Unknown)
}

/// Authenticate with the management key this station expects the card to have
/// (its derived key, the factory key on a blank card). Returns whether it was
/// the factory key.
pub fn authenticate_for_station<T: Transport>(
    session: &mut PivSession<T>,
    store: &Store,
    secret: &SiteSecret,
) -> Result<bool, KeyError> {
    let serial = session.serial()?;
    let chuid = session.read_chuid()?;
    let guid = chuid.and_then(|c| c.guid);
    let guid_hex = guid.map(|g| g.to_hex());
    let identity = CardIdentity { serial, guid };
    let mgmt = session.management_key_state()?;
    authenticate_current(session, store, secret, mgmt, &identity, guid_hex.as_deref())
}

/// Keys derived from GUIDs of interrupted enrollments of this card: an enrollment
/// cut off between writing the CHUID and finishing leaves one of these.
fn interrupted_keys(
    store: &Store,
    secret: &SiteSecret,
    identity: &CardIdentity,
    alg: Algorithm,
) -> Result<Vec<ManagementKey>, KeyError> {
    let mut keys = Vec::new();
    for guid in store.interrupted_guids(identity.serial)? {
        if let Some(guid) = Guid::parse_hex(&guid) {
            if Some(guid) != identity.guid {
                let id = CardIdentity {
                    serial: identity.serial,
                    guid: Some(guid),
                };
                keys.push(secret.management_key(&id, alg).map_err(PivError::from)?);
            }
        }
    }
    Ok(keys)
}

/// Give the card its own key: AES-256 where it accepts one, otherwise 3DES.
pub(crate) fn rotate_management_key<T: Transport>(
    session: &mut PivSession<T>,
    secret: &SiteSecret,
    identity: &CardIdentity,
) -> Result<Algorithm, KeyError> {
    let aes = secret
        .management_key(identity, Algorithm::Aes256)
        .map_err(PivError::from)?;
    match session.set_management_key(&aes) {
        Ok(()) => return Ok(Algorithm::Aes256),
        Err(PivError::Status { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let tdes = secret
        .management_key(identity, Algorithm::TripleDes)
        .map_err(PivError::from)?;
    session.set_management_key(&tdes)?;
    Ok(Algorithm::TripleDes)
}
