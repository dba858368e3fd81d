//! In-process tests of the virtual card (no pcscd needed).

use super::*;

const SELECT_FULL: &[u8] = &[
    0x00, 0xA4, 0x04, 0x00, 0x0B, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
];
const SELECT_SHORT: &[u8] = &[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08];
const VERIFY_123456: &[u8] = &[
    0x00, 0x20, 0x00, 0x80, 0x08, b'1', b'2', b'3', b'4', b'5', b'6', 0xFF, 0xFF,
];
const VERIFY_WRONG: &[u8] = &[
    0x00, 0x20, 0x00, 0x80, 0x08, b'6', b'5', b'4', b'3', b'2', b'1', 0xFF, 0xFF,
];
const VERIFY_STATUS: &[u8] = &[0x00, 0x20, 0x00, 0x80];
const GET_CHUID: &[u8] = &[
    0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x02, 0x00,
];
const DEFAULT_MGMT_KEY: [u8; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
];

/// Sends an APDU, returns (data, SW).
fn tx(card: &VirtualCard, apdu: &[u8]) -> (Vec<u8>, u16) {
    let mut response = card.transmit(apdu).expect("card alive");
    assert!(response.len() >= 2, "response too short: {response:02X?}");
    let sw = response.split_off(response.len() - 2);
    (response, u16::from_be_bytes([sw[0], sw[1]]))
}

fn select(card: &VirtualCard) {
    let (data, sw) = tx(card, SELECT_FULL);
    assert_eq!(sw, 0x9000);
    assert_eq!(data.first(), Some(&0x61), "application property template");
}

/// GET DATA with the given Le byte, following 61xx with GET RESPONSE (Le 00).
fn get_data_chained(card: &VirtualCard, tag: [u8; 3], le: u8) -> (Vec<u8>, usize, u16) {
    let apdu = [
        0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, tag[0], tag[1], tag[2], le,
    ];
    let (mut data, mut sw) = tx(card, &apdu);
    let mut pieces = 1;
    while sw >> 8 == 0x61 {
        let (more, next_sw) = tx(card, &[0x00, 0xC0, 0x00, 0x00, 0x00]);
        data.extend_from_slice(&more);
        sw = next_sw;
        pieces += 1;
    }
    (data, pieces, sw)
}

/// Management key authentication (single challenge, 3DES default key).
fn authenticate_admin(card: &VirtualCard) {
    use des::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
    let (data, sw) = tx(
        card,
        &[0x00, 0x87, 0x03, 0x9B, 0x04, 0x7C, 0x02, 0x81, 0x00],
    );
    assert_eq!(sw, 0x9000);
    assert_eq!(&data[..4], &[0x7C, 0x0A, 0x81, 0x08]);
    let cipher = des::TdesEde3::new_from_slice(&DEFAULT_MGMT_KEY).unwrap();
    let mut block = GenericArray::clone_from_slice(&data[4..12]);
    cipher.encrypt_block(&mut block);
    let mut apdu = vec![0x00, 0x87, 0x03, 0x9B, 0x0C, 0x7C, 0x0A, 0x82, 0x08];
    apdu.extend_from_slice(&block);
    assert_eq!(tx(card, &apdu).1, 0x9000);
}

/// The GUID inside a CHUID reply (tag 34, 16 bytes).
fn chuid_guid(chuid: &[u8]) -> Vec<u8> {
    let at = chuid
        .windows(2)
        .position(|w| w == [0x34, 0x10])
        .expect("GUID tag in CHUID");
    chuid[at + 2..at + 18].to_vec()
}

#[test]
fn is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<VirtualCard>();
}

#[test]
fn atr_is_well_formed() {
    let card = VirtualCard::start(CardStorage::Memory).unwrap();
    let atr = card.atr();
    assert_eq!(atr, ATR.to_vec());
    assert_eq!(atr[0], 0x3B);
    assert_eq!(usize::from(atr[1] & 0x0F), 11, "historical bytes");
    assert_eq!(atr[1..].iter().fold(0, |x, b| x ^ b), 0, "TCK");
    // What the station's ATR reader makes of it: T=1, chaining and extended length.
    let parsed = cardstation_card::atr::Atr::parse(&atr).unwrap();
    assert!(parsed.extended_length(), "{parsed:?}");
    assert!(parsed.command_chaining(), "{parsed:?}");
}

#[test]
fn select_by_full_and_short_aid() {
    let card = VirtualCard::start(CardStorage::Memory).unwrap();
    for apdu in [SELECT_FULL, SELECT_SHORT] {
        let (data, sw) = tx(&card, apdu);
        assert_eq!(sw, 0x9000, "{apdu:02X?}");
        assert_eq!(data.first(), Some(&0x61));
        // Template contains the PIV AID (tag 4F).
        assert!(data
            .windows(2)
            .any(|w| w == [0x4F, 0x06] || w == [0x4F, 0x0B]));
    }
    // Not PIV: not found.
    let (_, sw) = tx(
        &card,
        &[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x05, 0x27],
    );
    assert_eq!(sw, 0x6A82);
}

