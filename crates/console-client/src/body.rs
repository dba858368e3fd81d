//! Reading a trust bundle download as a stream that stops at a cap: the setting's
//! (`max_bundle_mib`), and for a full bundle the size its own header allows, read
//! from the first bytes. A server that sends without end (chunked, no
//! Content-Length) is cut off there instead of filling the memory.

use std::io::Read;

use cardstation_protocol::bundle::{size_limit, SizeLimit};

use crate::ConsoleError;

const CHUNK: usize = 64 * 1024;

/// Read `body` (whose Content-Length is `announced`, if given) of the bundle at `url`,
/// at most `max` bytes, less when its header says so. `fail` turns a read error
/// into the caller's error (timeouts, TLS, a dropped connection).
pub(crate) fn read_bundle(
    mut body: impl Read,
    announced: Option<u64>,
    url: &str,
    max: u64,
    fail: impl Fn(std::io::Error) -> ConsoleError,
) -> Result<Vec<u8>, ConsoleError> {
    let too_big = |cap: u64, why: &str| {
        ConsoleError::Malformed(format!(
            "the trust bundle at {url} is larger than {cap} bytes ({why}); refused"
        ))
    };
    if let Some(n) = announced.filter(|&n| n > max) {
        return Err(too_big(
            max,
            &format!("{n} bytes announced; the limit is [console] max_bundle_mib"),
        ));
    }
    let mut cap = max;
    let mut why = "the limit of [console] max_bundle_mib";
    let mut header_read = false;
    let initial = announced
        .unwrap_or(CHUNK as u64)
        .min(cap)
        .min(16 * CHUNK as u64);
    let mut out: Vec<u8> = Vec::with_capacity(usize::try_from(initial).unwrap_or(CHUNK));
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(fail(e)),
        };
        if out.len() as u64 + n as u64 > cap {
            return Err(too_big(cap, why));
        }
        out.extend_from_slice(&buf[..n]);
        if !header_read {
            match size_limit(&out) {
                Ok(SizeLimit::More) => {}
                Ok(SizeLimit::AtMost(limit)) => {
                    header_read = true;
                    if limit < cap {
                        cap = limit;
                        why = "the size its header allows";
                        if announced.is_some_and(|a| a > cap) || out.len() as u64 > cap {
                            return Err(too_big(cap, why));
                        }
                    }
                }
                Ok(SizeLimit::Unknown) => header_read = true,
                // Not a bundle: reading on cannot make it one. What arrived is handed
                // on, and opening it says what is wrong, as for any malformed bundle.
                Err(_) => return Ok(out),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Endless bytes, counting what was taken.
    struct Endless<'a> {
        prefix: &'a [u8],
        given: usize,
    }

    impl Read for Endless<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(4096);
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = self.prefix.get(self.given + i).copied().unwrap_or(0x41);
            }
            self.given += n;
            Ok(n)
        }
    }

    fn io(e: std::io::Error) -> ConsoleError {
        ConsoleError::Unreachable {
            url: "u".into(),
            detail: e.to_string(),
        }
    }

    #[test]
    fn an_endless_body_stops_at_the_cap() {
        let mut endless = Endless {
            prefix: b"CSTB",
            given: 0,
        };
        // Not a bundle past its magic: handed on at once, a few bytes.
        let got = read_bundle(&mut endless, None, "u", 1 << 20, io).unwrap();
        assert!(got.len() <= CHUNK, "{}", got.len());
        let mut endless = Endless {
            prefix: b"",
            given: 0,
        };
        let got = read_bundle(&mut endless, None, "u", 1 << 20, io).unwrap();
        assert!(got.len() <= CHUNK);
    }

    #[test]
    fn an_announced_length_over_the_cap_is_refused_before_reading() {
        let err = read_bundle(&b"CSTB"[..], Some(10 << 20), "u", 1 << 20, io).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
    }
}
