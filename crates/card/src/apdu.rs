//! Command and response APDUs (ISO/IEC 7816-4): encoding, decoding, status words.

use std::fmt;

use zeroize::Zeroizing;

/// Whether a command's data field may be shown in a trace.
///
/// PIN, PUK and management-key material must never reach a log or trace, so the
/// PIV layer marks such commands and the tracer prints only their length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sensitivity {
    Public,
    Secret,
}

/// A command APDU. `le` is the number of response bytes expected (`None`: no data
/// expected; `Some(0)` would be meaningless, use `Some(256)` / `Some(65536)` for "all").
///
/// The data field and every encoding of the command live in zeroizing buffers, so a PIN,
/// PUK or management key handed to a command is wiped from memory once it was sent,
/// whichever copy (chained part, retry, encoded APDU) carried it.
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: Zeroizing<Vec<u8>>,
    pub le: Option<usize>,
    pub sensitivity: Sensitivity,
    /// The instruction's name for traces ("GET DATA"); the card application names its own.
    pub name: &'static str,
}

/// Name of an interindustry instruction (ISO/IEC 7816-4); applications name the others.
pub fn iso_instruction_name(ins: u8) -> &'static str {
    match ins {
        0xA4 => "SELECT",
        0xC0 => "GET RESPONSE",
        0xCA | 0xCB => "GET DATA",
        0xDA | 0xDB => "PUT DATA",
        0x20 => "VERIFY",
        0x24 => "CHANGE REFERENCE DATA",
        0x2C => "RESET RETRY COUNTER",
        0x47 => "GENERATE ASYMMETRIC KEY PAIR",
        0x86 | 0x87 => "GENERAL AUTHENTICATE",
        _ => "(proprietary)",
    }
}

/// Maximum data length of a short APDU.
pub const SHORT_MAX_DATA: usize = 255;
/// Maximum data length of an extended APDU.
pub const EXTENDED_MAX_DATA: usize = 65_535;
/// The largest Le: "as much as you have". On a card with extended length the whole
/// reply comes in one answer; elsewhere the channel asks for 256 and gathers the rest.
pub const EXTENDED_MAX_LE: usize = 65_536;
/// The CLA bit that marks "more commands of this chain follow".
pub const CLA_CHAINING: u8 = 0x10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApduError {
    #[error("command data of {0} bytes does not fit in one APDU")]
    DataTooLong(usize),
    #[error("expected response length {0} is out of range")]
    LeOutOfRange(usize),
    #[error("response of {0} bytes is too short to hold a status word")]
    ResponseTooShort(usize),
}

impl Command {
    pub fn new(cla: u8, ins: u8, p1: u8, p2: u8) -> Self {
        Command {
            cla,
            ins,
            p1,
            p2,
            data: Zeroizing::new(Vec::new()),
            le: None,
            sensitivity: Sensitivity::Public,
            name: iso_instruction_name(ins),
        }
    }

    /// The command's data field. Secret values should come in as `Zeroizing<Vec<u8>>`
    /// (a plain `Vec` moved in is wiped from here on, but not copies made before).
    pub fn with_data(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.data = Zeroizing::new(data.into());
        self
    }

    /// A secret data field (PIN, PUK, key): kept in its zeroizing buffer and marked
    /// so that traces show only its length.
    pub fn with_secret_data(mut self, data: Zeroizing<Vec<u8>>) -> Self {
        self.data = data;
        self.sensitivity = Sensitivity::Secret;
        self
    }

    /// Name the instruction in traces (for instructions outside ISO 7816-4).
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    pub fn with_le(mut self, le: usize) -> Self {
        self.le = Some(le);
        self
    }

    /// Mark the data field as secret: traces show only its length.
    pub fn secret(mut self) -> Self {
        self.sensitivity = Sensitivity::Secret;
        self
    }

    /// Encode as a short APDU (data ≤ 255, Le ≤ 256).
    pub fn encode_short(&self) -> Result<Zeroizing<Vec<u8>>, ApduError> {
        if self.data.len() > SHORT_MAX_DATA {
            return Err(ApduError::DataTooLong(self.data.len()));
        }
        // Sized up front: a growing Vec would leave copies of the data in freed memory.
        let mut out = Zeroizing::new(Vec::with_capacity(self.data.len() + 6));
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        if !self.data.is_empty() {
            out.push(self.data.len() as u8);
            out.extend_from_slice(&self.data);
        }
        if let Some(le) = self.le {
            match le {
                1..=255 => out.push(le as u8),
                256 => out.push(0),
                other => return Err(ApduError::LeOutOfRange(other)),
            }
        }
        Ok(out)
    }

