//! A logical channel to one card: sends whole commands, whatever their size,
//! and collects whole responses.
//!
//! Long command data goes out as one extended APDU where the card advertises
//! extended length, otherwise as a chain (CLA bit 0x10). Long responses are
//! gathered with GET RESPONSE (61xx); a 6Cxx answer is resent with the right Le.

use std::time::Instant;

use super::apdu::{Command, Response, StatusWord, CLA_CHAINING, SHORT_MAX_DATA};
use super::atr::Atr;
use super::error::CardError;
use super::trace::{ApduTrace, TraceEntry};
use super::transport::Transport;

/// Upper bound on the response we are willing to assemble. PIV objects are at
/// most a few KiB; a card that keeps answering 61xx beyond this is faulty.
const MAX_RESPONSE: usize = 64 * 1024;

pub struct CardChannel<T: Transport> {
    transport: T,
    extended_length: bool,
    trace: ApduTrace,
    apdus: usize,
}

impl<T: Transport> CardChannel<T> {
    /// A channel that uses extended length when the card's ATR advertises it.
    pub fn new(transport: T) -> Self {
        let extended_length = Atr::parse(&transport.atr())
            .map(|atr| atr.extended_length())
            .unwrap_or(false);
        CardChannel {
            transport,
            extended_length,
            trace: ApduTrace::default(),
            apdus: 0,
        }
    }

    pub fn with_extended_length(mut self, on: bool) -> Self {
        self.extended_length = on;
        self
    }

    pub fn reader(&self) -> &str {
        self.transport.reader()
    }

    pub fn atr(&self) -> Vec<u8> {
        self.transport.atr()
    }

    /// Number of raw APDUs exchanged so far (chained parts and GET RESPONSEs included).
    pub fn apdu_count(&self) -> usize {
        self.apdus
    }

    pub fn trace(&self) -> &ApduTrace {
        &self.trace
    }

    pub fn into_inner(self) -> T {
        self.transport
    }

    /// Send a command and return the complete response.
    pub fn send(&mut self, cmd: &Command) -> Result<Response, CardError> {
        let mut rsp = if cmd.needs_extended() && self.extended_length {
            let rsp = self.exchange(cmd, true)?;
            if rsp.sw == StatusWord::WRONG_LENGTH && cmd.data.len() <= SHORT_MAX_DATA {
                // Some cards advertise extended length yet refuse a long Le: ask again
                // the short way (and gather the reply with GET RESPONSE).
                self.send_short(cmd)?
            } else {
                rsp
            }
        } else if cmd.data.len() > SHORT_MAX_DATA {
            self.send_chained(cmd)?
        } else {
            self.send_short(cmd)?
        };

        if let Some(le) = rsp.sw.correct_le() {
            let mut again = cmd.clone();
            again.le = Some(le);
            rsp = self.exchange(&again, false)?;
        }

        let mut data = std::mem::take(&mut rsp.data);
        while let Some(available) = rsp.sw.bytes_available() {
            if data.len() > MAX_RESPONSE {
                return Err(CardError::Malformed(format!(
                    "the card keeps sending data beyond {MAX_RESPONSE} bytes"
                )));
            }
            let get_response = Command {
                sensitivity: cmd.sensitivity,
                ..Command::new(cmd.cla & !CLA_CHAINING, 0xC0, 0, 0).with_le(available)
            };
            rsp = self.exchange(&get_response, false)?;
            data.append(&mut rsp.data);
        }
        rsp.data = data;
        Ok(rsp)
    }

    fn send_short(&mut self, cmd: &Command) -> Result<Response, CardError> {
        let mut short = cmd.clone();
        short.le = short.le.map(|le| le.min(256));
        self.exchange(&short, false)
    }

