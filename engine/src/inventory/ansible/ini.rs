//! The INI form: `[group]`, `[group:children]`, `[group:vars]`, and host lines with
//! `key=value` variables (quoted values kept as strings).

use super::*;

/// Splits an INI host line into words, honouring quotes and dropping a trailing `# comment`.
pub(super) fn words(line: &str) -> Result<Vec<(String, bool)>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                let q = c;
                in_word = true;
                quoted = true;
                loop {
                    match chars.next() {
                        None => return Err(format!("unclosed quote {q}")),
                        Some(x) if x == q => break,
                        Some('\\') if q == '"' => match chars.next() {
                            Some(e) => cur.push(e),
                            None => return Err("unclosed quote \"".into()),
                        },
                        Some(x) => cur.push(x),
                    }
                }
            }
            '#' if !in_word => break,
            c if c.is_whitespace() => {
                if in_word {
                    out.push((std::mem::take(&mut cur), quoted));
                    in_word = false;
                    quoted = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push((cur, quoted));
    }
    Ok(out)
}

/// The value a variable on a host line spells, as Ansible reads it: `[..]` lists are lists,
/// unquoted numbers and booleans are typed, anything else (and quoted scalars) is text.
pub(super) fn ini_value(raw: &str, quoted: bool) -> Value {
    let t = raw.trim();
    if t.starts_with('[') && t.ends_with(']') {
        if let Ok(v @ Value::Array(_)) = serde_json::from_str::<Value>(&t.replace('\'', "\"")) {
            return v;
        }
    }
    if quoted {
        return Value::String(raw.to_string());
    }
    infer_scalar(t)
}

pub(super) enum Section {
    Hosts(usize),
    Vars(usize),
    Children(usize),
}

/// Reads an Ansible INI inventory.
pub fn read_ini(text: &str) -> Result<Vec<RawHost>, Vec<Problem>> {
    let mut b = Builder::default();
    let ungrouped = b.group("ungrouped");
    let mut section = Section::Hosts(ungrouped);
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let s = raw.trim();
        if s.is_empty() || s.starts_with('#') || s.starts_with(';') {
            continue;
        }
        if s.starts_with('[') {
            let Some(inner) = s.strip_prefix('[').and_then(|x| x.split_once(']')) else {
                b.problems.push(Problem::at(
                    line,
                    format!("section header `{s}` has no `]`"),
                ));
                continue;
            };
            let (inner, rest) = inner;
            let rest = rest.trim();
            if !rest.is_empty() && !rest.starts_with('#') && !rest.starts_with(';') {
                b.problems.push(Problem::at(
                    line,
                    format!("unexpected `{rest}` after `[{inner}]`"),
                ));
            }
            let (name, kind) = match inner.trim().rsplit_once(':') {
                Some((g, k)) => (g.trim(), Some(k.trim())),
                None => (inner.trim(), None),
            };
            if name.is_empty() || name.contains(char::is_whitespace) {
                b.problems.push(Problem::at(
                    line,
                    format!("`[{inner}]` is not a valid group name"),
                ));
                continue;
            }
            let g = b.group(name);
            section = match kind {
                None => Section::Hosts(g),
                Some("vars") => Section::Vars(g),
                Some("children") => Section::Children(g),
                Some(other) => {
                    b.problems.push(Problem::at(
                        line,
                        format!("unknown section kind `:{other}`; expected `:vars` or `:children`"),
                    ));
                    Section::Hosts(g)
                }
            };
            continue;
        }
        match section {
            Section::Vars(g) => {
                let Some((k, v)) = s.split_once('=') else {
                    b.problems.push(Problem::at(
                        line,
                        format!("expected `key=value`, found `{s}`"),
                    ));
                    continue;
                };
                let ws = match words(v) {
                    Ok(w) => w,
                    Err(e) => {
                        b.problems.push(Problem::at(line, e));
                        continue;
                    }
                };
                // As in Ansible, `:vars` values are strings.
                let value = Value::String(
                    ws.iter()
                        .map(|(w, _)| w.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                );
                if let Some(group) = b.groups.get_mut(g) {
                    group.vars.insert(k.trim().to_string(), value);
                }
            }
            Section::Children(g) => {
                let ws = words(s).unwrap_or_default();
                match ws.as_slice() {
                    [(child, _)] => b.add_child(g, child, line),
                    _ => b.problems.push(Problem::at(
                        line,
                        format!("a `:children` section lists one group per line, found `{s}`"),
                    )),
                }
            }
            Section::Hosts(g) => {
                let ws = match words(s) {
                    Ok(w) => w,
                    Err(e) => {
                        b.problems.push(Problem::at(line, e));
                        continue;
                    }
                };
                let Some(((pattern, _), rest)) = ws.split_first() else {
                    continue;
                };
                let mut vars = Map::new();
                let mut ok = true;
                for (w, q) in rest {
                    match w.split_once('=') {
                        Some((k, v)) if !k.is_empty() => {
                            vars.insert(k.to_string(), ini_value(v, *q));
                        }
                        _ => {
                            b.problems.push(Problem::at(
                                line,
                                format!("expected `key=value` after the host, found `{w}`"),
                            ));
                            ok = false;
                        }
                    }
                }
                if ok {
                    add_pattern(&mut b, g, pattern, line, vars);
                }
            }
        }
    }
    b.finish()
}

// ---------------------------------------------------------------------------------------------
// YAML
