#![no_main]
//! A card that answers every command with bytes from the fuzzer: every PIV
//! operation the station performs must end in a result or an error, never a panic.
use cardstation_card::{CardError, Transport};
use cardstation_piv::{ManagementKey, Algorithm, Pin, PivSession, Slot, PinReference};
use libfuzzer_sys::fuzz_target;

struct FuzzCard<'a> {
    data: &'a [u8],
}

impl Transport for FuzzCard<'_> {
    fn transmit(&mut self, _apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        // Each answer: one length byte, then that many bytes (what is left if fewer).
        let Some((&len, rest)) = self.data.split_first() else {
            return Err(CardError::CardRemoved { reader: "fuzz".into() });
        };
        let n = usize::from(len).min(rest.len());
        let (answer, rest) = rest.split_at(n);
        self.data = rest;
        Ok(answer.to_vec())
    }
    fn reader(&self) -> &str {
        "fuzz"
    }
    fn atr(&self) -> Vec<u8> {
        Vec::new()
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut s) = PivSession::open(FuzzCard { data }) else { return };
    let _ = s.serial();
    let _ = s.version();
    let _ = s.read_chuid();
    let _ = s.read_discovery();
    let _ = s.read_certificate(Slot::CardAuthentication);
    let _ = s.pin_status(PinReference::Pin);
    if let Ok(pin) = Pin::card_pin("123456") {
        let _ = s.verify_pin(&pin);
    }
    let _ = s.management_key_state();
    if let Some(key) = ManagementKey::factory_default(Algorithm::TripleDes) {
        let _ = s.authenticate(&key);
    }
    let _ = s.generate_p256(Slot::CardAuthentication);
    let _ = s.sign_p256(Slot::CardAuthentication, &[7u8; 32]);
    let _ = s.metadata(0x9B);
});
