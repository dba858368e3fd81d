//! The workspace's programs as the tests start them, and free loopback ports.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The directory of the running test's profile (target/debug): a test binary lies in
/// its deps/.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let deps = exe.parent().expect("the test's directory");
    deps.parent().expect("the profile directory").to_path_buf()
}

/// The workspace program `name` (`cardstation`, `cardstation-console`,
/// `cardstation-gateway`; each is the binary of the package of that name) from this
/// test's target directory. Cargo gives a test `CARGO_BIN_EXE_` only for its own
/// package, and `cargo test` does not build another crate's executable: so it is built
/// here, once per test process, with the same cargo and target directory (cargo's lock
/// serialises test processes; an up-to-date binary costs a second).
pub fn binary(name: &str) -> PathBuf {
    static BUILT: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let profile = profile_dir();
    let path = profile.join(name);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    let built = built.get_or_insert_with(HashSet::new);
    if !built.contains(name) {
        let target = profile.parent().expect("the target directory");
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "--quiet", "-p", name, "--bin", name])
            .arg("--manifest-path")
            .arg(manifest)
            .env("CARGO_TARGET_DIR", target);
        if profile.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        let status = cargo
            .status()
            .unwrap_or_else(|e| panic!("run cargo to build {name}: {e}"));
        assert!(status.success(), "building {name} failed");
        built.insert(name.to_string());
    }
    assert!(
        path.exists(),
        "{} is missing after building it",
        path.display()
    );
    path
}
