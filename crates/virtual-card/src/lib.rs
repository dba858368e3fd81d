//! A virtual PIV card: Nitrokey's `piv-authenticator` 0.7.0 on a trussed software platform.
//!
//! Used in-process (tests, demo) through [`VirtualCard::transmit`], and inside the real pcscd
//! through vsmartcard's vpcd driver with [`serve_vpcd`].
//!
//! On top of the PIV application this runner supplies what a card's ISO 7816 layer does and
//! piv-authenticator leaves out (see FIELD-NOTES.md):
//! - a fresh `Authenticator`, trussed service and volatile storage on every reset or power
//!   off (PIN verification and selected application forgotten), persistent storage kept;
//! - command chaining joined, long replies served through 61xx + GET RESPONSE, extended
//!   length accepted, a missing Le treated as 256 (short) or 65536 (extended);
//! - SELECT by the short PIV AID `A0 00 00 03 08`;
//! - randomness from the OS (trussed's own virtual platform uses a constant seed);
//! - PIV attestation as a YubiKey answers it (INS F9, the F9 certificate in 5FFF01), for
//!   keys generated on the card only ([`attestation`]);
//! - a card thread that blocks while idle: trussed requests are answered inside the client's
//!   syscall, so nothing polls.
//!
//! The card thread catches panics from the PIV code (it uses `syscall!`, which panics when a
//! trussed request fails unexpectedly), answers 6F00 and power-cycles the card. A full store
//! is not such a case: PUT DATA then answers 6400.
//!
//! Logging: piv-authenticator logs parsed commands, PIN and management-key bytes included, at
//! `info` through the `log` crate. Silence the targets in [`LOG_TARGETS_TO_SILENCE`] when a
//! logger bridges `log` records.

mod apdu_framing;
pub mod attestation;
mod platform;
mod reader;
mod vpcd;

use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use trussed::virt::{StorageConfig, Store};

use apdu_framing::ApduFraming;
use attestation::Attestor;
use platform::CardApp;

pub use reader::{VirtualReader, DEMO_READER_NAME};
pub use vpcd::{serve_vpcd, serve_vpcd_counting, serve_vpcd_with, DEFAULT_VPCD_ADDR};

/// Where the card keeps its persistent state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardStorage {
    /// In RAM: kept across resets, gone when the [`VirtualCard`] is dropped.
    Memory,
    /// In a directory (created if missing): the card's state persists across runs. Holds
    /// `trussed-internal.lfs` and `trussed-external.lfs` (64 KiB littlefs images), the
    /// attestation key and slot origins (`attestation.json`) and a `lock` file; one card per
    /// directory at a time. Volatile storage is always RAM.
    Directory(PathBuf),
}

/// Errors of the virtual card.
#[derive(Debug, thiserror::Error)]
pub enum VirtualCardError {
    #[error("virtual card storage {path}: {source}")]
    Storage {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("virtual card storage {0} is in use by another virtual card")]
    StorageInUse(PathBuf),
    #[error("{path} is not a virtual card storage image ({found} bytes, expected {expected})")]
    NotACardImage {
        path: PathBuf,
        found: u64,
        expected: u64,
    },
    #[error(
        "virtual card storage could not be mounted (littlefs error {0}); the image may be damaged"
    )]
    Mount(i32),
    #[error("could not start the virtual card thread: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("the virtual card has stopped")]
    Stopped,
    #[error(transparent)]
    Attestation(#[from] attestation::AttestationError),
    #[error("invalid vpcd address {addr:?}: {reason}")]
    VpcdAddress { addr: String, reason: String },
}

/// ATR of the virtual card (T=1 only):
/// `3B 8B 81 01 80 F5 A0 00 00 03 08 73 C0 01 C0 TCK` — TS, T0 (TD1 + 11 historical bytes),
/// TD1 (TD2 follows, T=1), TD2 (T=1), then the historical bytes: category 80 and two
/// compact-TLV objects: the NIST RID of the PIV application (tag F) and the card
/// capabilities (tag 7), as a YubiKey's: selection by full or partial DF name, command
/// chaining and extended Lc/Le, so clients fetch a certificate in one APDU rather than a
/// GET RESPONSE round per 256 bytes. Then the check byte. It matches no vendor's card, so
/// clients identify the card by SELECTing PIV.
pub const ATR: [u8; 16] = atr_with_tck([
    0x3B, 0x8B, 0x81, 0x01, 0x80, 0xF5, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x73, 0xC0, 0x01, 0xC0, 0x00,
]);

/// Log targets that print APDU contents (PINs, keys) at `info` or `debug`: turn them off,
/// e.g. `EnvFilter` directives `piv_authenticator=off,trussed=off,...`.
pub const LOG_TARGETS_TO_SILENCE: &[&str] = &[
    "piv_authenticator",
    "trussed",
    "trussed_auth_backend",
    "trussed_staging",
    "littlefs2",
];

