#![no_main]
use cardstation_card::atr::Atr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(atr) = Atr::parse(data) {
        let _ = atr.extended_length();
        let _ = atr.historical_text();
        let _ = atr.protocol_names();
    }
});
