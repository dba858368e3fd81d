//! Saving files the operator asked for (certificates, diagnostic bundles) through
//! the desktop's save dialog, on a thread of its own: the dialog blocks, the window
//! must not. Where the desktop has no dialog, the file goes to the Documents folder
//! under its suggested name, and the window says where.

use std::path::{Path, PathBuf};

use cardstation_pki::certificate::to_pem;

use super::events::Saved;

/// What kind of file is saved: title and filters for the dialog.
pub struct FileKind {
    pub title: &'static str,
    /// (description, extensions), the first is offered first.
    pub filters: Vec<(&'static str, &'static [&'static str])>,
}

impl FileKind {
    pub fn certificate(der: bool) -> Self {
        let pem = ("PEM certificate", &["pem", "crt"][..]);
        let derf = ("DER certificate", &["der", "cer"][..]);
        FileKind {
            title: "Export certificate",
            filters: if der {
                vec![derf, pem]
            } else {
                vec![pem, derf]
            },
        }
    }
}

/// Ask where, then write with `write`. Blocking: call it off the UI thread.
pub fn save(
    kind: &FileKind,
    suggested: &Path,
    write: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<Saved, String> {
    if dialog_available() {
        save_with_dialog(kind, suggested, write)
    } else {
        save_without_dialog(&fallback_dir(), suggested, write)
    }
}

/// No dialog on this desktop: the file goes to `dir` under its suggested name.
fn save_without_dialog(
    dir: &Path,
    suggested: &Path,
    write: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<Saved, String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("Cannot create the folder {}: {e}", dir.display()))?;
    let path = unused_name(dir, suggested);
    write(&path)?;
    Ok(Saved {
        path: path.display().to_string(),
        without_dialog: true,
    })
}

fn save_with_dialog(
    kind: &FileKind,
    suggested: &Path,
    write: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<Saved, String> {
    let mut dialog = rfd::FileDialog::new()
        .set_title(kind.title)
        .set_file_name(suggested.to_string_lossy());
    for (name, ext) in &kind.filters {
        dialog = dialog.add_filter(*name, ext);
    }
    let Some(path) = dialog.save_file() else {
        return Err("Not saved: the save dialog was closed.".into());
    };
    write(&path)?;
    Ok(Saved {
        path: path.display().to_string(),
        without_dialog: false,
    })
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

/// The Documents folder, else the home folder, else the working directory.
fn fallback_dir() -> PathBuf {
    directories::UserDirs::new()
        .and_then(|u| {
            u.document_dir()
                .map(Path::to_path_buf)
                .or_else(|| Some(u.home_dir().to_path_buf()))
        })
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `name`, or `name (2)` and so on: a saved file never overwrites another.
fn unused_name(dir: &Path, name: &Path) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    let stem = name
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = name
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (2..)
        .map(|n| dir.join(format!("{stem} ({n}){ext}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// rfd needs an XDG desktop portal or zenity; without either it returns "no file"
/// at once, which would look like a cancel.
fn dialog_available() -> bool {
    if cfg!(not(target_os = "linux")) {
        return true;
    }
    let on_path = |exe: &str| {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(exe).is_file()))
            .unwrap_or(false)
    };
    // A session bus alone is not a portal: the portal service must be installed too.
    let portal = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
        && [
            "/usr/libexec/xdg-desktop-portal",
            "/usr/lib/xdg-desktop-portal",
        ]
        .iter()
        .any(|p| Path::new(p).exists());
    portal || on_path("zenity")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn without_a_dialog_the_certificate_goes_to_the_folder_under_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let docs = dir.path().join("Documents");
        let name = Path::new("card-1-9e-abcd.pem");
        let der = b"\x30\x03\x02\x01\x01";
        let first = save_without_dialog(&docs, name, |p| write_certificate(p, der, false)).unwrap();
        assert!(first.without_dialog);
        assert_eq!(first.path, docs.join(name).display().to_string());
        let text = std::fs::read_to_string(docs.join(name)).unwrap();
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----"), "{text}");
        let second =
            save_without_dialog(&docs, name, |p| write_certificate(p, der, false)).unwrap();
        assert_eq!(
            second.path,
            docs.join("card-1-9e-abcd (2).pem").display().to_string()
        );
    }

    #[test]
    fn a_saved_file_never_overwrites_another() {
        let dir = tempfile::tempdir().unwrap();
        let name = Path::new("card-1-9e-abcd.pem");
        assert_eq!(unused_name(dir.path(), name), dir.path().join(name));
        std::fs::write(dir.path().join(name), "x").unwrap();
        assert_eq!(
            unused_name(dir.path(), name),
            dir.path().join("card-1-9e-abcd (2).pem")
        );
    }
}
