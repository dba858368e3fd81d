//! How the CLI reports success and failure: words for people, JSON for scripts.

use serde::Serialize;

pub use cardstation::app::failure::{ErrorCode, Failure};

/// Print the failure (stderr for people, stdout JSON for scripts) and return the exit code.
pub fn report(f: &Failure, json: bool) -> i32 {
    if f.reported {
        return 1;
    }
    if json {
        print_json(&serde_json::json!({"ok": false, "error": f}));
    } else {
        eprintln!("error: {}", f.message);
    }
    1
}

pub fn print_json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => line(format_args!("{text}")),
        Err(e) => eprintln!("error: cannot encode output as JSON: {e}"),
    }
}

/// Write one line to standard output. When the reader went away (`… | head -1`)
/// the command ends at once, quietly and successfully, as Unix tools do; any other
/// output error ends it with a message. Output comes after the action is done and
/// recorded, so nothing is left half-written.
pub fn line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        exit_on_output_error(&e);
    }
}

/// End the process after standard output failed (see [`line`]).
pub fn exit_on_output_error(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write the output: {e}");
    std::process::exit(1);
}

/// `println!` for command output, through [`line`]: no panic on a closed pipe.
macro_rules! say {
    () => {
        $crate::cli::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::line(format_args!($($arg)*))
    };
}
pub(crate) use say;
