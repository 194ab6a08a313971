//! What a key press sends to the program in a terminal: the bytes xterm sends (and so what
//! bash, vim, less and top expect), including application cursor mode and modified keys
//! (`ESC [ 1 ; m A`, with m = 1 + Shift + 2·Alt + 4·Ctrl).

use egui::{Key, Modifiers};

/// The bytes for a key press, or `None` for keys that send nothing by themselves (letters
/// without Ctrl arrive as text instead).
pub fn encode(key: Key, mods: Modifiers, app_cursor: bool) -> Option<Vec<u8>> {
    let m = modifier_param(mods);
    let csi = |end: &str| -> Vec<u8> {
        match m {
            Some(m) => format!("\x1b[1;{m}{end}").into_bytes(),
            None if app_cursor => format!("\x1bO{end}").into_bytes(),
            None => format!("\x1b[{end}").into_bytes(),
        }
    };
    let tilde = |n: u8| -> Vec<u8> {
        match m {
            Some(m) => format!("\x1b[{n};{m}~").into_bytes(),
            None => format!("\x1b[{n}~").into_bytes(),
        }
    };
    // F1–F4 are SS3 P–S unmodified (whatever the cursor mode), CSI 1;m P–S modified.
    let ss3 = |end: &str| -> Vec<u8> {
        match m {
            Some(m) => format!("\x1b[1;{m}{end}").into_bytes(),
            None => format!("\x1bO{end}").into_bytes(),
        }
    };
    let alt_prefixed = |bytes: &[u8]| -> Vec<u8> {
        let mut v = Vec::with_capacity(bytes.len() + 1);
        if mods.alt {
            v.push(0x1b);
        }
        v.extend_from_slice(bytes);
        v
    };
    let bytes = match key {
        Key::ArrowUp => csi("A"),
        Key::ArrowDown => csi("B"),
        Key::ArrowRight => csi("C"),
        Key::ArrowLeft => csi("D"),
        Key::Home => csi("H"),
        Key::End => csi("F"),
        Key::Insert => tilde(2),
        Key::Delete => tilde(3),
        Key::PageUp => tilde(5),
        Key::PageDown => tilde(6),
        Key::F1 => ss3("P"),
        Key::F2 => ss3("Q"),
        Key::F3 => ss3("R"),
        Key::F4 => ss3("S"),
        Key::F5 => tilde(15),
        Key::F6 => tilde(17),
        Key::F7 => tilde(18),
        Key::F8 => tilde(19),
        Key::F9 => tilde(20),
        Key::F10 => tilde(21),
        Key::F11 => tilde(23),
        Key::F12 => tilde(24),
        Key::Enter => alt_prefixed(b"\r"),
        Key::Tab if mods.shift => b"\x1b[Z".to_vec(),
        Key::Tab => alt_prefixed(b"\t"),
        Key::Escape => b"\x1b".to_vec(),
        // Ctrl+Backspace erases a word in most shells when it sends ^H.
        Key::Backspace if mods.ctrl => alt_prefixed(b"\x08"),
        Key::Backspace => alt_prefixed(b"\x7f"),
        _ if mods.ctrl => return control(key, mods),
        _ => return None,
    };
    Some(bytes)
}

/// Ctrl with a letter or one of the punctuation keys that have a control code (^@, ^[, ^\,
/// ^], ^^, ^_); Alt adds an ESC before it.
fn control(key: Key, mods: Modifiers) -> Option<Vec<u8>> {
    let code = match key {
        Key::Space | Key::Num2 => 0x00,
        Key::OpenBracket | Key::Num3 => 0x1b,
        Key::Backslash | Key::Num4 => 0x1c,
        Key::CloseBracket | Key::Num5 => 0x1d,
        Key::Num6 => 0x1e,
        Key::Slash | Key::Minus | Key::Num7 => 0x1f,
        _ => {
            let name = key.name();
            let mut chars = name.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_alphabetic() => (c.to_ascii_uppercase() as u8) & 0x1f,
                _ => return None,
            }
        }
    };
    let mut v = Vec::with_capacity(2);
    if mods.alt {
        v.push(0x1b);
    }
    v.push(code);
    Some(v)
}

/// Typed text: as UTF-8, with an ESC before it when Alt is held (Alt-x is `ESC x`, the meta
/// key bash and emacs read).
pub fn text(typed: &str, alt: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(typed.len() + 1);
    if alt {
        v.push(0x1b);
    }
    v.extend_from_slice(typed.as_bytes());
    v
}

/// Pasted text: line breaks become carriage returns (what Enter sends), and when the program
/// asked for bracketed paste the text is wrapped in `ESC [200~ … ESC [201~` with any end
/// marker inside it removed, so a pasted command is not run by the paste itself.
pub fn paste(pasted: &str, bracketed: bool) -> Vec<u8> {
    let normalised = pasted.replace("\r\n", "\r").replace('\n', "\r");
    if !bracketed {
        return normalised.into_bytes();
    }
    let inner = normalised.replace("\x1b[201~", "");
    let mut v = Vec::with_capacity(inner.len() + 12);
    v.extend_from_slice(b"\x1b[200~");
    v.extend_from_slice(inner.as_bytes());
    v.extend_from_slice(b"\x1b[201~");
    v
}

