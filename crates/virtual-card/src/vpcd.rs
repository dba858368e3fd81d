//! The card side of vsmartcard's vpcd protocol, so the virtual card shows up in the real pcscd
//! (reader "Virtual PCD 00 00" on TCP port 35963, "Virtual PCD 00 01" on 35964).
//!
//! We are the TCP client; vpcd (loaded by pcscd) listens. Every message in either direction
//! is a 2-byte big-endian length and a payload. A 1-byte payload from vpcd is a control code
//! (0 power off, 1 power on, 2 reset, 4 "send your ATR"); anything else is a command APDU,
//! answered with the response APDU. Only the ATR request and APDUs get an answer.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{CardStorage, VirtualCard, VirtualCardError};

/// Where vpcd listens by default (first slot).
pub const DEFAULT_VPCD_ADDR: &str = "127.0.0.1:35963";

/// How often a blocked read or a reconnect wait looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(200);
const RECONNECT_DELAY: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A pcscd that does not take our reply within this time is treated as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

const CTRL_POWER_OFF: u8 = 0;
const CTRL_POWER_ON: u8 = 1;
const CTRL_RESET: u8 = 2;
const CTRL_GET_ATR: u8 = 4;
const SW_EXECUTION_ERROR: [u8; 2] = [0x6F, 0x00];

/// Serves a new card with `storage` through vpcd at `addr` (e.g. [`DEFAULT_VPCD_ADDR`]) until
/// `stop` is set. Reconnects whenever pcscd (re)starts; a lost connection powers the card off.
pub fn serve_vpcd(
    addr: &str,
    storage: CardStorage,
    stop: Arc<AtomicBool>,
) -> Result<(), VirtualCardError> {
    // Check the address before spending a card on it.
    resolve(addr)?;
    let card = VirtualCard::start(storage)?;
    serve_vpcd_with(&card, addr, &stop)
}

/// Like [`serve_vpcd`] for a card that is already running (it can be used in-process at the
/// same time; commands are serialized by the card).
pub fn serve_vpcd_with(
    card: &VirtualCard,
    addr: &str,
    stop: &AtomicBool,
) -> Result<(), VirtualCardError> {
    serve_vpcd_counting(card, addr, stop, None)
}

/// Like [`serve_vpcd_with`]; with `count_file`, the number of APDUs served so far is
/// written there after each one (benchmarks count other clients' APDUs with it).
pub fn serve_vpcd_counting(
    card: &VirtualCard,
    addr: &str,
    stop: &AtomicBool,
    count_file: Option<&std::path::Path>,
) -> Result<(), VirtualCardError> {
    let addrs = resolve(addr)?;
    let mut served: u64 = 0;
    let mut told_waiting = false;
    while !stop.load(Ordering::Relaxed) {
        let stream = match connect(&addrs) {
            Ok(stream) => stream,
            Err(err) => {
                if !told_waiting {
                    tracing::info!(
                        "waiting for vpcd at {addr} ({err}); is pcscd running with vsmartcard-vpcd installed?"
                    );
                    told_waiting = true;
                }
                sleep_unless_stopped(RECONNECT_DELAY, stop);
                continue;
            }
        };
        told_waiting = false;
        tracing::info!("virtual card connected to vpcd at {addr}");
        match serve_connection(card, stream, stop, &mut served, count_file) {
            ConnectionEnd::Stopped => break,
            ConnectionEnd::CardStopped => return Err(VirtualCardError::Stopped),
            ConnectionEnd::Lost(err) => {
                tracing::info!("vpcd connection at {addr} ended ({err}); reconnecting")
            }
        }
        // The reader went away with the card in it: that is a power loss.
        card.reset()?;
    }
    Ok(())
}

fn resolve(addr: &str) -> Result<Vec<SocketAddr>, VirtualCardError> {
    let bad = |reason: String| VirtualCardError::VpcdAddress {
        addr: addr.to_string(),
        reason,
    };
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|err| bad(err.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(bad("resolves to no address".into()));
    }
    Ok(addrs)
}

fn connect(addrs: &[SocketAddr]) -> std::io::Result<TcpStream> {
    let mut last_err = std::io::Error::new(ErrorKind::NotFound, "no address");
    for addr in addrs {
        match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(err) => last_err = err,
        }
    }
    Err(last_err)
}

fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let mut left = total;
    while !left.is_zero() && !stop.load(Ordering::Relaxed) {
        let step = left.min(STOP_POLL);
        std::thread::sleep(step);
        left -= step;
    }
}

enum ConnectionEnd {
    Stopped,
    CardStopped,
    Lost(std::io::Error),
}

