//! Small helpers shared by several layers.

use serde::Serializer;

/// Serialize bytes as upper-case hex (ATRs, GUIDs, fingerprints in JSON output).
pub fn serialize_hex<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode_upper(bytes))
}

/// Serialize optional bytes as upper-case hex or null.
pub fn serialize_opt_hex<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(b) => s.serialize_str(&hex::encode_upper(b)),
        None => s.serialize_none(),
    }
}

/// Format a 16-byte GUID the way PIV middleware shows it (hex, no dashes).
pub fn guid_hex(guid: &[u8]) -> String {
    hex::encode_upper(guid)
}
