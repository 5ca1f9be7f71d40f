//! Drift decision builders (`auto`, `review`, `acknowledged`) and the package-version order
//! (`package_cmp`) that lets `drift.rhai` tell an upgrade from a downgrade.

use rhai::plugin::*;
use std::cmp::Ordering;

#[export_module]
pub mod drift_fns {
    use rhai::{Array, Dynamic, EvalAltResult, Map, INT};

    /// A safe divergence, fixed automatically by running `commands` in order: each one an
    /// argument list, sent without a shell, so a value holding `;` or `$(..)` stays one
    /// literal argument.
    ///
    /// ```rhai
    /// let d = auto("raise `net.core.somaxconn` to 4096", [["sysctl", "-w", "net.core.somaxconn=4096"]]);
    /// assert_eq(d.action, "auto");
    /// assert_eq(d.commands[0][0], "sysctl");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn auto(reason: &str, commands: Array) -> Result<Map, Box<EvalAltResult>> {
        for (i, c) in commands.iter().enumerate() {
            let ok = c
                .read_lock::<Array>()
                .map(|a| !a.is_empty() && a.iter().all(|x| x.is_string()))
                .unwrap_or(false);
            if !ok {
                return Err(crate::err(format!(
                    "command {i} of `auto` is `{c}`: each command is a non-empty list of strings, such as [\"sysctl\", \"-w\", \"vm.swappiness=10\"]"
                )));
            }
        }
        let mut m = Map::new();
        m.insert("action".into(), "auto".into());
        m.insert("reason".into(), reason.into());
        m.insert("commands".into(), Dynamic::from_array(commands));
        Ok(m)
    }

    /// A risky divergence, left for a human, with the reason they will read in the review
    /// queue.
    ///
    /// ```rhai
    /// let d = review("the kernel command line only changes with a reboot");
    /// assert_eq(d.action, "review");
    /// assert_eq(d.commands, []);
    /// ```
    pub fn review(reason: &str) -> Map {
        let mut m = Map::new();
        m.insert("action".into(), "review".into());
        m.insert("reason".into(), reason.into());
        m.insert("commands".into(), Dynamic::from_array(Array::new()));
        m
    }

    /// Expected drift, hidden from audits until `expires` (a date `2026-12-31`, meaning
    /// through that day UTC, or an RFC 3339 time); after that it is reviewed again.
    ///
    /// ```rhai
    /// let d = acknowledged("swappiness experiment, OPS-4411", "2026-12-31");
    /// assert_eq(d.action, "acknowledged");
    /// assert_eq(d.expires, "2026-12-31");
    /// ```
    pub fn acknowledged(reason: &str, expires: &str) -> Map {
        let mut m = Map::new();
        m.insert("action".into(), "acknowledged".into());
        m.insert("reason".into(), reason.into());
        m.insert("commands".into(), Dynamic::from_array(Array::new()));
        m.insert("expires".into(), expires.into());
        m
    }

    /// Compares two package versions the way dpkg does (epoch, upstream version, revision;
    /// `~` sorts before anything, even the end): -1, 0 or 1. It also orders rpm
    /// `version-release` strings sensibly.
    ///
    /// ```rhai
    /// assert_eq(package_cmp("1:9.6p1-3ubuntu13.5", "1:9.6p1-3ubuntu13.4"), 1);
    /// assert_eq(package_cmp("2.0~rc1", "2.0"), -1);
    /// assert_eq(package_cmp("1.10", "1.9"), 1);
    /// assert_eq(package_cmp("0:1.2", "1.2"), 0);
    /// ```
    pub fn package_cmp(a: &str, b: &str) -> INT {
        match super::compare_versions(a, b) {
            std::cmp::Ordering::Less => -1,
            std::cmp::Ordering::Equal => 0,
            std::cmp::Ordering::Greater => 1,
        }
    }
}

/// dpkg's version order: `[epoch:]upstream[-revision]`.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn split(v: &str) -> (u64, &str, &str) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit()) => {
                (e.parse().unwrap_or(u64::MAX), r)
            }
            _ => (0, v),
        };
        match rest.rfind('-') {
            Some(i) => (epoch, &rest[..i], &rest[i + 1..]),
            None => (epoch, rest, ""),
        }
    }
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| verrevcmp(ua, ub))
        .then_with(|| verrevcmp(ra, rb))
}

/// The weight dpkg gives one character of a non-digit run.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // The non-digit prefix, character by character.
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = order(a.get(i).copied());
            let bc = order(b.get(j).copied());
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        // Then the digit runs, numerically.
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while i < a.len() && a[i].is_ascii_digit() && j < b.len() && b[j].is_ascii_digit() {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if i < a.len() && a[i].is_ascii_digit() {
            return Ordering::Greater;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::compare_versions;
    use std::cmp::Ordering::*;

    #[test]
    fn dpkg_order() {
        for (a, b, want) in [
            ("1.0", "1.0", Equal),
            ("1.0", "1.0-0", Equal),
            ("1.0~rc1", "1.0", Less),
            ("1.0~~", "1.0~", Less),
            ("1.0+b1", "1.0", Greater),
            ("1.0a", "1.0", Greater),
            ("1:0.1", "9.9", Greater),
            ("1.002", "1.2", Equal),
            ("2.30-1ubuntu1", "2.30-1ubuntu10", Less),
            ("6.8.0-45.45", "6.8.0-40.40", Greater),
            ("", "0", Equal),
        ] {
            assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
            assert_eq!(compare_versions(b, a), want.reverse(), "{b} vs {a}");
        }
    }
}
