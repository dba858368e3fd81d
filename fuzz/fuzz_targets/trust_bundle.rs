#![no_main]
//! Bundles from a console (or a web server) are untrusted: verification must refuse,
//! not panic, and a correctly signed but nonsensical payload must be refused too.
use cardstation_protocol::bundle::{self, Header, TrustView};
use cardstation_protocol::trust_lists::TrustLists;
use libfuzzer_sys::fuzz_target;
use p256::ecdsa::signature::Signer;

fuzz_target!(|data: &[u8]| {
    let key = p256::ecdsa::SigningKey::from_slice(&[0x42; 32]).expect("a fixed valid scalar");
    let vk = *key.verifying_key();
    let held = {
        let lists = TrustLists::from_unsorted(vec![[1; 32]], vec![], vec![]);
        TrustView::of(Header::for_lists([1; 16], 3, 0, 10, [0; 32], &lists), lists)
    };
    // As received: framing, signature, payload.
    if let Ok(opened) = bundle::open(data, &vk) {
        let _ = bundle::advance(Some(&held), Some(3), opened, None);
    }
    // The payload's parser under a valid signature, as a full bundle and as a delta.
    for kind in [1u8, 2] {
        let sig: p256::ecdsa::Signature = key.sign(data);
        let sig = sig.to_der();
        let mut framed = b"CSTB\x02".to_vec();
        framed.push(kind);
        framed.extend_from_slice(&[0; 32]);
        framed.extend_from_slice(&(sig.as_bytes().len() as u16).to_be_bytes());
        framed.extend_from_slice(sig.as_bytes());
        framed.extend_from_slice(data);
        if let Ok(opened) = bundle::open(&framed, &vk) {
            let _ = bundle::advance(Some(&held), None, opened, None);
        }
    }
});
