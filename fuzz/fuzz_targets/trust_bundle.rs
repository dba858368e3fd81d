#![no_main]
//! Bundles from a console are untrusted: verification must refuse, not panic.
use cardstation_protocol::bundle;
use cardstation_protocol::messages::SignedBundle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = p256::ecdsa::SigningKey::from_slice(&[0x42; 32]).expect("a fixed valid scalar");
    if let Ok(signed) = serde_json::from_slice::<SignedBundle>(data) {
        let _ = bundle::verify(&signed, key.verifying_key());
    }
    // Also as raw payload bytes under a correct signature: the JSON parser's turn.
    let text = String::from_utf8_lossy(data);
    let _ = serde_json::from_str::<cardstation_protocol::messages::BundlePayload>(&text);
});