/// TCK: XOR of T0 up to the last historical byte (ISO 7816-3 8.2.5).
const fn atr_with_tck(mut atr: [u8; 16]) -> [u8; 16] {
    let mut tck = 0u8;
    let mut i = 1;
    while i < atr.len() - 1 {
        tck ^= atr[i];
        i += 1;
    }
    atr[atr.len() - 1] = tck;
    atr
}

/// Size of each trussed storage area (what `trussed::virt` formats, file or RAM).
const STORAGE_AREA_LEN: u64 = 512 * 128;
const INTERNAL_IMAGE: &str = "trussed-internal.lfs";
const EXTERNAL_IMAGE: &str = "trussed-external.lfs";
const LOCK_FILE: &str = "lock";
/// Largest reply data of one command (a PIV object up to ~16 KiB; YubiKeys stop at 3 KiB).
const REPLY_CAPACITY: usize = 16 * 1024;
/// trussed and littlefs keep big buffers on the stack, more so in debug builds.
const CARD_THREAD_STACK: usize = 16 * 1024 * 1024;
const SW_EXECUTION_ERROR: [u8; 2] = [0x6F, 0x00];

enum Request {
    Transmit(Vec<u8>, SyncSender<Vec<u8>>),
    Reset(SyncSender<()>),
    Stop,
    /// Tests: panic inside the card, as a bug in the PIV code would.
    #[cfg(test)]
    Crash(SyncSender<Vec<u8>>),
}

/// Why a card session (one power-on period) ended.
enum SessionEnd {
    Reset(SyncSender<()>),
    /// The PIV code panicked: power-cycle.
    Crashed,
    Stop,
}

/// The card's optional features.
#[derive(Debug, Clone, Copy)]
pub struct CardOptions {
    /// PIV attestation as a YubiKey answers it. Off: ATTEST and the F9 certificate are
    /// left to piv-authenticator, which has neither (as Nitrokeys and most PIV cards).
    pub attestation: bool,
}

impl Default for CardOptions {
    fn default() -> Self {
        CardOptions { attestation: true }
    }
}

/// A running virtual PIV card. `Send + Sync`: commands from several threads are executed one
/// at a time, in arrival order, by the card's own thread.
pub struct VirtualCard {
    requests: Sender<Request>,
    thread: Option<JoinHandle<()>>,
    // Held for the card's lifetime: keeps a second card off the same directory.
    _lock: Option<File>,
}

impl VirtualCard {
    /// Starts the card thread. A blank storage gets a fresh card (random keys and CHUID GUID)
    /// on first use; default PIN 123456, PUK 12345678, 3DES management key 0102…08 ×3.
    pub fn start(storage: CardStorage) -> Result<VirtualCard, VirtualCardError> {
        Self::start_with(storage, CardOptions::default())
    }

    /// [`start`](Self::start) with the card's optional features chosen.
    pub fn start_with(
        storage: CardStorage,
        options: CardOptions,
    ) -> Result<VirtualCard, VirtualCardError> {
        let (images, lock) = match &storage {
            CardStorage::Memory => (None, None),
            CardStorage::Directory(dir) => {
                let (images, lock) = prepare_directory(dir)?;
                (Some(images), Some(lock))
            }
        };
        let attestor = if options.attestation {
            Some(Attestor::open(match &storage {
                CardStorage::Memory => None,
                CardStorage::Directory(dir) => Some(dir.as_path()),
            })?)
        } else {
            None
        };
        let (requests, inbox) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("virtual-piv-card".into())
            .stack_size(CARD_THREAD_STACK)
            .spawn(move || card_thread(images, attestor, inbox, ready_tx))
            .map_err(VirtualCardError::Spawn)?;
        let card = VirtualCard {
            requests,
            thread: Some(thread),
            _lock: lock,
        };
        // The thread reports whether the storage mounted; if it died, the channel closes.
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(card),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(VirtualCardError::Stopped),
        }
    }

    /// One raw command APDU in, raw response (data + SW1 SW2) out.
    pub fn transmit(&self, apdu: &[u8]) -> Result<Vec<u8>, VirtualCardError> {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        self.requests
            .send(Request::Transmit(apdu.to_vec(), reply_tx))
            .map_err(|_| VirtualCardError::Stopped)?;
        reply_rx.recv().map_err(|_| VirtualCardError::Stopped)
    }

    /// Power cycle / warm reset: a fresh Authenticator (PIN verification and selected app
    /// forgotten), storage kept.
    pub fn reset(&self) -> Result<(), VirtualCardError> {
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        self.requests
            .send(Request::Reset(done_tx))
            .map_err(|_| VirtualCardError::Stopped)?;
        done_rx.recv().map_err(|_| VirtualCardError::Stopped)
    }

    /// The card's ATR, see [`ATR`].
    pub fn atr(&self) -> Vec<u8> {
        ATR.to_vec()
    }
}

