//! The card management key (9B) and the block cipher operations of mutual authentication.

use std::fmt;

use cipher::generic_array::GenericArray;
use cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use zeroize::Zeroizing;

use super::slot::Algorithm;

/// The factory default management key of PIV cards (3DES; AES-192 on YubiKey 5.7+, same bytes).
pub const DEFAULT_MANAGEMENT_KEY: [u8; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("a {alg} management key has {expected} bytes, not {got}")]
    WrongLength {
        alg: Algorithm,
        expected: usize,
        got: usize,
    },
    #[error("{0} is not a management key algorithm")]
    NotSymmetric(Algorithm),
}

/// A management key. The bytes are zeroized on drop and never printed.
#[derive(Clone)]
pub struct ManagementKey {
    algorithm: Algorithm,
    bytes: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for ManagementKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManagementKey({}, <redacted>)", self.algorithm)
    }
}

pub fn key_length(alg: Algorithm) -> Result<usize, KeyError> {
    match alg {
        Algorithm::TripleDes | Algorithm::Aes192 => Ok(24),
        Algorithm::Aes128 => Ok(16),
        Algorithm::Aes256 => Ok(32),
        other => Err(KeyError::NotSymmetric(other)),
    }
}

pub fn block_length(alg: Algorithm) -> Result<usize, KeyError> {
    match alg {
        Algorithm::TripleDes => Ok(8),
        Algorithm::Aes128 | Algorithm::Aes192 | Algorithm::Aes256 => Ok(16),
        other => Err(KeyError::NotSymmetric(other)),
    }
}

impl ManagementKey {
    pub fn new(algorithm: Algorithm, bytes: &[u8]) -> Result<Self, KeyError> {
        let expected = key_length(algorithm)?;
        if bytes.len() != expected {
            return Err(KeyError::WrongLength {
                alg: algorithm,
                expected,
                got: bytes.len(),
            });
        }
        Ok(ManagementKey {
            algorithm,
            bytes: Zeroizing::new(bytes.to_vec()),
        })
    }

    /// The factory default key for a card whose management key uses `algorithm`
    /// (3DES, or AES-192 on newer YubiKeys; other algorithms have no default).
    pub fn factory_default(algorithm: Algorithm) -> Option<Self> {
        matches!(algorithm, Algorithm::TripleDes | Algorithm::Aes192)
            .then(|| ManagementKey::new(algorithm, &DEFAULT_MANAGEMENT_KEY).ok())
            .flatten()
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn is_factory_default(&self) -> bool {
        self.bytes.as_slice() == DEFAULT_MANAGEMENT_KEY
    }

    pub fn block_length(&self) -> usize {
        // Only symmetric algorithms can be constructed.
        block_length(self.algorithm).unwrap_or(16)
    }

    /// Encrypt one block (ECB), as the card does with the host's challenge.
    pub fn encrypt_block(&self, block: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.apply(block, true)
    }

    /// Decrypt one block (ECB), to answer the card's witness.
    pub fn decrypt_block(&self, block: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.apply(block, false)
    }

    fn apply(&self, block: &[u8], encrypt: bool) -> Result<Vec<u8>, KeyError> {
        let expected = self.block_length();
        if block.len() != expected {
            return Err(KeyError::WrongLength {
                alg: self.algorithm,
                expected,
                got: block.len(),
            });
        }
        let mut buf = block.to_vec();
        let wrong_key = || KeyError::WrongLength {
            alg: self.algorithm,
            expected: key_length(self.algorithm).unwrap_or(0),
            got: self.bytes.len(),
        };
        macro_rules! run {
            ($cipher:ty) => {{
                let c = <$cipher>::new_from_slice(&self.bytes).map_err(|_| wrong_key())?;
                let b = GenericArray::from_mut_slice(&mut buf);
                if encrypt {
                    c.encrypt_block(b)
                } else {
                    c.decrypt_block(b)
                }
            }};
        }
        match self.algorithm {
            Algorithm::TripleDes => run!(des::TdesEde3),
            Algorithm::Aes128 => run!(aes::Aes128),
            Algorithm::Aes192 => run!(aes::Aes192),
            Algorithm::Aes256 => run!(aes::Aes256),
            other => return Err(KeyError::NotSymmetric(other)),
        }
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_checked() {
        assert!(ManagementKey::new(Algorithm::Aes256, &[0; 24]).is_err());
        assert!(ManagementKey::new(Algorithm::EccP256, &[0; 32]).is_err());
        let k = ManagementKey::new(Algorithm::Aes128, &[7; 16]).unwrap();
        assert!(k.encrypt_block(&[0; 8]).is_err());
    }

    #[test]
    fn blocks_round_trip_for_every_algorithm() {
        for (alg, len) in [
            (Algorithm::TripleDes, 24),
            (Algorithm::Aes128, 16),
            (Algorithm::Aes192, 24),
            (Algorithm::Aes256, 32),
        ] {
            let key = ManagementKey::new(alg, &vec![0x42; len]).unwrap();
            let block = vec![0x5A; key.block_length()];
            let enc = key.encrypt_block(&block).unwrap();
            assert_ne!(enc, block);
            assert_eq!(key.decrypt_block(&enc).unwrap(), block);
        }
    }

    #[test]
    fn known_3des_vector() {
        // 3DES-EDE with K1=K2=K3 degenerates to single DES: FIPS 81 sample
        // (key 0123456789ABCDEF, "Now is t" -> 3FA40E8A984D4815).
        let k = hex::decode("0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF").unwrap();
        let key = ManagementKey::new(Algorithm::TripleDes, &k).unwrap();
        assert_eq!(
            hex::encode_upper(key.encrypt_block(b"Now is t").unwrap()),
            "3FA40E8A984D4815"
        );
    }

    #[test]
    fn debug_output_hides_the_key() {
        let key = ManagementKey::factory_default(Algorithm::TripleDes).unwrap();
        assert!(key.is_factory_default());
        assert_eq!(format!("{key:?}"), "ManagementKey(3DES, <redacted>)");
    }
}