#[test]
fn verify_pin_and_reset_forgets_it() {
    let card = VirtualCard::start(CardStorage::Memory).unwrap();
    select(&card);
    assert_eq!(tx(&card, VERIFY_WRONG).1, 0x63C2);
    assert_eq!(tx(&card, VERIFY_123456).1, 0x9000);
    assert_eq!(tx(&card, VERIFY_STATUS).1, 0x9000);
    card.reset().unwrap();
    select(&card);
    let (_, sw) = tx(&card, VERIFY_STATUS);
    assert_eq!(sw & 0xFFF0, 0x63C0, "PIN must be forgotten, got {sw:04X}");
    assert_eq!(sw, 0x63C3, "retry counter back to 3 after the good PIN");
}

#[test]
fn chained_put_data_and_long_get_data() {
    let card = VirtualCard::start(CardStorage::Memory).unwrap();
    select(&card);
    authenticate_admin(&card);
    // ~1500-byte object in the 9A certificate container (5FC105).
    let object: Vec<u8> = (0..1500u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut data = vec![0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x53, 0x82];
    data.extend_from_slice(&(object.len() as u16).to_be_bytes());
    data.extend_from_slice(&object);
    let parts: Vec<&[u8]> = data.chunks(255).collect();
    for (i, part) in parts.iter().enumerate() {
        let cla = if i + 1 < parts.len() { 0x10 } else { 0x00 };
        let mut apdu = vec![cla, 0xDB, 0x3F, 0xFF, part.len() as u8];
        apdu.extend_from_slice(part);
        assert_eq!(tx(&card, &apdu).1, 0x9000, "part {i}");
    }
    let (reply, pieces, sw) = get_data_chained(&card, [0x5F, 0xC1, 0x05], 0x00);
    assert_eq!(sw, 0x9000);
    assert!(pieces >= 6, "1500 bytes in 256-byte pieces, got {pieces}");
    assert_eq!(&reply[..4], &[0x53, 0x82, 0x05, 0xDC]);
    assert_eq!(&reply[4..], &object[..]);
    // A small Le cuts the reply too.
    let (_, sw) = tx(
        &card,
        &[
            0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x10,
        ],
    );
    assert_eq!(sw, 0x6100);
    // Extended Le 0000: the whole object at once.
    let (all, sw) = tx(
        &card,
        &[
            0x00, 0xCB, 0x3F, 0xFF, 0x00, 0x00, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x00, 0x00,
        ],
    );
    assert_eq!(sw, 0x9000);
    assert_eq!(all, reply);
    // Extended command, no Le at all (case 3E): the reply still comes back.
    let (all, sw) = tx(
        &card,
        &[
            0x00, 0xCB, 0x3F, 0xFF, 0x00, 0x00, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x05,
        ],
    );
    assert_eq!(sw, 0x9000);
    assert_eq!(all, reply);
}

#[test]
fn reply_data_without_le() {
    let card = VirtualCard::start(CardStorage::Memory).unwrap();
    select(&card);
    // Case 3 GET DATA (no Le), as OpenSC sends under T=0.
    let (chuid, sw) = tx(&card, &GET_CHUID[..GET_CHUID.len() - 1]);
    assert_eq!(sw, 0x9000);
    assert_eq!(chuid.first(), Some(&0x53));
    // SELECT without Le.
    let (data, sw) = tx(&card, SELECT_SHORT);
    assert_eq!(sw, 0x9000);
    assert!(!data.is_empty());
}

#[test]
fn garbage_gets_error_status_and_card_survives() {
    let card = VirtualCard::start(CardStorage::Memory).unwrap();
    let garbage: &[&[u8]] = &[
        &[],
        &[0x00],
        &[0x00, 0xA4, 0x04],
        &[0xFF, 0xFF, 0xFF, 0xFF],
        &[0x00, 0xA4, 0x04, 0x00, 0x0B, 0xA0, 0x00],
        &[0x00, 0xCB, 0x3F, 0xFF, 0x00, 0x00, 0x05, 0x5C],
        &[0x00, 0xC0, 0x00, 0x00, 0x00],
        &[0x80, 0xCB, 0x3F, 0xFF, 0x00],
        &[0x0C, 0xCB, 0x3F, 0xFF, 0x00],
        &[0x00, 0xCB, 0x3F, 0xFF, 0x01, 0x5C, 0x00],
        &[0x00, 0xCB, 0x3F, 0xFF, 0x03, 0x5C, 0x85, 0xFF],
        &[0x00, 0x87, 0x11, 0x9A, 0x02, 0x7C, 0x7F],
        &[0x00, 0x20, 0x00, 0x80, 0x03, 0x31, 0x32, 0x33],
        &[0x00, 0xDB, 0x3F, 0xFF, 0x02, 0x5C, 0x00],
        &[0x00, 0x47, 0x00, 0x9A, 0x03, 0xAC, 0x01, 0x80],
        &[0x00, 0xFF, 0x00, 0x00],
    ];
    for apdu in garbage {
        // Twice: once before SELECT, once after.
        for _ in 0..2 {
            let response = card.transmit(apdu).expect("card alive");
            assert!(response.len() >= 2, "{apdu:02X?}");
            let sw = &response[response.len() - 2..];
            assert_ne!(sw, [0x90, 0x00], "{apdu:02X?} → {response:02X?}");
            select(&card);
        }
    }
    // Random bytes of all lengths: never a panic, always at least a status word.
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..500 {
        let len = rng.gen_range(0..40);
        let mut apdu: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        if let Some(cla) = apdu.first_mut() {
            *cla &= 0x9F; // mostly valid classes, to get past parsing
        }
        let response = card.transmit(&apdu).expect("card alive");
        assert!(response.len() >= 2);
    }
    select(&card);
    assert_eq!(tx(&card, VERIFY_123456).1, 0x9000);
}

#[test]
fn fresh_cards_differ() {
    let a = VirtualCard::start(CardStorage::Memory).unwrap();
    let b = VirtualCard::start(CardStorage::Memory).unwrap();
    select(&a);
    select(&b);
    let (chuid_a, sw_a) = tx(&a, GET_CHUID);
    let (chuid_b, sw_b) = tx(&b, GET_CHUID);
    assert_eq!((sw_a, sw_b), (0x9000, 0x9000));
    assert_ne!(chuid_guid(&chuid_a), chuid_guid(&chuid_b));
    assert_ne!(chuid_guid(&chuid_a), [0u8; 16]);
    // Card authentication (9E) public keys differ too.
    let gen = [
        0x00, 0x47, 0x00, 0x9E, 0x05, 0xAC, 0x03, 0x80, 0x01, 0x11, 0x00,
    ];
    authenticate_admin(&a);
    authenticate_admin(&b);
    let (key_a, sw_a) = tx(&a, &gen);
    let (key_b, sw_b) = tx(&b, &gen);
    assert_eq!((sw_a, sw_b), (0x9000, 0x9000));
    assert_ne!(key_a, key_b);
    // The GUID stays across resets.
    a.reset().unwrap();
    select(&a);
    assert_eq!(tx(&a, GET_CHUID).0, chuid_a);
}

#[test]
fn factory_reset_gives_a_new_guid() {
    let card = VirtualCard::start(CardStorage::Memory).unwrap();
    select(&card);
    let (before, _) = tx(&card, GET_CHUID);
    for _ in 0..3 {
        tx(&card, VERIFY_WRONG);
    }
    assert_eq!(tx(&card, VERIFY_STATUS).1, 0x63C0, "PIN blocked");
    assert_eq!(tx(&card, &[0x00, 0xFB, 0x00, 0x00]).1, 0x9000);
    let (after, sw) = tx(&card, GET_CHUID);
    assert_eq!(sw, 0x9000);
    assert_ne!(chuid_guid(&before), chuid_guid(&after));
    assert_eq!(tx(&card, VERIFY_123456).1, 0x9000);
}

#[test]
fn directory_storage_persists() {
    let dir = tempfile::tempdir().unwrap();
    let storage = CardStorage::Directory(dir.path().join("card"));
    let chuid = {
        let card = VirtualCard::start(storage.clone()).unwrap();
        // One card per directory.
        assert!(matches!(
            VirtualCard::start(storage.clone()),
            Err(VirtualCardError::StorageInUse(_))
        ));
        select(&card);
        let (chuid, sw) = tx(&card, GET_CHUID);
        assert_eq!(sw, 0x9000);
        // Change the PIN to 654321 (CHANGE REFERENCE: old || new).
        let mut change = vec![0x00, 0x24, 0x00, 0x80, 0x10];
        change.extend_from_slice(&VERIFY_123456[5..]);
        change.extend_from_slice(&VERIFY_WRONG[5..]);
        assert_eq!(tx(&card, &change).1, 0x9000);
        chuid
    };
    let card = VirtualCard::start(storage.clone()).unwrap();
    select(&card);
    assert_eq!(tx(&card, GET_CHUID), (chuid.clone(), 0x9000));
    assert_eq!(
        tx(&card, VERIFY_STATUS).1,
        0x63C3,
        "not verified after restart"
    );
    assert_eq!(tx(&card, VERIFY_WRONG).1, 0x9000, "new PIN kept");
    drop(card);
    // A file that is not a card image is refused, not mounted.
    let image = dir.path().join("card").join(INTERNAL_IMAGE);
    std::fs::write(&image, b"junk").unwrap();
    assert!(matches!(
        VirtualCard::start(storage.clone()),
        Err(VirtualCardError::NotACardImage { .. })
    ));
    // Right size, but no file system in it: a mount error, not a panic.
    std::fs::write(&image, vec![0u8; STORAGE_AREA_LEN as usize]).unwrap();
    assert!(matches!(
        VirtualCard::start(storage),
        Err(VirtualCardError::Mount(_))
    ));
}

#[test]
fn memory_storage_survives_resets() {
    let card = VirtualCard::start(CardStorage::Memory).unwrap();
    select(&card);
    let (chuid, _) = tx(&card, GET_CHUID);
    let mut change = vec![0x00, 0x24, 0x00, 0x80, 0x10];
    change.extend_from_slice(&VERIFY_123456[5..]);
    change.extend_from_slice(&VERIFY_WRONG[5..]);
    assert_eq!(tx(&card, &change).1, 0x9000);
    card.reset().unwrap();
    select(&card);
    assert_eq!(tx(&card, GET_CHUID).0, chuid);
    assert_eq!(tx(&card, VERIFY_123456).1, 0x63C2);
    assert_eq!(tx(&card, VERIFY_WRONG).1, 0x9000);
}

#[test]
fn usable_from_several_threads() {
    let card = std::sync::Arc::new(VirtualCard::start(CardStorage::Memory).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let card = card.clone();
            std::thread::spawn(move || {
                for _ in 0..20 {
                    let (_, sw) = tx(&card, SELECT_SHORT);
                    assert_eq!(sw, 0x9000);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn drop_stops_the_thread() {
    let card = VirtualCard::start(CardStorage::Memory).unwrap();
    select(&card);
    drop(card); // joins; a hang here fails the test run
}

#[test]
fn full_storage_is_an_error_not_a_dead_card() {
    let card = VirtualCard::start(CardStorage::Memory).unwrap();
    select(&card);
    authenticate_admin(&card);
    let object = vec![0x5A; 3000];
    let mut statuses = Vec::new();
    // Retired certificate containers 5FC10D..5FC120: 20 × 3 KB, more than the 64 KiB area.
    for tag in 0x0Du8..=0x20 {
        let mut data = vec![0x5C, 0x03, 0x5F, 0xC1, tag, 0x53, 0x82];
        data.extend_from_slice(&(object.len() as u16).to_be_bytes());
        data.extend_from_slice(&object);
        let mut apdu = vec![0x00, 0xDB, 0x3F, 0xFF, 0x00];
        apdu.extend_from_slice(&(data.len() as u16).to_be_bytes());
        apdu.extend_from_slice(&data);
        let (_, sw) = tx(&card, &apdu);
        statuses.push(sw);
        if sw != 0x9000 {
            // After an error the card may have power-cycled: log in again.
            select(&card);
            authenticate_admin(&card);
        }
    }
    // 6400 once the 64 KiB area is full; the card keeps answering.
    assert!(statuses.contains(&0x6400), "{statuses:04X?}");
    select(&card);
    assert_eq!(tx(&card, GET_CHUID).1, 0x9000);
    // Freeing an object makes room again. (piv-authenticator refuses even the right PIN
    // for the rest of a session that hit a full store; a power cycle clears that.)
    authenticate_admin(&card);
    let delete = [
        0x00, 0xDB, 0x3F, 0xFF, 0x07, 0x5C, 0x03, 0x5F, 0xC1, 0x0D, 0x53, 0x00,
    ];
    assert_eq!(tx(&card, &delete).1, 0x9000);
    card.reset().unwrap();
    select(&card);
    assert_eq!(tx(&card, VERIFY_123456).1, 0x9000);
}

#[test]
fn a_panic_in_the_card_is_a_power_cycle() {
    let card = VirtualCard::start(CardStorage::Memory).unwrap();
    select(&card);
    assert_eq!(tx(&card, VERIFY_123456).1, 0x9000);
    let (reply_tx, reply_rx) = mpsc::sync_channel(1);
    card.requests.send(Request::Crash(reply_tx)).unwrap();
    assert_eq!(reply_rx.recv().unwrap(), SW_EXECUTION_ERROR.to_vec());
    select(&card);
    assert_eq!(
        tx(&card, VERIFY_STATUS).1,
        0x63C3,
        "fresh session after the panic"
    );
}
