//! Certificate export through the native save dialog, on a thread of its own:
//! the dialog blocks, and the window must not.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;

use cardstation_pki::certificate::to_pem;

use super::{AppEvent, Waker};

pub fn save_with_dialog(
    reader: String,
    der: Vec<u8>,
    default_name: PathBuf,
    events: Sender<AppEvent>,
    waker: Waker,
) {
    let spawned = std::thread::Builder::new()
        .name("export dialog".into())
        .spawn(move || {
            let result = pick_and_write(&der, &default_name);
            let _ = events.send(AppEvent::Exported { reader, result });
            waker.wake();
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the export dialog: {e}");
    }
}

fn pick_and_write(der: &[u8], default_name: &Path) -> Result<String, String> {
    if !dialog_available() {
        return Err(
            "No file dialog is available on this desktop. Install one (`sudo apt-get install zenity`) \
             or export from the command line: cardstation export --reader R --out FILE"
                .into(),
        );
    }
    let wants_der = default_name.extension().is_some_and(|e| e == "der");
    let dialog = rfd::FileDialog::new()
        .set_title("Export certificate")
        .set_file_name(default_name.to_string_lossy());
    let dialog = if wants_der {
        dialog
            .add_filter("DER certificate", &["der", "cer"])
            .add_filter("PEM certificate", &["pem", "crt"])
    } else {
        dialog
            .add_filter("PEM certificate", &["pem", "crt"])
            .add_filter("DER certificate", &["der", "cer"])
    };
    let Some(path) = dialog.save_file() else {
        return Err("Export cancelled.".into());
    };
    write_certificate(&path, der, wants_der)?;
    Ok(path.display().to_string())
}

/// Write PEM or DER: the file's extension decides, else the operator's choice.
pub fn write_certificate(path: &Path, der: &[u8], default_der: bool) -> Result<(), String> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let as_der = match ext.as_deref() {
        Some("der") | Some("cer") => true,
        Some("pem") | Some("crt") => false,
        _ => default_der,
    };
    let bytes = if as_der {
        der.to_vec()
    } else {
        to_pem(der).into_bytes()
    };
    std::fs::write(path, bytes).map_err(|e| format!("Cannot write {}: {e}", path.display()))
}

/// rfd needs an XDG desktop portal on the session bus or zenity; without either
/// it silently returns "no file", which would look like a cancel.
fn dialog_available() -> bool {
    if cfg!(not(target_os = "linux")) {
        return true;
    }
    let portal = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some();
    let zenity = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("zenity").is_file()))
        .unwrap_or(false);
    portal || zenity
}
