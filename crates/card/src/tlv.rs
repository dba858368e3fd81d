//! BER-TLV as used by PIV (SP 800-73-4 part 2): one level at a time, raw values.
//!
//! Written here rather than taken from a crate on purpose: PIV callers need the raw
//! value bytes of one level (e.g. tag 53 is primitive yet holds TLVs), and the
//! general BER crates parse constructed values recursively, which on untrusted card
//! data means unbounded recursion depth. This parser never recurses and never
//! trusts a length.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlvError {
    #[error("TLV data ends inside a tag")]
    TruncatedTag,
    #[error("TLV data ends inside a length")]
    TruncatedLength,
    #[error("TLV tag {tag:X} announces {announced} bytes but only {available} follow")]
    TruncatedValue {
        tag: u32,
        announced: usize,
        available: usize,
    },
    #[error("TLV tag longer than 3 bytes")]
    TagTooLong,
    #[error("TLV length field longer than 3 bytes")]
    LengthTooLong,
    #[error("TLV data is empty where an object was expected")]
    Empty,
    #[error("expected TLV tag {expected:X}, found {found:X}")]
    UnexpectedTag { expected: u32, found: u32 },
}

/// One data object: tag (up to 3 bytes, as written, e.g. 0x5FC102) and raw value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u32,
    pub value: &'a [u8],
}

/// Parse one TLV at the start of `input`; return it and the remaining bytes.
pub fn parse_one(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), TlvError> {
    let (&first, mut rest) = input.split_first().ok_or(TlvError::Empty)?;
    let mut tag = u32::from(first);
    if first & 0x1F == 0x1F {
        // Multi-byte tag: subsequent bytes while bit 8 is set, at most 3 bytes in all.
        let mut n = 1;
        loop {
            let (&b, r) = rest.split_first().ok_or(TlvError::TruncatedTag)?;
            rest = r;
            n += 1;
            if n > 3 {
                return Err(TlvError::TagTooLong);
            }
            tag = tag << 8 | u32::from(b);
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let (&len0, r) = rest.split_first().ok_or(TlvError::TruncatedLength)?;
    rest = r;
    let len = if len0 < 0x80 {
        usize::from(len0)
    } else {
        let n = usize::from(len0 & 0x7F);
        if n == 0 || n > 3 {
            return Err(TlvError::LengthTooLong);
        }
        let bytes = rest.get(..n).ok_or(TlvError::TruncatedLength)?;
        rest = &rest[n..];
        bytes
            .iter()
            .fold(0usize, |acc, &b| acc << 8 | usize::from(b))
    };
    if rest.len() < len {
        return Err(TlvError::TruncatedValue {
            tag,
            announced: len,
            available: rest.len(),
        });
    }
    let (value, rest) = rest.split_at(len);
    Ok((Tlv { tag, value }, rest))
}

/// Parse a sequence of TLVs that must fill `input` exactly.
pub fn parse_all(mut input: &[u8]) -> Result<Vec<Tlv<'_>>, TlvError> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let (tlv, rest) = parse_one(input)?;
        out.push(tlv);
        input = rest;
    }
    Ok(out)
}

/// The value of the first object with `tag` in a sequence.
pub fn find(input: &[u8], tag: u32) -> Result<Option<&[u8]>, TlvError> {
    Ok(parse_all(input)?
        .into_iter()
        .find(|t| t.tag == tag)
        .map(|t| t.value))
}

/// Unwrap a single outer object with the expected tag (e.g. 53 around a GET DATA reply).
pub fn expect_outer(input: &[u8], tag: u32) -> Result<&[u8], TlvError> {
    let (tlv, _trailing) = parse_one(input)?;
    if tlv.tag != tag {
        return Err(TlvError::UnexpectedTag {
            expected: tag,
            found: tlv.tag,
        });
    }
    Ok(tlv.value)
}

/// Encode one TLV with a minimal BER length.
pub fn encode(tag: u32, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 7);
    for shift in [16, 8] {
        let b = (tag >> shift) as u8;
        if b != 0 || (shift == 8 && tag > 0xFFFF) {
            out.push(b);
        }
    }
    out.push(tag as u8);
    encode_length(value.len(), &mut out);
    out.extend_from_slice(value);
    out
}

fn encode_length(len: usize, out: &mut Vec<u8>) {
    match len {
        0..=0x7F => out.push(len as u8),
        0x80..=0xFF => out.extend_from_slice(&[0x81, len as u8]),
        0x100..=0xFFFF => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
        _ => out.extend_from_slice(&[0x83, (len >> 16) as u8, (len >> 8) as u8, len as u8]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_short_and_long_forms() {
        for len in [0usize, 1, 127, 128, 255, 256, 3000, 70_000] {
            let value = vec![0xA5; len];
            let enc = encode(0x53, &value);
            let (tlv, rest) = parse_one(&enc).unwrap();
            assert_eq!(tlv.tag, 0x53);
            assert_eq!(tlv.value.len(), len);
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn multi_byte_tags() {
        let enc = encode(0x5FC102, &[1, 2]);
        assert_eq!(enc, [0x5F, 0xC1, 0x02, 0x02, 1, 2]);
        assert_eq!(parse_one(&enc).unwrap().0.tag, 0x5FC102);
        let enc = encode(0x7F49, &[]);
        assert_eq!(enc, [0x7F, 0x49, 0x00]);
        assert_eq!(parse_one(&enc).unwrap().0.tag, 0x7F49);
    }

    #[test]
    fn sequences_and_find() {
        let mut data = encode(0x70, &[1, 2, 3]);
        data.extend(encode(0x71, &[0]));
        data.extend(encode(0xFE, &[]));
        let all = parse_all(&data).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(find(&data, 0x71).unwrap(), Some(&[0u8][..]));
        assert_eq!(find(&data, 0x72).unwrap(), None);
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(parse_one(&[]), Err(TlvError::Empty));
        assert_eq!(parse_one(&[0x5F]), Err(TlvError::TruncatedTag));
        assert_eq!(parse_one(&[0x5F, 0xC1]), Err(TlvError::TruncatedTag));
        assert_eq!(
            parse_one(&[0x5F, 0xC1, 0xC1, 0x01]),
            Err(TlvError::TagTooLong)
        );
        assert_eq!(parse_one(&[0x53]), Err(TlvError::TruncatedLength));
        assert_eq!(
            parse_one(&[0x53, 0x82, 0x01]),
            Err(TlvError::TruncatedLength)
        );
        assert_eq!(parse_one(&[0x53, 0x80]), Err(TlvError::LengthTooLong));
        assert_eq!(
            parse_one(&[0x53, 0x85, 1, 1, 1, 1, 1]),
            Err(TlvError::LengthTooLong)
        );
        assert_eq!(
            parse_one(&[0x53, 0x05, 1, 2]),
            Err(TlvError::TruncatedValue {
                tag: 0x53,
                announced: 5,
                available: 2
            })
        );
        // Oversized length claims never allocate or panic.
        assert!(parse_one(&[0x53, 0x83, 0xFF, 0xFF, 0xFF]).is_err());
        assert!(parse_all(&[0x70, 0x01, 0xAA, 0x71]).is_err());
    }

    #[test]
    fn every_prefix_and_byte_flip_is_handled() {
        let mut data = encode(0x53, &encode(0x70, &[7; 300]));
        data.extend(encode(0x5FC102, &[9; 10]));
        for n in 0..data.len() {
            let _ = parse_all(&data[..n]);
        }
        for i in 0..data.len().min(64) {
            let mut flipped = data.clone();
            flipped[i] ^= 0xFF;
            let _ = parse_all(&flipped);
        }
    }
}