/// xterm's modifier parameter, `None` without modifiers.
fn modifier_param(mods: Modifiers) -> Option<u8> {
    let m = 1 + u8::from(mods.shift) + 2 * u8::from(mods.alt) + 4 * u8::from(mods.ctrl);
    (m > 1).then_some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: Modifiers = Modifiers::NONE;

    fn enc(key: Key, mods: Modifiers, app: bool) -> Vec<u8> {
        encode(key, mods, app).unwrap_or_else(|| panic!("{key:?} sends something"))
    }

    #[test]
    fn arrows_follow_the_cursor_mode() {
        assert_eq!(enc(Key::ArrowUp, NONE, false), b"\x1b[A");
        assert_eq!(enc(Key::ArrowLeft, NONE, false), b"\x1b[D");
        assert_eq!(enc(Key::ArrowUp, NONE, true), b"\x1bOA");
        assert_eq!(enc(Key::Home, NONE, true), b"\x1bOH");
        assert_eq!(enc(Key::End, NONE, false), b"\x1b[F");
    }

    #[test]
    fn modified_keys_carry_xterms_parameter() {
        assert_eq!(enc(Key::ArrowRight, Modifiers::CTRL, false), b"\x1b[1;5C");
        assert_eq!(enc(Key::ArrowRight, Modifiers::CTRL, true), b"\x1b[1;5C");
        assert_eq!(enc(Key::ArrowUp, Modifiers::SHIFT, false), b"\x1b[1;2A");
        assert_eq!(enc(Key::ArrowUp, Modifiers::ALT, false), b"\x1b[1;3A");
        assert_eq!(enc(Key::Delete, Modifiers::CTRL, false), b"\x1b[3;5~");
        assert_eq!(enc(Key::F1, Modifiers::SHIFT, false), b"\x1b[1;2P");
    }

    #[test]
    fn editing_and_paging_keys() {
        assert_eq!(enc(Key::Delete, NONE, false), b"\x1b[3~");
        assert_eq!(enc(Key::Insert, NONE, false), b"\x1b[2~");
        assert_eq!(enc(Key::PageUp, NONE, false), b"\x1b[5~");
        assert_eq!(enc(Key::PageDown, NONE, false), b"\x1b[6~");
        assert_eq!(enc(Key::Tab, NONE, false), b"\t");
        assert_eq!(enc(Key::Tab, Modifiers::SHIFT, false), b"\x1b[Z");
        assert_eq!(enc(Key::Escape, NONE, false), b"\x1b");
        assert_eq!(enc(Key::Enter, NONE, false), b"\r");
        assert_eq!(enc(Key::Backspace, NONE, false), b"\x7f");
        assert_eq!(enc(Key::Backspace, Modifiers::CTRL, false), b"\x08");
    }

    #[test]
    fn function_keys_are_xterms() {
        let expected: [&[u8]; 12] = [
            b"\x1bOP",
            b"\x1bOQ",
            b"\x1bOR",
            b"\x1bOS",
            b"\x1b[15~",
            b"\x1b[17~",
            b"\x1b[18~",
            b"\x1b[19~",
            b"\x1b[20~",
            b"\x1b[21~",
            b"\x1b[23~",
            b"\x1b[24~",
        ];
        let keys = [
            Key::F1,
            Key::F2,
            Key::F3,
            Key::F4,
            Key::F5,
            Key::F6,
            Key::F7,
            Key::F8,
            Key::F9,
            Key::F10,
            Key::F11,
            Key::F12,
        ];
        for (key, want) in keys.into_iter().zip(expected) {
            assert_eq!(enc(key, NONE, false), want, "{key:?}");
            assert_eq!(enc(key, NONE, true), want, "{key:?} in app cursor mode");
        }
    }

    #[test]
    fn ctrl_letters_are_control_codes() {
        assert_eq!(enc(Key::A, Modifiers::CTRL, false), [0x01]);
        assert_eq!(enc(Key::C, Modifiers::CTRL, false), [0x03]);
        assert_eq!(enc(Key::D, Modifiers::CTRL, false), [0x04]);
        assert_eq!(enc(Key::Z, Modifiers::CTRL, false), [0x1a]);
        assert_eq!(enc(Key::Space, Modifiers::CTRL, false), [0x00]);
        assert_eq!(enc(Key::OpenBracket, Modifiers::CTRL, false), [0x1b]);
        assert_eq!(enc(Key::Backslash, Modifiers::CTRL, false), [0x1c]);
        // Ctrl+Alt+letter is ESC then the control code.
        let ctrl_alt = Modifiers {
            alt: true,
            ctrl: true,
            ..Default::default()
        };
        assert_eq!(enc(Key::B, ctrl_alt, false), [0x1b, 0x02]);
        // A letter without Ctrl comes as text, not as a key.
        assert_eq!(encode(Key::A, NONE, false), None);
        assert_eq!(encode(Key::A, Modifiers::SHIFT, false), None);
    }

    #[test]
    fn alt_text_is_meta_prefixed() {
        assert_eq!(text("x", true), b"\x1bx");
        assert_eq!(text("é", false), "é".as_bytes());
        assert_eq!(enc(Key::Enter, Modifiers::ALT, false), b"\x1b\r");
    }

    #[test]
    fn paste_is_bracketed_only_when_asked_and_cannot_end_itself() {
        assert_eq!(paste("ls\nrm -rf x\n", false), b"ls\rrm -rf x\r");
        assert_eq!(paste("a\r\nb", true), b"\x1b[200~a\rb\x1b[201~");
        assert_eq!(
            paste("evil\x1b[201~; rm -rf /", true),
            b"\x1b[200~evil; rm -rf /\x1b[201~"
        );
    }
}
