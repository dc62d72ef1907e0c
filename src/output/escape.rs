/// Control characters from the kernel (a comm or an argument can hold anything) are shown
/// escaped so they cannot move the cursor or fake lines.
pub fn escape_control(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escape_control;

    #[test]
    fn escapes() {
        assert_eq!(escape_control("plain"), "plain");
        assert_eq!(escape_control("a\nb\x1b[2J"), "a\\nb\\x1b[2J");
    }
}
