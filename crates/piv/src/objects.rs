//! PIV data objects: CHUID, discovery object, certificate containers (SP 800-73-4 part 1, 3.1–3.3).

use serde::Serialize;

use cardstation_card::tlv::{self, TlvError};

pub const CHUID: u32 = 0x5FC102;
pub const DISCOVERY: u32 = 0x7E;

/// Placeholder FASC-N (agency code 9999, as written by common PIV tools for
/// non-federal cards). Its contents are not used for identity here; the GUID is.
const PLACEHOLDER_FASCN: [u8; 25] = [
    0xD4, 0xE7, 0x39, 0xDA, 0x73, 0x9C, 0xED, 0x39, 0xCE, 0x73, 0x9D, 0x83, 0x68, 0x58, 0x21, 0x08,
    0x42, 0x10, 0x84, 0x21, 0xC8, 0x42, 0x10, 0xC3, 0xEB,
];

/// A card's CHUID GUID (16 bytes). Middleware keys certificate caches on it, and the
/// station derives the card's management key from it. Shown as 32 upper-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guid([u8; 16]);

impl Guid {
    pub const LEN: usize = 16;

    /// A new random GUID from the OS generator.
    pub fn random() -> Self {
        use rand::RngCore;
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Guid(bytes)
    }

    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Guid(bytes)
    }

    /// The GUID in `bytes`, if they are a GUID (exactly 16 bytes).
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 16]>::try_from(bytes).ok().map(Guid)
    }

    /// Parse the hex form (as stored and shown); `None` if it is not 32 hex digits.
    pub fn parse_hex(text: &str) -> Option<Self> {
        hex::decode(text).ok().and_then(|b| Guid::from_slice(&b))
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode_upper(self.0)
    }
}

impl std::fmt::Display for Guid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::fmt::Debug for Guid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Guid({})", self.to_hex())
    }
}

impl Serialize for Guid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chuid {
    /// `None` when the card's CHUID has no GUID field, or one that is not 16 bytes.
    pub guid: Option<Guid>,
    pub expiration: Option<String>,
    #[serde(skip)]
    pub fascn: Vec<u8>,
}

impl Chuid {
    /// A CHUID with a new GUID; middleware keys its certificate caches on this GUID.
    pub fn new(guid: Guid) -> Self {
        Chuid {
            guid: Some(guid),
            expiration: Some("20301231".into()),
            fascn: PLACEHOLDER_FASCN.to_vec(),
        }
    }

    pub fn parse(content: &[u8]) -> Result<Self, TlvError> {
        let mut guid = None;
        let mut expiration = None;
        let mut fascn = Vec::new();
        for t in tlv::parse_all(content)? {
            match t.tag {
                0x30 => fascn = t.value.to_vec(),
                0x34 => guid = Guid::from_slice(t.value),
                0x35 => expiration = Some(String::from_utf8_lossy(t.value).into_owned()),
                _ => {}
            }
        }
        Ok(Chuid {
            guid,
            expiration,
            fascn,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = tlv::encode(0x30, &self.fascn);
        out.extend(tlv::encode(
            0x34,
            self.guid.as_ref().map(|g| &g.as_bytes()[..]).unwrap_or(&[]),
        ));
        if let Some(exp) = &self.expiration {
            out.extend(tlv::encode(0x35, exp.as_bytes()));
        }
        // Issuer signature (empty: this station does not sign CHUIDs) and error detection code.
        out.extend(tlv::encode(0x3E, &[]));
        out.extend(tlv::encode(0xFE, &[]));
        out
    }
}

/// Certificate container of a key slot: 70 certificate, 71 CertInfo, FE LRC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateObject {
    pub der: Vec<u8>,
    /// CertInfo byte: 0 = uncompressed X.509.
    pub cert_info: u8,
}

impl CertificateObject {
    pub fn new(der: Vec<u8>) -> Self {
        CertificateObject { der, cert_info: 0 }
    }

    pub fn parse(content: &[u8]) -> Result<Self, TlvError> {
        let cert = tlv::find(content, 0x70)?.ok_or(TlvError::Empty)?;
        let cert_info = tlv::find(content, 0x71)?
            .and_then(|v| v.first().copied())
            .unwrap_or(0);
        Ok(CertificateObject {
            der: cert.to_vec(),
            cert_info,
        })
    }

    pub fn is_compressed(&self) -> bool {
        self.cert_info & 0x01 != 0
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = tlv::encode(0x70, &self.der);
        out.extend(tlv::encode(0x71, &[self.cert_info]));
        out.extend(tlv::encode(0xFE, &[]));
        out
    }
}

/// The discovery object: which application, and the PIN usage policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Discovery {
    #[serde(serialize_with = "cardstation_card::hex_serde::serialize_hex")]
    pub aid: Vec<u8>,
    #[serde(serialize_with = "cardstation_card::hex_serde::serialize_hex")]
    pub pin_usage_policy: Vec<u8>,
}

impl Discovery {
    /// Parse the content of tag 7E (the caller has unwrapped the 7E itself).
    pub fn parse(content: &[u8]) -> Result<Self, TlvError> {
        Ok(Discovery {
            aid: tlv::find(content, 0x4F)?.unwrap_or_default().to_vec(),
            pin_usage_policy: tlv::find(content, 0x5F2F)?.unwrap_or_default().to_vec(),
        })
    }
}

/// The full PIV application identifier.
pub const PIV_AID: [u8; 11] = [
    0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chuid_round_trips() {
        let c = Chuid::new(Guid::from_bytes([7; 16]));
        let parsed = Chuid::parse(&c.encode()).unwrap();
        assert_eq!(parsed, c);
    }

    #[test]
    fn certificate_object_round_trips_and_rejects_garbage() {
        let obj = CertificateObject::new(vec![0x30, 0x03, 1, 2, 3]);
        let parsed = CertificateObject::parse(&obj.encode()).unwrap();
        assert_eq!(parsed, obj);
        assert!(!parsed.is_compressed());
        assert!(CertificateObject::parse(&[0x71, 0x01, 0x00]).is_err());
        assert!(CertificateObject::parse(&[0x70, 0x05, 1]).is_err());
    }

    #[test]
    fn discovery_parses() {
        let content = hex::decode("4F0BA0000003080000100001005F2F024000").unwrap();
        let d = Discovery::parse(&content).unwrap();
        assert_eq!(d.aid, PIV_AID);
        assert_eq!(d.pin_usage_policy, [0x40, 0x00]);
    }
}
