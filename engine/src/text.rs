//! Small text helpers the human renderings share.

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `s` cut to at most `n` characters, on one line, with `…` where it was cut.
pub fn clip(s: &str, n: usize) -> String {
    let one = s.replace('\n', " | ");
    match one.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", one.get(..i).unwrap_or("")),
        None => one,
    }
}
