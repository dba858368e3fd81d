//! PIV key slots, key references and algorithm identifiers (SP 800-73-4 part 1, tables 4b and 5).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The four standard PIV key slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Slot {
    /// 9A PIV Authentication: PIN once per session.
    #[serde(rename = "9a")]
    Authentication,
    /// 9C Digital Signature: PIN before every use.
    #[serde(rename = "9c")]
    Signature,
    /// 9D Key Management.
    #[serde(rename = "9d")]
    KeyManagement,
    /// 9E Card Authentication: no PIN, what a keypad-less gateway uses at a tap.
    #[serde(rename = "9e")]
    CardAuthentication,
}

impl Slot {
    pub const ALL: [Slot; 4] = [
        Slot::Authentication,
        Slot::Signature,
        Slot::KeyManagement,
        Slot::CardAuthentication,
    ];

    /// Key reference used in GENERATE / GENERAL AUTHENTICATE.
    pub fn key_reference(self) -> u8 {
        match self {
            Slot::Authentication => 0x9A,
            Slot::Signature => 0x9C,
            Slot::KeyManagement => 0x9D,
            Slot::CardAuthentication => 0x9E,
        }
    }

    /// Tag of the certificate data object for this slot.
    pub fn certificate_object(self) -> u32 {
        match self {
            Slot::Authentication => 0x5FC105,
            Slot::Signature => 0x5FC10A,
            Slot::KeyManagement => 0x5FC10B,
            Slot::CardAuthentication => 0x5FC101,
        }
    }

    /// Whether using the key needs the PIN (the standard PIN policy of the slot).
    pub fn needs_pin(self) -> bool {
        !matches!(self, Slot::CardAuthentication)
    }

    pub fn name(self) -> &'static str {
        match self {
            Slot::Authentication => "PIV Authentication",
            Slot::Signature => "Digital Signature",
            Slot::KeyManagement => "Key Management",
            Slot::CardAuthentication => "Card Authentication",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Slot::Authentication => "9a",
            Slot::Signature => "9c",
            Slot::KeyManagement => "9d",
            Slot::CardAuthentication => "9e",
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.short(), self.name())
    }
}

impl FromStr for Slot {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().trim_start_matches("0x") {
            "9a" => Ok(Slot::Authentication),
            "9c" => Ok(Slot::Signature),
            "9d" => Ok(Slot::KeyManagement),
            "9e" => Ok(Slot::CardAuthentication),
            other => Err(format!(
                "unknown PIV slot \"{other}\"; use 9a, 9c, 9d or 9e"
            )),
        }
    }
}

/// Algorithm identifiers (SP 800-78-4 table 6-2 plus the AES management keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    TripleDes,
    Aes128,
    Aes192,
    Aes256,
    Rsa2048,
    EccP256,
    EccP384,
}

impl Algorithm {
    pub fn id(self) -> u8 {
        match self {
            Algorithm::TripleDes => 0x03,
            Algorithm::Aes128 => 0x08,
            Algorithm::Aes192 => 0x0A,
            Algorithm::Aes256 => 0x0C,
            Algorithm::Rsa2048 => 0x07,
            Algorithm::EccP256 => 0x11,
            Algorithm::EccP384 => 0x14,
        }
    }

    pub fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0x03 => Algorithm::TripleDes,
            0x08 => Algorithm::Aes128,
            0x0A => Algorithm::Aes192,
            0x0C => Algorithm::Aes256,
            0x07 => Algorithm::Rsa2048,
            0x11 => Algorithm::EccP256,
            0x14 => Algorithm::EccP384,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::TripleDes => "3DES",
            Algorithm::Aes128 => "AES-128",
            Algorithm::Aes192 => "AES-192",
            Algorithm::Aes256 => "AES-256",
            Algorithm::Rsa2048 => "RSA-2048",
            Algorithm::EccP256 => "ECC P-256",
            Algorithm::EccP384 => "ECC P-384",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// PIN-like references for VERIFY / CHANGE REFERENCE DATA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinReference {
    Pin,
    Puk,
}

impl PinReference {
    pub fn reference(self) -> u8 {
        match self {
            PinReference::Pin => 0x80,
            PinReference::Puk => 0x81,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            PinReference::Pin => "PIN",
            PinReference::Puk => "PUK",
        }
    }
}

/// Key reference of the card management (administration) key.
pub const MANAGEMENT_KEY_REFERENCE: u8 = 0x9B;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_parse_and_map() {
        assert_eq!("9E".parse::<Slot>().unwrap(), Slot::CardAuthentication);
        assert_eq!("0x9a".parse::<Slot>().unwrap(), Slot::Authentication);
        assert!("9b".parse::<Slot>().is_err());
        assert_eq!(Slot::CardAuthentication.certificate_object(), 0x5FC101);
        assert!(!Slot::CardAuthentication.needs_pin());
        assert!(Slot::Authentication.needs_pin());
        for slot in Slot::ALL {
            assert_eq!(slot.short().parse::<Slot>().unwrap(), slot);
        }
    }

    #[test]
    fn algorithm_ids_round_trip() {
        for alg in [
            Algorithm::TripleDes,
            Algorithm::Aes128,
            Algorithm::Aes192,
            Algorithm::Aes256,
            Algorithm::Rsa2048,
            Algorithm::EccP256,
            Algorithm::EccP384,
        ] {
            assert_eq!(Algorithm::from_id(alg.id()), Some(alg));
        }
        assert_eq!(Algorithm::from_id(0xEE), None);
    }
}
