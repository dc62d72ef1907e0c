//! One escaping rule for every string that comes from outside (an image, an archive, a
//! registry, a runtime, the kernel) on its way to a terminal or a file: control characters
//! (C0, DEL, C1) and the invisible characters that reorder or break text (bidi overrides and
//! isolates, LRM/RLM/ALM, the Unicode line and paragraph separators) never reach the output raw.
//! Columns, tables and errors show them as `\xNN` / `\uNNNN`; JSON and YAML escape them in
//! their own syntax, so the value a parser reads back is unchanged.

use std::borrow::Cow;

/// True for a character that must not reach an output raw: C0 and C1 controls, DEL
/// (Unicode category Cc), and U+061C, U+200E, U+200F, U+2028, U+2029, U+202A–U+202E,
/// U+2066–U+2069 (Unicode's bidi controls, UAX #9 §2, and the line/paragraph separators).
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `s` with every unsafe character written as an escape: `\n`, `\t`, `\r`, `\xNN` for the
/// other controls, `\uNNNN` for the rest. Borrowed when there is nothing to escape.
pub fn escape_control(s: &str) -> Cow<'_, str> {
    escape_except(s, &[])
}

/// Like [`escape_control`], but keeps the characters of `keep` (e.g. `\n` in a multi-line
/// error message) as they are.
pub fn escape_except<'a>(s: &'a str, keep: &[char]) -> Cow<'a, str> {
    if !s.chars().any(|c| is_unsafe(c) && !keep.contains(&c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if keep.contains(&c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if is_unsafe(c) => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(escape_control("plain é"), "plain é");
        assert_eq!(escape_control("a\nb\x1b[2J"), "a\\nb\\x1b[2J");
        assert_eq!(escape_control("x\u{85}y\u{9b}z\x7f"), "x\\x85y\\x9bz\\x7f");
        assert_eq!(escape_control("evil\u{202e}txt.exe"), "evil\\u202etxt.exe");
        assert_eq!(
            escape_control("\u{2066}a\u{2069}\u{2028}"),
            "\\u2066a\\u2069\\u2028"
        );
        assert_eq!(
            escape_except("l1\nl2\t\x07", &['\n', '\t']),
            "l1\nl2\t\\x07"
        );
    }
}