fn serve_connection(
    card: &VirtualCard,
    mut stream: TcpStream,
    stop: &AtomicBool,
    served: &mut u64,
    count_file: Option<&std::path::Path>,
) -> ConnectionEnd {
    // Our replies are single writes; no reason to let Nagle hold them back.
    let setup = stream
        .set_nodelay(true)
        .and_then(|()| stream.set_read_timeout(Some(STOP_POLL)))
        .and_then(|()| stream.set_write_timeout(Some(WRITE_TIMEOUT)));
    if let Err(err) = setup {
        return ConnectionEnd::Lost(err);
    }
    loop {
        let message = match read_message(&mut stream, stop) {
            Ok(Some(message)) => message,
            Ok(None) => return ConnectionEnd::Stopped,
            Err(err) => return ConnectionEnd::Lost(err),
        };
        let reply = match message.as_slice() {
            [CTRL_POWER_OFF] | [CTRL_RESET] => match card.reset() {
                Ok(()) => None,
                Err(_) => return ConnectionEnd::CardStopped,
            },
            // Power on: the card was made fresh at power off / reset / connect.
            [CTRL_POWER_ON] => None,
            [CTRL_GET_ATR] => Some(card.atr()),
            [other] => {
                tracing::debug!("vpcd: ignoring unknown control code {other}");
                None
            }
            // Anything else is an APDU; a malformed one gets an error SW from the card.
            apdu => match card.transmit(apdu) {
                Ok(response) => {
                    *served += 1;
                    if let Some(path) = count_file {
                        // Best effort: a benchmark aid, never a reason to drop the card.
                        let _ = std::fs::write(path, served.to_string());
                    }
                    Some(response)
                }
                Err(_) => return ConnectionEnd::CardStopped,
            },
        };
        if let Some(reply) = reply {
            if let Err(err) = write_message(&mut stream, &reply) {
                return ConnectionEnd::Lost(err);
            }
        }
    }
}

/// Reads one length-prefixed message; `None` when `stop` was set while waiting.
fn read_message(stream: &mut TcpStream, stop: &AtomicBool) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    if !read_full(stream, &mut len, stop)? {
        return Ok(None);
    }
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    if !read_full(stream, &mut message, stop)? {
        return Ok(None);
    }
    Ok(Some(message))
}

/// Fills `buf`, riding out read timeouts (which exist only to notice `stop`).
fn read_full(stream: &mut TcpStream, buf: &mut [u8], stop: &AtomicBool) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        // vpcd sends the length and the APDU in two writes. With our delayed ACK of the
        // first, its Nagle algorithm holds the second back ~40 ms; ACK at once instead.
        // Linux clears the flag after use, so set it before every read.
        quick_ack(stream);
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if stop.load(Ordering::Relaxed) {
                    return Ok(false);
                }
            }
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(true)
}

fn write_message(stream: &mut TcpStream, payload: &[u8]) -> std::io::Result<()> {
    // Replies are bounded by the card's reply buffer; should one not fit the 16-bit length,
    // send an error status rather than a corrupt frame.
    let payload = if payload.len() > usize::from(u16::MAX) {
        &SW_EXECUTION_ERROR[..]
    } else {
        payload
    };
    let len = u16::try_from(payload.len()).unwrap_or(0).to_be_bytes();
    let mut frame = Vec::with_capacity(payload.len() + 2);
    frame.extend_from_slice(&len);
    frame.extend_from_slice(payload);
    stream.write_all(&frame)
}

#[cfg(target_os = "linux")]
fn quick_ack(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt on a socket we own, with a pointer to a live c_int and its size.
    // Best effort: failing only costs speed.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn quick_ack(_stream: &TcpStream) {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn send(stream: &mut TcpStream, payload: &[u8]) {
        let mut frame = u16::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
        frame.extend_from_slice(payload);
        stream.write_all(&frame).unwrap();
    }

    fn recv(stream: &mut TcpStream) -> Vec<u8> {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).unwrap();
        let mut payload = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut payload).unwrap();
        payload
    }

    /// A fake vpcd: ATR, SELECT, garbage, a reconnect, then stop.
    #[test]
    fn speaks_vpcd_and_reconnects() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let server = {
            let stop = stop.clone();
            std::thread::spawn(move || serve_vpcd(&addr, CardStorage::Memory, stop))
        };
        for _ in 0..2 {
            let (mut vpcd, _) = listener.accept().unwrap();
            send(&mut vpcd, &[CTRL_POWER_ON]);
            send(&mut vpcd, &[CTRL_GET_ATR]);
            assert_eq!(recv(&mut vpcd), super::super::ATR.to_vec());
            // Length and APDU in two writes, like vpcd.
            let select = [0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08];
            vpcd.write_all(&(select.len() as u16).to_be_bytes())
                .unwrap();
            vpcd.write_all(&select).unwrap();
            let response = recv(&mut vpcd);
            assert_eq!(&response[response.len() - 2..], &[0x90, 0x00]);
            send(&mut vpcd, &[0x00, 0xA4]);
            assert_eq!(recv(&mut vpcd), vec![0x67, 0x00]);
            send(&mut vpcd, &[]);
            assert_eq!(recv(&mut vpcd), vec![0x67, 0x00]);
            send(&mut vpcd, &[CTRL_RESET]);
            send(&mut vpcd, &[9]); // unknown control code: ignored
            send(&mut vpcd, &[CTRL_POWER_OFF]);
            // Dropping the connection: the server reconnects for the second round.
        }
        stop.store(true, Ordering::Relaxed);
        server.join().unwrap().unwrap();
    }

    #[test]
    fn bad_address_is_an_error() {
        let stop = Arc::new(AtomicBool::new(true));
        assert!(matches!(
            serve_vpcd("not an address", CardStorage::Memory, stop),
            Err(VirtualCardError::VpcdAddress { .. })
        ));
    }
}
