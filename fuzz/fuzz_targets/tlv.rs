#![no_main]
use cardstation_card::tlv;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tlv::parse_all(data);
    if let Ok((t, rest)) = tlv::parse_one(data) {
        // What was parsed re-encodes to a prefix-compatible object.
        let again = tlv::encode(t.tag, t.value);
        assert!(tlv::parse_one(&again).is_ok());
        let _ = rest;
    }
});
