//! What a card's ISO 7816 layer does around the PIV application, which piv-authenticator
//! leaves to its runner: command chaining, GET RESPONSE for long replies, Le handling and
//! SELECT by a truncated AID.
//!
//! Pure logic: no trussed, no threads. The application is a closure.

use iso7816::command::{CommandView, FromSliceError};
use iso7816::Status;

/// Full PIV AID (NIST SP 800-73-4 part 1, 2.2).
pub(crate) const PIV_AID: [u8; 11] = [
    0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
];
/// Shortest SELECT we accept: the RID alone, which yubico-piv-tool sends.
const PIV_RID_LEN: usize = 5;

const INS_SELECT: u8 = 0xA4;
const INS_GET_RESPONSE: u8 = 0xC0;
/// CLA bit 0x10: "more commands of this chain follow" (ISO 7816-4 5.1.1).
const CLA_CHAIN: u8 = 0x10;
/// A joined chain has to fit an extended Lc.
const MAX_JOINED_DATA: usize = 0xFFFF;

const SW_OK: [u8; 2] = [0x90, 0x00];
const SW_WRONG_LENGTH: [u8; 2] = [0x67, 0x00];
const SW_CONDITIONS_NOT_SATISFIED: [u8; 2] = [0x69, 0x85];
const SW_CLASS_NOT_SUPPORTED: [u8; 2] = [0x6E, 0x00];
const SW_WRONG_P1P2: [u8; 2] = [0x6B, 0x00];

/// A chain in progress: the header of its first part and the data so far.
struct PendingChain {
    cla: u8,
    ins: u8,
    p1: u8,
    p2: u8,
    data: Vec<u8>,
}

/// Per-session framing state. A power cycle starts a new one.
#[derive(Default)]
pub(crate) struct ApduFraming {
    chain: Option<PendingChain>,
    /// Reply data not yet fetched with GET RESPONSE.
    pending_reply: Vec<u8>,
    reply_offset: usize,
}

