//! PIN, PUK and management-key bytes stay in zeroizing buffers down to the transmit
//! call. Proven with an allocator that inspects every block the station frees while
//! PIV commands carry secrets: a freed block still holding a secret is a copy that
//! escaped its zeroizing buffer (a plain `Vec`, a clone, a grown buffer, an encoding).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use cardstation_card::{CardError, Transport};
use cardstation_piv::{Algorithm, ManagementKey, Pin, PivSession};

/// Distinctive secrets: nothing else in the process holds these bytes.
const PIN: &str = "739146";
const NEW_PIN: &str = "582037";
const PUK: &str = "60419273";
const NEW_PUK: &str = "91735046";
const KEY: [u8; 32] = [
    0xC3, 0x5A, 0x91, 0x0E, 0x77, 0x2B, 0xD4, 0x68, 0x1F, 0xA9, 0x3C, 0x85, 0xE2, 0x46, 0x9D, 0x30,
    0x5B, 0xC7, 0x12, 0x8E, 0x64, 0xF1, 0x0A, 0xB3, 0x79, 0x26, 0xDE, 0x4F, 0x93, 0x58, 0xAC, 0x17,
];

struct Inspecting;

static WATCHING: AtomicBool = AtomicBool::new(false);
static LEAKS: AtomicUsize = AtomicUsize::new(0);
static BLOCKS_SEEN: AtomicUsize = AtomicUsize::new(0);

fn needles() -> [&'static [u8]; 5] {
    [
        PIN.as_bytes(),
        NEW_PIN.as_bytes(),
        PUK.as_bytes(),
        NEW_PUK.as_bytes(),
        &KEY[..16],
    ]
}

unsafe impl GlobalAlloc for Inspecting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if WATCHING.load(Ordering::Relaxed) {
            // SAFETY: the block is still ours until System.dealloc below.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            BLOCKS_SEEN.fetch_add(1, Ordering::Relaxed);
            if needles()
                .iter()
                .any(|n| block.windows(n.len()).any(|w| w == *n))
            {
                LEAKS.fetch_add(1, Ordering::Relaxed);
            }
        }
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Inspecting = Inspecting;

/// A card that accepts everything: the test is about what the station does with the
/// secrets on its side of the transmit call, not about the card.
struct AcceptingCard {
    /// Raw APDUs seen, as a real reader driver would copy them out (not inspected).
    apdus: usize,
}

impl Transport for AcceptingCard {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        self.apdus += 1;
        // SELECT answers an (empty) application property template; the rest 9000.
        if apdu.get(1) == Some(&0xA4) {
            return Ok(vec![0x61, 0x00, 0x90, 0x00]);
        }
        Ok(vec![0x90, 0x00])
    }
    fn reader(&self) -> &str {
        "accepting card"
    }
    fn atr(&self) -> Vec<u8> {
        Vec::new()
    }
}

/// One test at a time watches the allocator.
static SERIAL: Mutex<()> = Mutex::new(());

fn watch<R>(f: impl FnOnce() -> R) -> (R, usize, usize) {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    LEAKS.store(0, Ordering::SeqCst);
    BLOCKS_SEEN.store(0, Ordering::SeqCst);
    WATCHING.store(true, Ordering::SeqCst);
    let r = f();
    WATCHING.store(false, Ordering::SeqCst);
    (
        r,
        LEAKS.load(Ordering::SeqCst),
        BLOCKS_SEEN.load(Ordering::SeqCst),
    )
}

#[test]
fn pin_puk_and_key_commands_leave_no_copy_in_freed_memory() {
    // Secrets made before watching: their own buffers are zeroizing types.
    let pin = Pin::card_pin(PIN).unwrap();
    let new_pin = Pin::card_pin(NEW_PIN).unwrap();
    let puk = Pin::puk(PUK).unwrap();
    let new_puk = Pin::puk(NEW_PUK).unwrap();
    let key = ManagementKey::new(Algorithm::Aes256, &KEY).unwrap();

    let (apdus, leaks, blocks) = watch(|| {
        let mut card = AcceptingCard { apdus: 0 };
        let mut s = PivSession::open(&mut card).unwrap();
        s.verify_pin(&pin).unwrap();
        s.change_reference(&pin, &new_pin).unwrap();
        s.change_reference(&puk, &new_puk).unwrap();
        s.reset_retry_counter(&new_puk, &pin).unwrap();
        s.set_management_key(&key).unwrap();
        // The session, its channel, its trace and every command are dropped here.
        drop(s);
        card.apdus
    });
    assert_eq!(apdus, 6, "every command reached the card");
    assert!(blocks > 0, "the allocator watched the session's frees");
    assert_eq!(
        leaks, 0,
        "{leaks} freed blocks still held PIN, PUK or management-key bytes"
    );
    drop((pin, new_pin, puk, new_puk, key));
}

/// The inspection itself works: a secret copied into a plain `Vec` is caught.
#[test]
fn a_plain_copy_of_a_secret_is_caught() {
    let pin = Pin::card_pin(PIN).unwrap();
    let ((), leaks, _) = watch(|| {
        let careless: Vec<u8> = pin.padded().to_vec();
        drop(std::hint::black_box(careless));
    });
    assert_eq!(leaks, 1);
}
