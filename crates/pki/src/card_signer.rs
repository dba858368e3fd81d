//! rcgen signing through the card: the certificate's private key never leaves the chip.

use std::cell::RefCell;

use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::PublicKey;
use rcgen::{PublicKeyData, SignatureAlgorithm, SigningKey, PKCS_ECDSA_P256_SHA256};
use sha2::{Digest, Sha256};

use cardstation_card::Transport;
use cardstation_piv::{PivError, PivSession, Slot};

use super::certificate::verify_prehash;

/// Signs with the P-256 key in `slot` of the card behind `session`.
pub struct CardSigner<'s, T: Transport> {
    session: RefCell<&'s mut PivSession<T>>,
    slot: Slot,
    public_key: PublicKey,
    point: Vec<u8>,
    /// rcgen only sees "remote key error"; the real reason is kept here.
    failure: RefCell<Option<PivError>>,
}

impl<'s, T: Transport> CardSigner<'s, T> {
    pub fn new(session: &'s mut PivSession<T>, slot: Slot, public_key: PublicKey) -> Self {
        CardSigner {
            session: RefCell::new(session),
            slot,
            point: public_key.to_encoded_point(false).as_bytes().to_vec(),
            public_key,
            failure: RefCell::new(None),
        }
    }

    /// The card error behind a failed signature, if any.
    pub fn take_failure(&self) -> Option<PivError> {
        self.failure.borrow_mut().take()
    }
}

impl<T: Transport> PublicKeyData for CardSigner<'_, T> {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

impl<T: Transport> SigningKey for CardSigner<'_, T> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let digest: [u8; 32] = Sha256::digest(msg).into();
        let result = self.session.borrow_mut().sign_p256(self.slot, &digest);
        match result {
            // A card that answers with a signature that does not verify is caught here,
            // before anything is written.
            Ok(sig) if verify_prehash(&self.public_key, &digest, &sig) => {
                Ok(sig.to_der().as_bytes().to_vec())
            }
            Ok(_) => {
                *self.failure.borrow_mut() = Some(PivError::malformed(
                    "signing the certificate",
                    "the card's signature does not verify with its own public key",
                ));
                Err(rcgen::Error::RemoteKeyError)
            }
            Err(e) => {
                *self.failure.borrow_mut() = Some(e);
                Err(rcgen::Error::RemoteKeyError)
            }
        }
    }
}