    fn send_chained(&mut self, cmd: &Command) -> Result<Response, CardError> {
        let chunks: Vec<&[u8]> = cmd.data.chunks(SHORT_MAX_DATA).collect();
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.iter().enumerate() {
            let part = Command {
                cla: if i < last {
                    cmd.cla | CLA_CHAINING
                } else {
                    cmd.cla
                },
                data: zeroize::Zeroizing::new(chunk.to_vec()),
                le: if i < last {
                    None
                } else {
                    cmd.le.map(|le| le.min(256))
                },
                ..cmd.clone()
            };
            let rsp = self.exchange(&part, false)?;
            if i < last && !rsp.sw.is_success() {
                // The card refused a link of the chain; its status is the answer.
                return Ok(rsp);
            }
            if i == last {
                return Ok(rsp);
            }
        }
        Err(CardError::Malformed("empty command chain".into()))
    }

    fn exchange(&mut self, cmd: &Command, extended: bool) -> Result<Response, CardError> {
        let raw = if extended {
            cmd.encode_extended()?
        } else {
            cmd.encode_short()?
        };
        let started = Instant::now();
        self.apdus += 1;
        let result = self.transport.transmit(&raw).and_then(|bytes| {
            Response::parse(&bytes).map_err(|e| CardError::Malformed(e.to_string()))
        });
        match &result {
            Ok(rsp) => self
                .trace
                .push(TraceEntry::new(cmd, Some(rsp), started.elapsed())),
            Err(_) => self
                .trace
                .push(TraceEntry::new(cmd, None, started.elapsed())),
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apdu::EXTENDED_MAX_LE;
    use std::collections::VecDeque;

    /// A scripted card: checks each raw APDU it receives and answers from a list.
    struct Scripted {
        expect: VecDeque<(Vec<u8>, Vec<u8>)>,
    }

    impl Transport for Scripted {
        fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
            let (want, answer) = self
                .expect
                .pop_front()
                .ok_or_else(|| CardError::Malformed("unexpected APDU".into()))?;
            assert_eq!(hex::encode(apdu), hex::encode(&want));
            Ok(answer)
        }
        fn reader(&self) -> &str {
            "scripted"
        }
        fn atr(&self) -> Vec<u8> {
            Vec::new()
        }
    }

    fn script(pairs: &[(&str, &str)]) -> Scripted {
        Scripted {
            expect: pairs
                .iter()
                .map(|(c, r)| (hex::decode(c).unwrap(), hex::decode(r).unwrap()))
                .collect(),
        }
    }

    #[test]
    fn get_response_collects_long_replies() {
        let card = script(&[
            ("00cb3fff035c017e00", "aabb6102"),
            ("00c0000002", "ccdd6101"),
            ("00c0000001", "ee9000"),
        ]);
        let mut ch = CardChannel::new(card);
        let rsp = ch
            .send(
                &Command::new(0, 0xCB, 0x3F, 0xFF)
                    .with_data(vec![0x5C, 1, 0x7E])
                    .with_le(256),
            )
            .unwrap();
        assert_eq!(rsp.data, [0xAA, 0xBB, 0xCC, 0xDD, 0xEE]);
        assert!(rsp.sw.is_success());
        assert_eq!(ch.apdu_count(), 3);
        assert_eq!(ch.trace().entries[1].name, "GET RESPONSE");
    }

    #[test]
    fn long_data_is_chained_without_extended_length() {
        let data = vec![0x11; 300];
        let first = format!("10db3fffff{}", "11".repeat(255));
        let second = format!("00db3fff2d{}", "11".repeat(45));
        let card = script(&[(&first, "9000"), (&second, "9000")]);
        let mut ch = CardChannel::new(card);
        let rsp = ch
            .send(&Command::new(0, 0xDB, 0x3F, 0xFF).with_data(data))
            .unwrap();
        assert!(rsp.sw.is_success());
        assert_eq!(ch.apdu_count(), 2);
    }

    #[test]
    fn refused_chain_link_stops_the_chain() {
        let first = format!("10db3fffff{}", "11".repeat(255));
        let card = script(&[(&first, "6a84")]);
        let mut ch = CardChannel::new(card);
        let rsp = ch
            .send(&Command::new(0, 0xDB, 0x3F, 0xFF).with_data(vec![0x11; 300]))
            .unwrap();
        assert_eq!(rsp.sw.0, 0x6A84);
    }

    #[test]
    fn extended_length_is_used_when_enabled() {
        let apdu = format!("00db3fff00012c{}", "11".repeat(300));
        let card = script(&[(&apdu, "9000")]);
        let mut ch = CardChannel::new(card).with_extended_length(true);
        ch.send(&Command::new(0, 0xDB, 0x3F, 0xFF).with_data(vec![0x11; 300]))
            .unwrap();
        assert_eq!(ch.apdu_count(), 1);
    }

    /// GET DATA for tag 7E, asking for all the card has.
    fn get_data_with_long_le() -> Command {
        Command::new(0, 0xCB, 0x3F, 0xFF)
            .with_data(vec![0x5C, 1, 0x7E])
            .with_le(EXTENDED_MAX_LE)
    }

    #[test]
    fn a_long_le_goes_out_extended_and_comes_back_in_one_answer() {
        let card = script(&[("00cb3fff0000035c017e0000", "aabbcc9000")]);
        let mut ch = CardChannel::new(card).with_extended_length(true);
        let rsp = ch.send(&get_data_with_long_le()).unwrap();
        assert_eq!(rsp.data, [0xAA, 0xBB, 0xCC]);
        assert_eq!(ch.apdu_count(), 1);
    }

    #[test]
    fn a_card_that_refuses_a_long_le_is_asked_again_the_short_way() {
        let card = script(&[
            ("00cb3fff0000035c017e0000", "6700"),
            ("00cb3fff035c017e00", "aabb6101"),
            ("00c0000001", "cc9000"),
        ]);
        let mut ch = CardChannel::new(card).with_extended_length(true);
        let rsp = ch.send(&get_data_with_long_le()).unwrap();
        assert_eq!(rsp.data, [0xAA, 0xBB, 0xCC]);
        assert!(rsp.sw.is_success());
        // Without extended length the same command goes out short from the start.
        let card = script(&[("00cb3fff035c017e00", "aabbcc9000")]);
        let mut ch = CardChannel::new(card);
        let rsp = ch.send(&get_data_with_long_le()).unwrap();
        assert_eq!(rsp.data, [0xAA, 0xBB, 0xCC]);
    }

    #[test]
    fn wrong_le_is_retried_with_the_cards_value() {
        let card = script(&[("00fd000000", "6c03"), ("00fd000003", "0506079000")]);
        let mut ch = CardChannel::new(card);
        let rsp = ch.send(&Command::new(0, 0xFD, 0, 0).with_le(256)).unwrap();
        assert_eq!(rsp.data, [5, 6, 7]);
    }

    #[test]
    fn truncated_response_is_an_error_not_a_panic() {
        let card = script(&[("00fd000000", "90")]);
        let mut ch = CardChannel::new(card);
        let err = ch
            .send(&Command::new(0, 0xFD, 0, 0).with_le(256))
            .unwrap_err();
        assert_eq!(err.code(), "malformed-response");
    }

    #[test]
    fn endless_61xx_is_cut_off() {
        struct Endless;
        impl Transport for Endless {
            fn transmit(&mut self, _: &[u8]) -> Result<Vec<u8>, CardError> {
                let mut v = vec![0u8; 255];
                v.extend_from_slice(&[0x61, 0x00]);
                Ok(v)
            }
            fn reader(&self) -> &str {
                "endless"
            }
            fn atr(&self) -> Vec<u8> {
                Vec::new()
            }
        }
        let mut ch = CardChannel::new(Endless);
        let err = ch
            .send(&Command::new(0, 0xCB, 0x3F, 0xFF).with_le(256))
            .unwrap_err();
        assert_eq!(err.code(), "malformed-response");
    }
}
