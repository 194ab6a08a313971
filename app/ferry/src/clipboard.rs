//! Copying text from places that have no window (the tray's menu). On X11 the clipboard is
//! owned by a process until another one takes it, so the text is set from a thread of its own
//! that waits (arboard's `wait`) until then.

/// Puts `text` on the clipboard, in the background. Failures are logged: there may be no
/// display at all (`ferry daemon` over SSH).
pub fn copy(text: String) {
    let spawned = std::thread::Builder::new()
        .name("ferry-clipboard".into())
        .spawn(move || {
            let result = arboard::Clipboard::new().and_then(|mut clipboard| {
                #[cfg(target_os = "linux")]
                {
                    use arboard::SetExtLinux as _;
                    clipboard.set().wait().text(text)
                }
                #[cfg(not(target_os = "linux"))]
                {
                    clipboard.set_text(text)
                }
            });
            if let Err(e) = result {
                tracing::warn!("could not copy to the clipboard: {e}");
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("could not copy to the clipboard: {e}");
    }
}
