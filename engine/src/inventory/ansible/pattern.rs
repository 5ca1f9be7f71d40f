//! Host patterns: `host:port`, and ranges such as `web[01:20]` or `db-[a:c]`.

use super::*;

pub(super) fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Host patterns

/// Splits `host:port` (not IPv6, not inside a range) into its parts.
pub(super) fn split_port(pattern: &str) -> Result<(&str, Option<u16>), String> {
    let mut depth = 0i32;
    let mut colons = Vec::new();
    for (i, c) in pattern.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ':' if depth == 0 => colons.push(i),
            _ => {}
        }
    }
    match colons.as_slice() {
        [i] => {
            let (host, port) = (&pattern[..*i], &pattern[i + 1..]);
            let p: u16 = port
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("`{pattern}`: `{port}` is not a port number"))?;
            Ok((host, Some(p)))
        }
        _ => Ok((pattern, None)),
    }
}

/// Expands Ansible host ranges: `web[01:20]`, `db-[a:f]`, `node[0:30:10]`, several per name.
pub fn expand_range(pattern: &str) -> Result<Vec<String>, String> {
    let Some(open) = pattern.find('[') else {
        if pattern.contains(']') {
            return Err(format!("`{pattern}` has a `]` without a `[`"));
        }
        return Ok(vec![pattern.to_string()]);
    };
    let close = pattern[open..]
        .find(']')
        .map(|i| open + i)
        .ok_or_else(|| format!("`{pattern}` has a `[` without a `]`"))?;
    let (head, inner, tail) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    let parts: Vec<&str> = inner.split(':').collect();
    let (beg, end, step) = match parts.as_slice() {
        [b, e] => (*b, *e, 1usize),
        [b, e, s] => (
            *b,
            *e,
            s.parse::<usize>()
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| format!("`{pattern}`: range step `{s}` is not a positive number"))?,
        ),
        _ => {
            return Err(format!(
                "`{pattern}`: a range looks like `[01:20]` or `[a:f]`"
            ))
        }
    };
    let mut items = Vec::new();
    if let (Ok(b), Ok(e)) = (beg.parse::<u64>(), end.parse::<u64>()) {
        let width = if beg.len() > 1 && beg.starts_with('0') {
            if beg.len() != end.len() {
                return Err(format!(
                    "`{pattern}`: a zero-padded range needs bounds of equal width"
                ));
            }
            beg.len()
        } else {
            0
        };
        if b > e {
            return Err(format!(
                "`{pattern}`: range start `{beg}` is after its end `{end}`"
            ));
        }
        if (e - b) / step as u64 >= MAX_RANGE_HOSTS as u64 {
            return Err(format!(
                "`{pattern}` expands to more than {MAX_RANGE_HOSTS} hosts"
            ));
        }
        let mut i = b;
        while i <= e {
            items.push(format!("{i:0width$}"));
            i += step as u64;
        }
    } else {
        let (mut bc, mut ec) = (beg.chars(), end.chars());
        match (bc.next(), bc.next(), ec.next(), ec.next()) {
            (Some(b), None, Some(e), None)
                if b.is_ascii_alphabetic() && e.is_ascii_alphabetic() =>
            {
                if b > e {
                    return Err(format!(
                        "`{pattern}`: range start `{b}` is after its end `{e}`"
                    ));
                }
                items.extend((b..=e).step_by(step).map(String::from));
            }
            _ => {
                return Err(format!(
                    "`{pattern}`: range bounds must both be numbers or both single letters"
                ))
            }
        }
    }
    let tails = expand_range(tail)?;
    if items.len().saturating_mul(tails.len()) > MAX_RANGE_HOSTS {
        return Err(format!(
            "`{pattern}` expands to more than {MAX_RANGE_HOSTS} hosts"
        ));
    }
    let mut out = Vec::with_capacity(items.len() * tails.len());
    for i in &items {
        for t in &tails {
            out.push(format!("{head}{i}{t}"));
        }
    }
    Ok(out)
}

/// A pattern's host names and the port it names, if any.
pub(super) fn hosts_of(pattern: &str) -> Result<(Vec<String>, Option<u16>), String> {
    let (p, port) = split_port(pattern)?;
    Ok((expand_range(p)?, port))
}

// ---------------------------------------------------------------------------------------------
// INI
