//! Answer-to-reset decoding (ISO/IEC 7816-3 and the historical bytes of 7816-4).

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AtrError {
    #[error("ATR is empty")]
    Empty,
    #[error("ATR starts with {0:02X}, which is neither direct (3B) nor inverse (3F) convention")]
    BadConvention(u8),
    #[error("ATR is truncated: {0}")]
    Truncated(&'static str),
    #[error("ATR checksum (TCK) is wrong")]
    BadChecksum,
    #[error("ATR is longer than 33 bytes")]
    TooLong,
}

/// A decoded ATR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Atr {
    pub raw: Vec<u8>,
    /// Transmission protocols offered (0 = T=0, 1 = T=1, 15 = global parameters).
    pub protocols: Vec<u8>,
    pub historical: Vec<u8>,
    /// Compact-TLV objects of the historical bytes (category 0x80 only): (tag, value).
    pub compact_tlv: Vec<(u8, Vec<u8>)>,
}

impl Atr {
    pub fn parse(raw: &[u8]) -> Result<Atr, AtrError> {
        let ts = *raw.first().ok_or(AtrError::Empty)?;
        if ts != 0x3B && ts != 0x3F {
            return Err(AtrError::BadConvention(ts));
        }
        if raw.len() > 33 {
            return Err(AtrError::TooLong);
        }
        let t0 = *raw.get(1).ok_or(AtrError::Truncated("no format byte T0"))?;
        let historical_len = usize::from(t0 & 0x0F);
        let mut y = t0 >> 4;
        let mut pos = 2;
        let mut protocols = Vec::new();
        loop {
            // TA, TB, TC are present when bits 5, 6, 7 of Y are set; TD when bit 8 is.
            for bit in [0x1, 0x2, 0x4] {
                if y & bit != 0 {
                    pos += 1;
                }
            }
            if y & 0x8 == 0 {
                break;
            }
            let td = *raw
                .get(pos)
                .ok_or(AtrError::Truncated("interface bytes run past the end"))?;
            pos += 1;
            protocols.push(td & 0x0F);
            y = td >> 4;
        }
        if pos > raw.len() {
            return Err(AtrError::Truncated("interface bytes run past the end"));
        }
        let hist_end = pos + historical_len;
        let historical = raw
            .get(pos..hist_end)
            .ok_or(AtrError::Truncated("historical bytes are missing"))?
            .to_vec();
        // TCK is present unless only T=0 is offered.
        let needs_tck = protocols.iter().any(|&p| p != 0);
        if needs_tck {
            if raw.len() < hist_end + 1 {
                return Err(AtrError::Truncated("checksum byte TCK is missing"));
            }
            let xor = raw[1..=hist_end].iter().fold(0u8, |acc, b| acc ^ b);
            if xor != 0 {
                return Err(AtrError::BadChecksum);
            }
        }
        if protocols.is_empty() {
            protocols.push(0);
        }
        let compact_tlv = parse_compact_tlv(&historical);
        Ok(Atr {
            raw: raw.to_vec(),
            protocols,
            historical,
            compact_tlv,
        })
    }

    /// Whether the card advertises extended Lc/Le (card capabilities, third software function byte, bit 7).
    pub fn extended_length(&self) -> bool {
        self.compact_tlv
            .iter()
            .find(|(tag, _)| *tag == 0x7)
            .and_then(|(_, v)| v.get(2))
            .is_some_and(|b| b & 0x40 != 0)
    }

    /// Whether the card advertises command chaining (card capabilities, third byte, bit 8).
    pub fn command_chaining(&self) -> bool {
        self.compact_tlv
            .iter()
            .find(|(tag, _)| *tag == 0x7)
            .and_then(|(_, v)| v.get(2))
            .is_some_and(|b| b & 0x80 != 0)
    }

    /// Printable text in the historical bytes (many cards put a product name there).
    pub fn historical_text(&self) -> Option<String> {
        let text: String = self
            .historical
            .iter()
            .filter(|b| b.is_ascii_graphic() || **b == b' ')
            .map(|&b| b as char)
            .collect();
        (text.len() >= 4).then_some(text)
    }

    /// Protocols as people write them, e.g. "T=1".
    pub fn protocol_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .protocols
            .iter()
            .filter(|&&p| p != 15)
            .map(|p| format!("T={p}"))
            .collect();
        names.dedup();
        names
    }
}

fn parse_compact_tlv(historical: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    if historical.first() != Some(&0x80) {
        return out;
    }
    let mut rest = &historical[1..];
    while let Some((&head, tail)) = rest.split_first() {
        let tag = head >> 4;
        let len = usize::from(head & 0x0F);
        let Some(value) = tail.get(..len) else { break };
        out.push((tag, value.to_vec()));
        rest = &tail[len..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn yubikey_atr_decodes() {
        let atr = Atr::parse(&h(
            "3B FD 13 00 00 81 31 FE 15 80 73 C0 21 C0 57 59 75 62 69 4B 65 79 40",
        ))
        .unwrap();
        assert_eq!(atr.protocol_names(), ["T=1"]);
        assert!(atr.extended_length());
        assert!(atr.command_chaining());
        assert_eq!(atr.historical_text().as_deref(), Some("s!WYubiKey"));
    }

    #[test]
    fn t0_only_atr_needs_no_checksum() {
        let atr = Atr::parse(&h("3B 02 14 50")).unwrap();
        assert_eq!(atr.protocols, [0]);
        assert_eq!(atr.historical, [0x14, 0x50]);
        assert!(!atr.extended_length());
    }

    #[test]
    fn malformed_atrs_are_errors() {
        assert_eq!(Atr::parse(&[]), Err(AtrError::Empty));
        assert_eq!(
            Atr::parse(&[0x12, 0x00]),
            Err(AtrError::BadConvention(0x12))
        );
        assert!(matches!(Atr::parse(&[0x3B]), Err(AtrError::Truncated(_))));
        // TD1 announces more interface bytes than exist.
        assert!(matches!(
            Atr::parse(&h("3B 80 81")),
            Err(AtrError::Truncated(_))
        ));
        // Historical bytes announced but missing.
        assert!(matches!(
            Atr::parse(&h("3B 05 01")),
            Err(AtrError::Truncated(_))
        ));
        // Flip one byte of the YubiKey ATR: checksum fails.
        let mut bad = h("3B FD 13 00 00 81 31 FE 15 80 73 C0 21 C0 57 59 75 62 69 4B 65 79 40");
        bad[12] ^= 1;
        assert_eq!(Atr::parse(&bad), Err(AtrError::BadChecksum));
        assert_eq!(Atr::parse(&[0x3B; 40]), Err(AtrError::TooLong));
    }

    #[test]
    fn every_prefix_of_a_valid_atr_is_handled_without_panic() {
        let full = h("3B FD 13 00 00 81 31 FE 15 80 73 C0 21 C0 57 59 75 62 69 4B 65 79 40");
        for n in 0..full.len() {
            let _ = Atr::parse(&full[..n]);
        }
    }
}
