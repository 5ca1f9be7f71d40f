//! Host selection: shell-style globs and label selectors in the Kubernetes style.
//!
//! A selector is a comma-separated list of requirements that must all hold:
//! `key=value`, `key!=value`, `key in (a, b)`, `key notin (a, b)`, `key` (present and truthy) and
//! `!key` (absent or falsy). Values may be globs (`rack=r1-*`). Keys may be dotted to reach
//! into nested maps (`facts.numa=2`). When a host's field is an array (such as `tags`), the
//! requirement holds when any element matches.

use rhai::plugin::*;
use rhai::{Dynamic, Map};
use std::fmt;

/// A selector that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorError {
    pub selector: String,
    pub message: String,
}

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "selector `{}`: {}", self.selector, self.message)
    }
}

impl std::error::Error for SelectorError {}

#[derive(Debug, Clone)]
enum Op {
    Eq(Vec<glob::Pattern>),
    NotEq(Vec<glob::Pattern>),
    Exists,
    NotExists,
}

#[derive(Debug, Clone)]
struct Requirement {
    key: String,
    op: Op,
}

/// A parsed label selector.
#[derive(Debug, Clone)]
pub struct Selector {
    reqs: Vec<Requirement>,
}

fn pattern(sel: &str, v: &str) -> Result<glob::Pattern, SelectorError> {
    glob::Pattern::new(v.trim()).map_err(|e| SelectorError {
        selector: sel.to_string(),
        message: format!("bad pattern `{v}`: {e}"),
    })
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
}

impl Selector {
    /// Parses a selector. The empty selector matches everything.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let fail = |m: String| SelectorError {
            selector: text.to_string(),
            message: m,
        };
        // Split on commas that are not inside parentheses.
        let mut parts = Vec::new();
        let (mut depth, mut start) = (0i32, 0usize);
        for (i, c) in text.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&text[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
            if depth < 0 {
                return Err(fail("unbalanced `)`".into()));
            }
        }
        if depth != 0 {
            return Err(fail("unbalanced `(`".into()));
        }
        parts.push(&text[start..]);
        let mut reqs = Vec::new();
        for raw in parts {
            let p = raw.trim();
            if p.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                return Err(fail("empty requirement".into()));
            }
            let req = if let Some((k, v)) = p.split_once("!=") {
                Requirement {
                    key: k.trim().into(),
                    op: Op::NotEq(vec![pattern(text, v)?]),
                }
            } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
                Requirement {
                    key: k.trim().into(),
                    op: Op::Eq(vec![pattern(text, v)?]),
                }
            } else if let Some(k) = p.strip_prefix('!') {
                Requirement {
                    key: k.trim().into(),
                    op: Op::NotExists,
                }
            } else if let Some(open) = p.find('(') {
                let head: Vec<&str> = p[..open].split_whitespace().collect();
                let body = p[open + 1..]
                    .strip_suffix(')')
                    .ok_or_else(|| fail(format!("`{p}` must end with `)`")))?;
                let values = body
                    .split(',')
                    .map(|v| pattern(text, v))
                    .collect::<Result<Vec<_>, _>>()?;
                match head.as_slice() {
                    [k, "in"] => Requirement {
                        key: (*k).into(),
                        op: Op::Eq(values),
                    },
                    [k, "notin"] => Requirement {
                        key: (*k).into(),
                        op: Op::NotEq(values),
                    },
                    _ => {
                        return Err(fail(format!(
                            "`{p}` is not `key in (..)` or `key notin (..)`"
                        )))
                    }
                }
            } else {
                Requirement {
                    key: p.into(),
                    op: Op::Exists,
                }
            };
            if !valid_key(&req.key) {
                return Err(fail(format!("`{}` is not a valid key", req.key)));
            }
            reqs.push(req);
        }
        Ok(Selector { reqs })
    }

    /// Whether the labels (a Rhai map, possibly nested) satisfy every requirement.
    pub fn matches(&self, labels: &Map) -> bool {
        self.reqs.iter().all(|r| {
            let value = lookup(labels, &r.key);
            match &r.op {
                Op::Exists => value.map(truthy).unwrap_or(false),
                Op::NotExists => !value.map(truthy).unwrap_or(false),
                Op::Eq(pats) => value.map(|v| any_matches(&v, pats)).unwrap_or(false),
                Op::NotEq(pats) => !value.map(|v| any_matches(&v, pats)).unwrap_or(false),
            }
        })
    }
}

fn lookup(map: &Map, key: &str) -> Option<Dynamic> {
    if let Some(v) = map.get(key) {
        return Some(v.clone());
    }
    let (head, rest) = key.split_once('.')?;
    let inner = map.get(head)?.read_lock::<Map>()?.clone();
    lookup(&inner, rest)
}

