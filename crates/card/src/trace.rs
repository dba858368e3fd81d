//! APDU trace for diagnostics. Secret command data (PIN, PUK, management key)
//! is replaced by its length before it is stored or logged.

use std::fmt;
use std::time::Duration;

use super::apdu::{Command, Response, Sensitivity};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TraceEntry {
    /// CLA INS P1 P2 in hex.
    pub header: String,
    /// Decoded instruction name, e.g. "GET DATA".
    pub name: &'static str,
    /// Command data in hex, or `<N secret bytes>`.
    pub data: String,
    /// Response data in hex (withheld for secret commands).
    pub response: String,
    pub sw: String,
    pub micros: u64,
}

impl TraceEntry {
    pub fn new(cmd: &Command, rsp: Option<&Response>, elapsed: Duration) -> Self {
        let secret = cmd.sensitivity == Sensitivity::Secret;
        let redact = |bytes: &[u8]| {
            if secret && !bytes.is_empty() {
                format!("<{} secret bytes>", bytes.len())
            } else {
                hex::encode_upper(bytes)
            }
        };
        TraceEntry {
            header: format!("{:02X}{:02X}{:02X}{:02X}", cmd.cla, cmd.ins, cmd.p1, cmd.p2),
            name: cmd.name,
            data: redact(&cmd.data),
            response: rsp.map(|r| redact(&r.data)).unwrap_or_default(),
            sw: rsp
                .map(|r| format!("{:04X}", r.sw.0))
                .unwrap_or_else(|| "----".into()),
            micros: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        }
    }
}

impl fmt::Display for TraceEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "> {} {:<28} {}\n< {} {} ({} µs)",
            self.header, self.name, self.data, self.response, self.sw, self.micros
        )
    }
}

/// The exchanges of one card session, in order.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ApduTrace {
    pub entries: Vec<TraceEntry>,
}

impl ApduTrace {
    pub fn push(&mut self, entry: TraceEntry) {
        tracing::trace!(target: "cardstation::apdu", "{entry}");
        self.entries.push(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apdu::StatusWord;

    #[test]
    fn secret_commands_are_redacted_in_both_directions() {
        let verify = Command::new(0, 0x20, 0, 0x80)
            .with_data(b"123456\xFF\xFF".to_vec())
            .secret();
        let rsp = Response {
            data: vec![0xAA; 4],
            sw: StatusWord(0x63C2),
        };
        let entry = TraceEntry::new(&verify, Some(&rsp), Duration::from_micros(5));
        assert_eq!(entry.name, "VERIFY");
        assert_eq!(entry.data, "<8 secret bytes>");
        assert_eq!(entry.response, "<4 secret bytes>");
        assert_eq!(entry.sw, "63C2");
        let shown = entry.to_string();
        assert!(!shown.contains("313233343536"), "{shown}");
    }

    #[test]
    fn public_commands_are_shown() {
        let get = Command::new(0, 0xCB, 0x3F, 0xFF).with_data(vec![0x5C, 0x01, 0x7E]);
        let entry = TraceEntry::new(&get, None, Duration::ZERO);
        assert_eq!(entry.data, "5C017E");
        assert_eq!(entry.sw, "----");
        assert_eq!(entry.name, "GET DATA");
    }
}
