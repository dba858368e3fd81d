//! The reference console as a real process that tests may kill (SIGKILL) and start
//! again, with any `serve` arguments.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::console_support::console_binary;

/// The real console binary; `kill` is SIGKILL, and `start` again reuses the port.
pub struct Console {
    child: Child,
    pub dir: PathBuf,
    pub port: u16,
}

impl Console {
    pub fn start(dir: &Path, port: u16) -> Console {
        Self::start_with(dir, port, &[])
    }

    /// With further `serve` arguments (e.g. `--bundle-hours 0`).
    pub fn start_with(dir: &Path, port: u16, extra: &[&str]) -> Console {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut child = Command::new(console_binary())
                .args(["serve", "--data"])
                .arg(dir)
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("start cardstation-console");
            let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
            let listening = lines
                .by_ref()
                .map_while(Result::ok)
                .any(|l| l.starts_with("listening on"));
            if listening {
                std::thread::spawn(move || for _ in lines {});
                return Console {
                    child,
                    dir: dir.to_path_buf(),
                    port,
                };
            }
            // The port may still be held by the killed one for a moment.
            let _ = child.wait();
            assert!(Instant::now() < deadline, "the console did not start again");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGKILL: no graceful shutdown, requests in flight are cut.
    pub fn kill(mut self) -> (PathBuf, u16) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.dir.clone(), self.port)
    }

    pub fn fingerprints(&self) -> Vec<String> {
        let conn = rusqlite::Connection::open(self.dir.join("console.db")).expect("console db");
        let mut stmt = conn
            .prepare("SELECT sha256 FROM certificates ORDER BY sha256")
            .expect("query");
        stmt.query_map([], |r| r.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("fingerprints")
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