impl ApduFraming {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Processes one raw command APDU and returns the raw response (data + SW1 SW2).
    ///
    /// `app` runs one complete (joined) command and returns its full reply data or an error
    /// status. It is not called for chain parts, GET RESPONSE or malformed APDUs.
    pub(crate) fn process<F>(&mut self, apdu: &[u8], mut app: F) -> Vec<u8>
    where
        F: FnMut(CommandView<'_>) -> Result<Vec<u8>, Status>,
    {
        let command = match CommandView::try_from(apdu) {
            Ok(command) => command,
            Err(err) => {
                // A broken APDU ends whatever sequence was going on, as on a real card.
                self.chain = None;
                self.clear_reply();
                return parse_error_sw(err).to_vec();
            }
        };
        let Some(&cla) = apdu.first() else {
            // Unreachable (parsing needs 4 bytes), but never index unchecked.
            return SW_WRONG_LENGTH.to_vec();
        };
        let ins = command.instruction().into();
        let (p1, p2) = (command.p1, command.p2);
        // Le absent means "whatever fits": 256 for short APDUs, 65536 for extended ones.
        let le = effective_le(&command);

        if ins == INS_GET_RESPONSE && cla & !CLA_CHAIN == 0x00 {
            self.chain = None;
            return self.get_response(p1, p2, le);
        }
        // Any other command discards reply data the client did not fetch.
        self.clear_reply();

        // Chaining is only defined for the first interindustry class range (CLA 0x0X / 0x1X).
        let chains = cla & 0xE0 == 0x00;
        let base_cla = if chains { cla & !CLA_CHAIN } else { cla };
        let continues_chain = self
            .chain
            .as_ref()
            .is_some_and(|c| (c.cla, c.ins, c.p1, c.p2) == (base_cla, ins, p1, p2));
        if !continues_chain {
            // A different command aborts an unfinished chain.
            self.chain = None;
        }

        if chains && cla & CLA_CHAIN != 0 {
            let chain = self.chain.get_or_insert_with(|| PendingChain {
                cla: base_cla,
                ins,
                p1,
                p2,
                data: Vec::new(),
            });
            if chain.data.len() + command.data().len() > MAX_JOINED_DATA {
                self.chain = None;
                return SW_WRONG_LENGTH.to_vec();
            }
            chain.data.extend_from_slice(command.data());
            return SW_OK.to_vec();
        }

        let result = match self.chain.take() {
            Some(mut chain) => {
                if chain.data.len() + command.data().len() > MAX_JOINED_DATA {
                    return SW_WRONG_LENGTH.to_vec();
                }
                chain.data.extend_from_slice(command.data());
                let joined = encode_extended(base_cla, ins, p1, p2, &chain.data);
                run_encoded(&joined, &mut app)
            }
            None if is_short_piv_select(base_cla, ins, p1, p2, command.data()) => {
                let full = encode_extended(base_cla, ins, p1, p2, &PIV_AID);
                run_encoded(&full, &mut app)
            }
            None if base_cla != cla => {
                // Hand the application a chain-free CLA, like a joined chain.
                let plain = encode_extended(base_cla, ins, p1, p2, command.data());
                run_encoded(&plain, &mut app)
            }
            None => app(command),
        };

        match result {
            Ok(data) => {
                self.pending_reply = data;
                self.reply_offset = 0;
                self.next_chunk(le)
            }
            Err(status) => {
                let sw: [u8; 2] = status.into();
                sw.to_vec()
            }
        }
    }

    fn get_response(&mut self, p1: u8, p2: u8, le: usize) -> Vec<u8> {
        if (p1, p2) != (0, 0) {
            return SW_WRONG_P1P2.to_vec();
        }
        if self.reply_offset >= self.pending_reply.len() {
            // Nothing left to fetch.
            self.clear_reply();
            return SW_CONDITIONS_NOT_SATISFIED.to_vec();
        }
        self.next_chunk(le)
    }

    /// Sends up to `le` bytes of the pending reply, then 9000 or 61xx if more is waiting.
    fn next_chunk(&mut self, le: usize) -> Vec<u8> {
        let start = self.reply_offset.min(self.pending_reply.len());
        let end = start.saturating_add(le).min(self.pending_reply.len());
        let mut out = Vec::with_capacity(end - start + 2);
        out.extend_from_slice(&self.pending_reply[start..end]);
        self.reply_offset = end;
        let remaining = self.pending_reply.len() - end;
        if remaining == 0 {
            self.clear_reply();
            out.extend_from_slice(&SW_OK);
        } else {
            // 61 00 means "256 or more bytes available".
            let xx = u8::try_from(remaining).unwrap_or(0);
            out.extend_from_slice(&[0x61, xx]);
        }
        out
    }

    fn clear_reply(&mut self) {
        self.pending_reply = Vec::new();
        self.reply_offset = 0;
    }
}

fn effective_le(command: &CommandView<'_>) -> usize {
    match (command.expected(), command.extended) {
        (0, false) => 256,
        (0, true) => 65_536,
        (le, _) => le,
    }
}

fn parse_error_sw(err: FromSliceError) -> [u8; 2] {
    match err {
        FromSliceError::InvalidClass => SW_CLASS_NOT_SUPPORTED,
        FromSliceError::TooShort
        | FromSliceError::TooLong
        | FromSliceError::InvalidFirstBodyByteForExtended
        | FromSliceError::InvalidSliceLength => SW_WRONG_LENGTH,
    }
}

/// SELECT by a truncated PIV AID (at least the RID). piv-authenticator itself only accepts
/// 9 bytes or more.
fn is_short_piv_select(cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8]) -> bool {
    cla == 0x00
        && ins == INS_SELECT
        && p1 == 0x04
        && p2 == 0x00
        && (PIV_RID_LEN..PIV_AID.len()).contains(&data.len())
        && PIV_AID.starts_with(data)
}

/// Encodes a case 3E command (extended Lc, no Le): the application never looks at Le, and we
/// slice its reply ourselves.
fn encode_extended(cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8]) -> Vec<u8> {
    let mut apdu = Vec::with_capacity(data.len() + 7);
    apdu.extend_from_slice(&[cla, ins, p1, p2]);
    if !data.is_empty() {
        // Callers keep data within MAX_JOINED_DATA, so the length fits two bytes.
        let len = u16::try_from(data.len()).unwrap_or(u16::MAX).to_be_bytes();
        apdu.extend_from_slice(&[0x00, len[0], len[1]]);
        apdu.extend_from_slice(data);
    }
    apdu
}

