//! Measurements of the held trust bundle in-process; driven by `bench/bundle`.
//!
//! `bench_trust lookup DATA_DIR CONFIG` — load what the station holds (replaying and
//! verifying it from the database, as a fresh process does), then time membership
//! queries against it.
//!
//! `bench_trust apply DATA_DIR CONFIG DELTA_FILE` — load what is held, then time
//!   taking a delta as a running station or gateway does: verify the signature,
//!   check the chain, apply the changes, check the digest of the result.
//!
//! `bench_trust standing BUNDLE_FILE KEY_PEM` — open a full (revocation-only) bundle
//!   as a gateway does, then time the lookup a decision makes: where a certificate
//!   and its key stand (revoked ids, then the CA decides). Also the bytes the held
//!   trust state takes in memory.
//!
//! `bench_trust widths N` — an allow-list of N cards with 32-byte fingerprints (as
//!   signed today) beside the same list at 16 bytes: bundle bytes, memory, lookup.
//!
//! Prints one JSON object on stdout.

use std::path::PathBuf;
use std::time::Instant;

use cardstation::config::{Config, Paths};
use cardstation::console::trust;
use cardstation::store::Store;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match (args.get(1).map(String::as_str), args.get(2), args.get(3)) {
        (Some("lookup"), Some(data), Some(config)) => lookup(data.into(), config.into()),
        (Some("apply"), Some(data), Some(config)) => match args.get(4) {
            Some(delta) => apply(data.into(), config.into(), delta.into()),
            None => Err("usage: bench_trust apply DATA_DIR CONFIG DELTA_FILE".into()),
        },
        (Some("standing"), Some(bundle), Some(key)) => standing(bundle.into(), key.into()),
        (Some("widths"), Some(n), _) => match n.parse() {
            Ok(n) => widths(n),
            Err(_) => Err("usage: bench_trust widths N".into()),
        },
        _ => Err(
            "usage: bench_trust lookup|apply DATA_DIR CONFIG [DELTA_FILE] | standing BUNDLE KEY_PEM | widths N"
                .into(),
        ),
    };
    match result {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

fn open(data: PathBuf, config: PathBuf) -> Result<(Store, p256::ecdsa::VerifyingKey), String> {
    let paths = Paths::resolve(Some(data), Some(config.clone())).map_err(|e| e.to_string())?;
    let config = Config::load(&config, true).map_err(|e| e.to_string())?;
    let store = Store::open(&paths.data_dir.join("station.db")).map_err(|e| e.to_string())?;
    let key = trust::load_key(config.console.bundle_key.as_deref()).map_err(|e| e.to_string())?;
    Ok((store, key))
}

fn apply(data: PathBuf, config: PathBuf, delta: PathBuf) -> Result<serde_json::Value, String> {
    use cardstation_protocol::bundle::{self, Advance};
    let (store, key) = open(data, config)?;
    let view = trust::current(&store, &key)
        .map_err(|e| e.to_string())?
        .ok_or("no trust bundle held")?;
    let bytes = std::fs::read(&delta).map_err(|e| format!("{}: {e}", delta.display()))?;
    const ROUNDS: usize = 20;
    let mut times = Vec::new();
    let mut changed = 0;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let opened = bundle::open(&bytes, &key).map_err(|e| e.to_string())?;
        let advanced =
            bundle::advance(Some(&view), None, opened, None).map_err(|e| e.to_string())?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        if let Advance::Advanced { view: v, .. } = advanced {
            changed = v.lists.allowed().len();
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(serde_json::json!({
        "delta_bytes": bytes.len(),
        "apply_median_ms": times[ROUNDS / 2],
        "apply_max_ms": times[ROUNDS - 1],
        "allowed_after": changed,
    }))
}

fn lookup(data: PathBuf, config: PathBuf) -> Result<serde_json::Value, String> {
    let (store, key) = open(data, config)?;
    let t = Instant::now();
    let view = trust::current(&store, &key)
        .map_err(|e| e.to_string())?
        .ok_or("no trust bundle held")?;
    let load_ms = t.elapsed().as_secs_f64() * 1000.0;
    // Half the queries for held fingerprints, half for fingerprints never seen.
    let held: Vec<String> = view
        .lists
        .allowed()
        .iter()
        .step_by((view.lists.allowed().len() / 1000).max(1))
        .map(hex::encode)
        .collect();
    let absent: Vec<String> = (0..held.len() as u64)
        .map(|i| format!("{:064x}", u64::MAX - i))
        .collect();
    const ROUNDS: usize = 200;
    let t = Instant::now();
    let mut hits = 0usize;
    for _ in 0..ROUNDS {
        for (a, b) in held.iter().zip(&absent) {
            hits += usize::from(view.lists.is_allowed_hex(a));
            hits += usize::from(view.lists.is_allowed_hex(b));
        }
    }
    let queries = ROUNDS * held.len() * 2;
    let query_ns = t.elapsed().as_nanos() as f64 / queries as f64;
    // A second load in the same process answers from memory (rows unchanged).
    let t = Instant::now();
    trust::current(&store, &key).map_err(|e| e.to_string())?;
    let cached_ms = t.elapsed().as_secs_f64() * 1000.0;
    Ok(serde_json::json!({
        "allowed": view.lists.allowed().len(),
        "load_verify_ms": load_ms,
        "cached_load_ms": cached_ms,
        "query_ns": query_ns,
        "queries": queries,
        "hits": hits,
    }))
}

/// Fingerprints that look like SHA-256 output: SHA-256 of a counter.
fn fingerprints(n: usize, salt: &str) -> Vec<[u8; 32]> {
    use sha2::{Digest, Sha256};
    (0..n)
        .map(|i| Sha256::digest(format!("{salt}-{i}")).into())
        .collect()
}

/// Nanoseconds per call of `f` over `inputs`, repeated until a few hundred ms pass.
fn per_call<T>(inputs: &[T], mut f: impl FnMut(&T) -> bool) -> (f64, usize) {
    let mut hits = 0usize;
    let mut calls = 0usize;
    let t = Instant::now();
    while t.elapsed().as_millis() < 300 {
        for x in inputs {
            hits += usize::from(std::hint::black_box(f(x)));
        }
        calls += inputs.len();
    }
    (t.elapsed().as_nanos() as f64 / calls as f64, hits)
}

fn standing(bundle: PathBuf, key: PathBuf) -> Result<serde_json::Value, String> {
    use cardstation_protocol::bundle::{self, Opened};
    use cardstation_protocol::trust_lists::{Standing, TrustLists};
    let bytes = std::fs::read(&bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
    let pem = std::fs::read_to_string(&key).map_err(|e| format!("{}: {e}", key.display()))?;
    let key = bundle::verifying_key_from_pem(&pem).map_err(|e| e.to_string())?;
    let t = Instant::now();
    let Opened::Full(full) = bundle::open(&bytes, &key).map_err(|e| e.to_string())? else {
        return Err("not a full bundle".into());
    };
    let open_ms = t.elapsed().as_secs_f64() * 1000.0;
    let lists: TrustLists = full.lists;
    let authority = lists.authority().ok_or("not a revocation-only bundle")?;
    // A gateway's questions: certificates and keys it meets, most of them good.
    let certs = fingerprints(2000, "cert");
    let keys = fingerprints(2000, "key");
    let pairs: Vec<([u8; 32], [u8; 32])> = certs.into_iter().zip(keys).collect();
    let (ns, refused) = per_call(&pairs, |(c, k)| {
        lists.standing(c, Some(k)) != Standing::ChainDecides
    });
    let held_bytes = 16 * authority.revoked_ids.len()
        + authority.cas.iter().map(Vec::len).sum::<usize>()
        + 32 * (lists.allowed().len() + lists.revoked_keys().len());
    Ok(serde_json::json!({
        "bundle_bytes": bytes.len(),
        "revoked_ids": authority.revoked_ids.len(),
        "held_bytes": held_bytes,
        "open_verify_ms": open_ms,
        "lookup_ns": ns,
        "refused": refused,
    }))
}

fn widths(n: usize) -> Result<serde_json::Value, String> {
    use cardstation_protocol::bundle::{sign_full, Header, Link};
    use cardstation_protocol::trust_lists::{short_id, TrustLists};
    let wide = fingerprints(n, "card");
    let lists = TrustLists::from_unsorted(wide, vec![], vec![]);
    let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let header = Header::for_lists([1; 16], 1, 0, 1, [0; 32], &lists);
    let link = Link {
        version: 1,
        hash: header.hash(),
    };
    let full32 = sign_full(&header, &lists, &[link], &key)
        .map_err(|e| e.to_string())?
        .len();
    // The same bundle with 16-byte entries: 16 bytes fewer per card (the CBOR byte
    // string's length prefix is 5 bytes either way at this size).
    let full16 = full32 - 16 * n;
    let mut narrow: Vec<[u8; 16]> = lists.allowed().iter().map(short_id).collect();
    narrow.sort_unstable();
    let probes32: Vec<[u8; 32]> = lists
        .allowed()
        .iter()
        .step_by((n / 1000).max(1))
        .copied()
        .chain(fingerprints(1000, "absent"))
        .collect();
    let probes16: Vec<[u8; 16]> = probes32.iter().map(short_id).collect();
    let (ns32, _) = per_call(&probes32, |p| lists.allowed().binary_search(p).is_ok());
    let (ns16, _) = per_call(&probes16, |p| narrow.binary_search(p).is_ok());
    Ok(serde_json::json!({
        "cards": n,
        "bundle_bytes_32": full32,
        "bundle_bytes_16": full16,
        "memory_bytes_32": 32 * n,
        "memory_bytes_16": 16 * n,
        "lookup_ns_32": ns32,
        "lookup_ns_16": ns16,
    }))
}
