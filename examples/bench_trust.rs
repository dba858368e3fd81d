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
        _ => Err("usage: bench_trust lookup|apply DATA_DIR CONFIG [DELTA_FILE]".into()),
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