fn run_encoded<F>(apdu: &[u8], app: &mut F) -> Result<Vec<u8>, Status>
where
    F: FnMut(CommandView<'_>) -> Result<Vec<u8>, Status>,
{
    match CommandView::try_from(apdu) {
        Ok(command) => app(command),
        Err(_) => Err(Status::WrongLength),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Echo application: replies with the data it got, or `n` bytes for INS 0xCB with P2 = n/16.
    fn echo(cmd: CommandView<'_>) -> Result<Vec<u8>, Status> {
        let ins: u8 = cmd.instruction().into();
        if ins == 0xCB {
            return Ok((0..usize::from(cmd.p2) * 16).map(|i| i as u8).collect());
        }
        if ins == INS_SELECT {
            return if cmd.data() == PIV_AID {
                Ok(vec![0x61, 0x00])
            } else {
                Err(Status::NotFound)
            };
        }
        let mut out = vec![cmd.class().into_inner()];
        out.extend_from_slice(cmd.data());
        Ok(out)
    }

    #[test]
    fn chained_command_is_joined() {
        let mut f = ApduFraming::new();
        assert_eq!(f.process(&[0x10, 0xDB, 1, 2, 2, 0xAA, 0xBB], echo), SW_OK);
        assert_eq!(f.process(&[0x10, 0xDB, 1, 2, 1, 0xCC], echo), SW_OK);
        assert_eq!(
            f.process(&[0x00, 0xDB, 1, 2, 1, 0xDD], echo),
            vec![0x00, 0xAA, 0xBB, 0xCC, 0xDD, 0x90, 0x00]
        );
        // A different command aborts the chain.
        assert_eq!(f.process(&[0x10, 0xDB, 1, 2, 1, 0xAA], echo), SW_OK);
        assert_eq!(
            f.process(&[0x00, 0xDA, 1, 2, 1, 0xEE], echo),
            vec![0x00, 0xEE, 0x90, 0x00]
        );
    }

    #[test]
    fn long_reply_goes_out_through_get_response() {
        let mut f = ApduFraming::new();
        // 320 bytes, no Le: 256 bytes + 61 40.
        let first = f.process(&[0x00, 0xCB, 0, 20], echo);
        assert_eq!(first.len(), 258);
        assert_eq!(&first[256..], &[0x61, 0x40]);
        let second = f.process(&[0x00, 0xC0, 0, 0, 0x40], echo);
        assert_eq!(second.len(), 0x42);
        assert_eq!(&second[0x40..], &SW_OK);
        assert_eq!(second[0], 0); // byte 256 of the reply (256 mod 256)
        assert_eq!(
            f.process(&[0x00, 0xC0, 0, 0, 0], echo),
            SW_CONDITIONS_NOT_SATISFIED
        );
        // Short Le smaller than the reply.
        let part = f.process(&[0x00, 0xCB, 0, 2, 0x10], echo);
        assert_eq!(&part[16..], &[0x61, 0x10]);
        // Extended Le 0000 = 65536: all at once.
        let all = f.process(&[0x00, 0xCB, 0, 20, 0, 0, 0], echo);
        assert_eq!(all.len(), 322);
        assert_eq!(&all[320..], &SW_OK);
    }

    #[test]
    fn short_piv_aid_is_expanded() {
        let mut f = ApduFraming::new();
        let short = [0x00, 0xA4, 0x04, 0x00, 5, 0xA0, 0x00, 0x00, 0x03, 0x08];
        assert_eq!(f.process(&short, echo), vec![0x61, 0x00, 0x90, 0x00]);
        let other = [0x00, 0xA4, 0x04, 0x00, 5, 0xA0, 0x00, 0x00, 0x03, 0x09];
        assert_eq!(f.process(&other, echo), vec![0x6A, 0x82]);
    }

    #[test]
    fn garbage_gives_error_status() {
        let mut f = ApduFraming::new();
        for apdu in [
            &[][..],
            &[0x00],
            &[0x00, 0xA4, 0x04],
            &[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0],
            &[0x00, 0xA4, 0x04, 0x00, 0x00, 0x00],
            &[0x00, 0xA4, 0x04, 0x00, 0x00, 0xFF, 0xFF, 0x01],
            &[0xFF, 0xA4, 0x04, 0x00],
        ] {
            let sw = f.process(apdu, echo);
            assert_eq!(sw.len(), 2, "{apdu:02X?}");
            assert_ne!(sw, SW_OK.to_vec(), "{apdu:02X?}");
        }
    }
}