fn truthy(v: Dynamic) -> bool {
    if v.is_unit() {
        return false;
    }
    if let Ok(b) = v.as_bool() {
        return b;
    }
    if let Some(s) = v.read_lock::<rhai::ImmutableString>() {
        return !s.is_empty();
    }
    if let Some(a) = v.read_lock::<rhai::Array>() {
        return !a.is_empty();
    }
    true
}

fn any_matches(v: &Dynamic, pats: &[glob::Pattern]) -> bool {
    if let Some(arr) = v.read_lock::<rhai::Array>() {
        return arr.iter().any(|e| any_matches(e, pats));
    }
    let s = v.to_string();
    pats.iter().any(|p| p.matches(&s))
}

// The code `#[export_module]` generates for `&mut` parameters unwraps internally.
#[allow(clippy::unwrap_used)]
#[export_module]
pub mod select_fns {
    use super::Selector;
    use crate::err;
    use rhai::{EvalAltResult, Map};

    /// Whether `text` matches the shell-style glob `pattern` (`*`, `?`, `[a-z]`).
    ///
    /// ```rhai
    /// assert(glob_match("web-*", "web-042"));
    /// assert(glob_match("r[0-9][0-9]", "r07"));
    /// assert(!glob_match("db-*", "web-042"));
    /// ```
    #[rhai_fn(return_raw)]
    pub fn glob_match(pattern: &str, text: &str) -> Result<bool, Box<EvalAltResult>> {
        glob::Pattern::new(pattern)
            .map(|p| p.matches(text))
            .map_err(|e| err(format!("bad glob `{pattern}`: {e}")))
    }

    /// Whether a map of labels (a host, say) satisfies a label selector.
    ///
    /// ```rhai
    /// let host = #{ hardware: "r740", workload: "db", rack: "r1-07", tags: ["canary"] };
    /// assert(selector_match("hardware=r740,workload in (db, cache)", host));
    /// assert(selector_match("rack=r1-*,tags=canary", host));
    /// assert(!selector_match("workload!=db", host));
    /// assert(selector_match("!drained", host));
    /// ```
    #[rhai_fn(return_raw)]
    pub fn selector_match(selector: &str, labels: Map) -> Result<bool, Box<EvalAltResult>> {
        Selector::parse(selector)
            .map(|s| s.matches(&labels))
            .map_err(|e| err(e.to_string()))
    }

    /// Whether a host's `tags` array holds `tag`. Call it as a method (`host.has_tag(t)`) to
    /// avoid copying the host.
    ///
    /// ```rhai
    /// let host = #{ tags: ["no-reboot", "db"] };
    /// assert(host.has_tag("no-reboot"));
    /// assert(!has_tag(#{ name: "h1" }, "no-reboot"));
    /// ```
    pub fn has_tag(host: &mut Map, tag: &str) -> bool {
        host.get("tags")
            .and_then(|t| {
                t.read_lock::<rhai::Array>().map(|a| {
                    a.iter().any(|e| {
                        e.read_lock::<rhai::ImmutableString>()
                            .is_some_and(|s| s.as_str() == tag)
                    })
                })
            })
            .unwrap_or(false)
    }

    /// Whether a host's `tags` array holds any of `tags`.
    ///
    /// ```rhai
    /// let host = #{ tags: ["no-reboot", "db"] };
    /// assert(host.has_any_tag(["legal-hold", "no-reboot"]));
    /// assert(!host.has_any_tag(["legal-hold"]));
    /// ```
    pub fn has_any_tag(host: &mut Map, tags: rhai::Array) -> bool {
        let Some(have) = host.get("tags").and_then(|t| t.read_lock::<rhai::Array>()) else {
            return false;
        };
        have.iter().any(|h| {
            h.read_lock::<rhai::ImmutableString>().is_some_and(|h| {
                tags.iter().any(|t| {
                    t.read_lock::<rhai::ImmutableString>()
                        .is_some_and(|t| t.as_str() == h.as_str())
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Map {
        let mut m = Map::new();
        m.insert("hardware".into(), "r740".into());
        m.insert("rack".into(), "r1-07".into());
        let mut facts = Map::new();
        facts.insert("numa".into(), Dynamic::from_int(2));
        m.insert("facts".into(), facts.into());
        m
    }

    #[test]
    fn selectors() {
        let l = labels();
        for (sel, want) in [
            ("", true),
            ("hardware=r740", true),
            ("hardware=r7*", true),
            ("hardware!=r740", false),
            ("facts.numa=2", true),
            ("facts.numa in (1, 2)", true),
            ("facts.numa notin (1,2)", false),
            ("missing", false),
            ("!missing", true),
            ("missing!=x", true),
        ] {
            assert_eq!(Selector::parse(sel).unwrap().matches(&l), want, "{sel}");
        }
    }

    #[test]
    fn bad_selectors() {
        for sel in ["a in (b", "a)", "a,,b", "a foo (b)", "a b"] {
            assert!(Selector::parse(sel).is_err(), "{sel}");
        }
    }
}