impl Drop for VirtualCard {
    fn drop(&mut self) {
        // The thread may be gone already; then there is nothing to stop.
        let _ = self.requests.send(Request::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for VirtualCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualCard").finish_non_exhaustive()
    }
}

/// Image files of a Directory card.
struct DirectoryImages {
    internal: PathBuf,
    external: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> VirtualCardError + '_ {
    move |source| VirtualCardError::Storage {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates the directory, takes its lock and checks existing images, so that trussed's
/// file storage (which panics on these problems) finds everything in order.
fn prepare_directory(dir: &Path) -> Result<(DirectoryImages, File), VirtualCardError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let lock_path = dir.join(LOCK_FILE);
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    lock_exclusively(&lock, dir)?;
    let images = DirectoryImages {
        internal: dir.join(INTERNAL_IMAGE),
        external: dir.join(EXTERNAL_IMAGE),
    };
    for image in [&images.internal, &images.external] {
        match std::fs::metadata(image) {
            Ok(meta) if meta.is_file() && meta.len() == STORAGE_AREA_LEN => {}
            Ok(meta) => {
                return Err(VirtualCardError::NotACardImage {
                    path: image.clone(),
                    found: meta.len(),
                    expected: STORAGE_AREA_LEN,
                })
            }
            // Missing: trussed creates and formats it.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_err(image)(err)),
        }
    }
    Ok((images, lock))
}

#[cfg(unix)]
fn lock_exclusively(lock: &File, dir: &Path) -> Result<(), VirtualCardError> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor we own; no memory is passed.
    let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.kind() == std::io::ErrorKind::WouldBlock {
        Err(VirtualCardError::StorageInUse(dir.to_path_buf()))
    } else {
        Err(io_err(dir)(err))
    }
}

#[cfg(not(unix))]
fn lock_exclusively(_lock: &File, _dir: &Path) -> Result<(), VirtualCardError> {
    // No advisory locking here; one card per directory is up to the caller.
    Ok(())
}

fn card_thread(
    images: Option<DirectoryImages>,
    mut attestor: Option<Attestor>,
    inbox: Receiver<Request>,
    ready: SyncSender<Result<(), VirtualCardError>>,
) {
    // Persistent areas live as long as the card; the volatile one is new at every power-on.
    let (mut internal, mut external) = match &images {
        None => (StorageConfig::ram(), StorageConfig::ram()),
        Some(images) => (
            StorageConfig::filesystem(images.internal.clone()),
            StorageConfig::filesystem(images.external.clone()),
        ),
    };
    let mut ready = Some(ready);
    loop {
        let mut volatile = StorageConfig::ram();
        let mounted = internal.with_fs(|ifs| {
            external.with_fs(|efs| {
                volatile.with_fs(|vfs| {
                    let store = Store {
                        internal: ifs,
                        external: efs,
                        volatile: vfs,
                    };
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Ok(()));
                    }
                    platform::with_card(store, |card| run_session(card, attestor.as_mut(), &inbox))
                })
            })
        });
        // Formatted once; from now on mount what is there.
        internal.format = false;
        external.format = false;
        let end = match mounted.and_then(|r| r).and_then(|r| r) {
            Ok(end) => end,
            Err(err) => {
                let err = VirtualCardError::Mount(err.code());
                tracing::error!("virtual card stopped: {err}");
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(err));
                }
                // Dropping the inbox makes every later transmit fail with Stopped.
                return;
            }
        };
        match end {
            SessionEnd::Reset(done) => {
                let _ = done.send(());
            }
            SessionEnd::Crashed => {
                tracing::warn!("virtual card: PIV application panicked; power-cycling the card")
            }
            SessionEnd::Stop => return,
        }
    }
}

/// One power-on period: commands until a reset, a stop or a crash.
fn run_session(
    card: &mut CardApp<'_>,
    mut attestor: Option<&mut Attestor>,
    inbox: &Receiver<Request>,
) -> SessionEnd {
    let mut framing = ApduFraming::new();
    let mut reply: Box<heapless::Vec<u8, REPLY_CAPACITY>> = Box::default();
    loop {
        // Blocks while idle: an unused card costs no CPU.
        let (apdu, respond_to, crash) = match inbox.recv() {
            Ok(Request::Transmit(apdu, respond_to)) => (apdu, respond_to, false),
            Ok(Request::Reset(done)) => return SessionEnd::Reset(done),
            Ok(Request::Stop) | Err(_) => return SessionEnd::Stop,
            #[cfg(test)]
            Ok(Request::Crash(respond_to)) => (Vec::new(), respond_to, true),
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            #[cfg(test)]
            if crash {
                panic!("test crash");
            }
            #[cfg(not(test))]
            let _ = crash; // only tests inject crashes
            framing.process(&apdu, |command| {
                let mut piv = |command: iso7816::command::CommandView<'_>| {
                    reply.clear();
                    card.respond(command, reply.as_mut_view())
                        .map(|()| reply.to_vec())
                };
                match attestor.as_deref_mut() {
                    Some(attestor) => attestor.respond(command, piv),
                    None => piv(command),
                }
            })
        }));
        match outcome {
            Ok(response) => {
                let _ = respond_to.send(response);
            }
            Err(_) => {
                let _ = respond_to.send(SW_EXECUTION_ERROR.to_vec());
                return SessionEnd::Crashed;
            }
        }
    }
}

#[cfg(test)]
mod tests;
