//! The window icon: the same artwork as the desktop entry and the packages
//! (`assets/cardstation.svg`, rendered by `packaging/render-icons`).

use eframe::egui::IconData;

/// The 256 px hicolor PNG, embedded so the window needs no file at run time.
const ICON_PNG: &[u8] = include_bytes!("../../assets/icons/hicolor/256x256/apps/cardstation.png");

/// The window icon, or `None` if the embedded PNG does not decode (the window then
/// opens with the platform's default icon).
pub fn window_icon() -> Option<IconData> {
    match eframe::icon_data::from_png_bytes(ICON_PNG) {
        Ok(icon) => Some(icon),
        Err(e) => {
            tracing::warn!("window icon not decoded: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn embedded_icon_decodes_at_256_px() {
        let icon = super::window_icon().expect("embedded icon decodes");
        assert_eq!((icon.width, icon.height), (256, 256));
        assert_eq!(icon.rgba.len(), 256 * 256 * 4);
    }
}