    /// Encode as an extended-length APDU (data ≤ 65535, Le ≤ 65536).
    pub fn encode_extended(&self) -> Result<Zeroizing<Vec<u8>>, ApduError> {
        if self.data.len() > EXTENDED_MAX_DATA {
            return Err(ApduError::DataTooLong(self.data.len()));
        }
        let le_bytes = match self.le {
            None => None,
            Some(le @ 1..=65_535) => Some([(le >> 8) as u8, le as u8]),
            Some(65_536) => Some([0, 0]),
            Some(other) => return Err(ApduError::LeOutOfRange(other)),
        };
        let mut out = Zeroizing::new(Vec::with_capacity(self.data.len() + 9));
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        if !self.data.is_empty() {
            let len = self.data.len();
            out.extend_from_slice(&[0, (len >> 8) as u8, len as u8]);
            out.extend_from_slice(&self.data);
            if let Some(le) = le_bytes {
                out.extend_from_slice(&le);
            }
        } else if let Some(le) = le_bytes {
            out.push(0);
            out.extend_from_slice(&le);
        }
        Ok(out)
    }

    /// Whether this command needs extended length to go out in one piece.
    pub fn needs_extended(&self) -> bool {
        self.data.len() > SHORT_MAX_DATA || self.le.is_some_and(|le| le > 256)
    }
}

impl fmt::Debug for Command {
    // Debug output never shows secret data, so a stray `{:?}` cannot leak a PIN.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data = match self.sensitivity {
            Sensitivity::Public => hex::encode_upper(&self.data),
            Sensitivity::Secret => format!("<{} secret bytes>", self.data.len()),
        };
        write!(
            f,
            "Command {{ {:02X} {:02X} {:02X} {:02X} data={} le={:?} }}",
            self.cla, self.ins, self.p1, self.p2, data, self.le
        )
    }
}

/// A status word (SW1 SW2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusWord(pub u16);

impl StatusWord {
    pub const SUCCESS: StatusWord = StatusWord(0x9000);
    pub const SECURITY_STATUS_NOT_SATISFIED: StatusWord = StatusWord(0x6982);
    pub const AUTH_METHOD_BLOCKED: StatusWord = StatusWord(0x6983);
    pub const CONDITIONS_NOT_SATISFIED: StatusWord = StatusWord(0x6985);
    pub const WRONG_DATA: StatusWord = StatusWord(0x6A80);
    pub const FUNCTION_NOT_SUPPORTED: StatusWord = StatusWord(0x6A81);
    pub const FILE_NOT_FOUND: StatusWord = StatusWord(0x6A82);
    pub const NOT_ENOUGH_MEMORY: StatusWord = StatusWord(0x6A84);
    pub const INCORRECT_P1P2: StatusWord = StatusWord(0x6A86);
    pub const REFERENCE_NOT_FOUND: StatusWord = StatusWord(0x6A88);
    pub const WRONG_LENGTH: StatusWord = StatusWord(0x6700);
    pub const INS_NOT_SUPPORTED: StatusWord = StatusWord(0x6D00);
    pub const CLA_NOT_SUPPORTED: StatusWord = StatusWord(0x6E00);

    pub fn from_bytes(sw1: u8, sw2: u8) -> Self {
        StatusWord(u16::from(sw1) << 8 | u16::from(sw2))
    }
    pub fn sw1(self) -> u8 {
        (self.0 >> 8) as u8
    }
    pub fn sw2(self) -> u8 {
        self.0 as u8
    }
    pub fn is_success(self) -> bool {
        self == Self::SUCCESS
    }
    /// 61xx: more response data waiting for GET RESPONSE (xx bytes, 00 = 256 or more).
    pub fn bytes_available(self) -> Option<usize> {
        (self.sw1() == 0x61).then(|| match self.sw2() {
            0 => 256,
            n => usize::from(n),
        })
    }
    /// 6Cxx: wrong Le, resend with Le = xx.
    pub fn correct_le(self) -> Option<usize> {
        (self.sw1() == 0x6C).then(|| match self.sw2() {
            0 => 256,
            n => usize::from(n),
        })
    }
    /// 63Cx: verification failed, x tries left.
    pub fn retries_left(self) -> Option<u8> {
        (self.0 & 0xFFF0 == 0x63C0).then_some(self.sw2() & 0x0F)
    }

    /// What the status word means in ISO 7816-4 / SP 800-73-4 terms.
    pub fn meaning(self) -> &'static str {
        if self.retries_left().is_some() {
            return "verification failed";
        }
        if self.bytes_available().is_some() {
            return "more data available";
        }
        match self.0 {
            0x9000 => "success",
            0x6300 => "verification failed",
            0x6281 => "returned data may be corrupted",
            0x6700 => "wrong length",
            0x6882 => "secure messaging not supported",
            0x6982 => "security status not satisfied",
            0x6983 => "authentication method blocked",
            0x6984 => "reference data not usable",
            0x6985 => "conditions of use not satisfied",
            0x6986 => "command not allowed",
            0x6A80 => "incorrect data",
            0x6A81 => "function not supported",
            0x6A82 => "data object or application not found",
            0x6A84 => "not enough memory on the card",
            0x6A86 => "incorrect parameters P1-P2",
            0x6A88 => "referenced data or key not found",
            0x6B00 => "wrong parameters",
            0x6D00 => "instruction not supported",
            0x6E00 => "class not supported",
            0x6F00 => "unknown card error",
            _ => "unknown status",
        }
    }
}

impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X} ({})", self.0, self.meaning())
    }
}

/// A response APDU: data and status word.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    pub data: Vec<u8>,
    pub sw: StatusWord,
}

impl Response {
    /// Split raw response bytes into data and status word.
    pub fn parse(raw: &[u8]) -> Result<Self, ApduError> {
        if raw.len() < 2 {
            return Err(ApduError::ResponseTooShort(raw.len()));
        }
        let (data, sw) = raw.split_at(raw.len() - 2);
        Ok(Response {
            data: data.to_vec(),
            sw: StatusWord::from_bytes(sw[0], sw[1]),
        })
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Response {{ data={} sw={:04X} }}",
            hex::encode_upper(&self.data),
            self.sw.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_case_encodings() {
        // Case 1: header only.
        assert_eq!(
            Command::new(0, 0xA4, 4, 0)
                .encode_short()
                .unwrap()
                .as_slice(),
            [0, 0xA4, 4, 0]
        );
        // Case 2: Le only, 256 is encoded as 00.
        assert_eq!(
            Command::new(0, 0xCB, 0x3F, 0xFF)
                .with_le(256)
                .encode_short()
                .unwrap()
                .as_slice(),
            [0, 0xCB, 0x3F, 0xFF, 0]
        );
        // Case 4: data and Le.
        assert_eq!(
            Command::new(0, 0xA4, 4, 0)
                .with_data(vec![0xA0, 0x00])
                .with_le(256)
                .encode_short()
                .unwrap()
                .as_slice(),
            [0, 0xA4, 4, 0, 2, 0xA0, 0, 0]
        );
    }

    #[test]
    fn extended_case_encodings() {
        let cmd = Command::new(0, 0xDB, 0x3F, 0xFF).with_data(vec![0xAB; 300]);
        let raw = cmd.encode_extended().unwrap();
        assert_eq!(&raw[..7], &[0, 0xDB, 0x3F, 0xFF, 0, 0x01, 0x2C]);
        assert_eq!(raw.len(), 7 + 300);
        let le_only = Command::new(0, 0xCB, 0x3F, 0xFF).with_le(65_536);
        assert_eq!(
            le_only.encode_extended().unwrap().as_slice(),
            [0, 0xCB, 0x3F, 0xFF, 0, 0, 0]
        );
        let both = Command::new(0, 0xCB, 0x3F, 0xFF)
            .with_data(vec![1])
            .with_le(1000);
        assert_eq!(
            both.encode_extended().unwrap().as_slice(),
            [0, 0xCB, 0x3F, 0xFF, 0, 0, 1, 1, 0x03, 0xE8]
        );
    }

    #[test]
    fn oversized_commands_are_errors() {
        let long = Command::new(0, 0xDB, 0x3F, 0xFF).with_data(vec![0; 256]);
        assert_eq!(long.encode_short(), Err(ApduError::DataTooLong(256)));
        assert!(long.needs_extended());
        let huge = Command::new(0, 0xDB, 0x3F, 0xFF).with_data(vec![0; 70_000]);
        assert_eq!(huge.encode_extended(), Err(ApduError::DataTooLong(70_000)));
        let bad_le = Command::new(0, 0xCB, 0, 0).with_le(257);
        assert_eq!(bad_le.encode_short(), Err(ApduError::LeOutOfRange(257)));
        let zero_le = Command::new(0, 0xCB, 0, 0).with_le(0);
        assert_eq!(zero_le.encode_short(), Err(ApduError::LeOutOfRange(0)));
    }

    #[test]
    fn responses_parse_and_reject_truncation() {
        let r = Response::parse(&[1, 2, 0x90, 0]).unwrap();
        assert_eq!(r.data, [1, 2]);
        assert!(r.sw.is_success());
        assert_eq!(
            Response::parse(&[0x90]),
            Err(ApduError::ResponseTooShort(1))
        );
        assert_eq!(Response::parse(&[]), Err(ApduError::ResponseTooShort(0)));
    }

    #[test]
    fn status_word_helpers() {
        assert_eq!(StatusWord(0x63C2).retries_left(), Some(2));
        assert_eq!(StatusWord(0x63C0).retries_left(), Some(0));
        assert_eq!(StatusWord(0x6300).retries_left(), None);
        assert_eq!(StatusWord(0x6110).bytes_available(), Some(16));
        assert_eq!(StatusWord(0x6100).bytes_available(), Some(256));
        assert_eq!(StatusWord(0x6C05).correct_le(), Some(5));
        assert_eq!(
            StatusWord(0x6982).to_string(),
            "6982 (security status not satisfied)"
        );
        assert_eq!(StatusWord(0x1234).meaning(), "unknown status");
    }

    #[test]
    fn secret_data_is_not_in_debug_output() {
        let cmd = Command::new(0, 0x20, 0, 0x80)
            .with_data(b"123456\xff\xff".to_vec())
            .secret();
        let shown = format!("{cmd:?}");
        assert!(!shown.contains("313233"), "{shown}");
        assert!(shown.contains("<8 secret bytes>"));
    }
}
