//! Kernel version parsing and ordering across Debian, Ubuntu, RHEL-family and mainline names.
//!
//! A version is read as `UPSTREAM[-rcN][-RELEASE][.DISTRO][-FLAVOUR]`, for example
//! `6.1.0-18-amd64`, `5.15.0-91-generic`, `5.14.0-362.8.1.el9_3.x86_64`, `6.7.0-rc3`.
//! Ordering compares upstream numbers, then release candidates (an `-rcN` sorts before the
//! final release), then the distro release numbers, then the distro tag, and last the flavour,
//! so the order is total.

use std::cmp::Ordering;
use std::fmt;

/// A parsed kernel version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelVersion {
    /// `6.1.0` → `[6, 1, 0]`.
    pub upstream: Vec<u64>,
    /// `-rc3` → `Some(3)`.
    pub rc: Option<u64>,
    /// The distro's release numbers: `-18` → `[18]`, `-362.8.1` → `[362, 8, 1]`.
    pub release: Vec<u64>,
    /// A distro tag such as `el9_3` or `fc39`.
    pub distro: String,
    /// What remains: `amd64`, `generic`, `cloud-amd64`, `x86_64`.
    pub flavour: String,
}

/// A string that is not a kernel version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelVersionError(pub String);

impl fmt::Display for KernelVersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a kernel version (expected e.g. `6.1.0-18-amd64`)",
            self.0
        )
    }
}

impl std::error::Error for KernelVersionError {}

fn is_distro_tag(t: &str) -> bool {
    let rest = t
        .strip_prefix("el")
        .or_else(|| t.strip_prefix("fc"))
        .or_else(|| t.strip_prefix("amzn"))
        .or_else(|| t.strip_prefix("uek"));
    match rest {
        Some(r) => {
            !r.is_empty()
                && r.chars().all(|c| c.is_ascii_digit() || c == '_')
                && r.starts_with(|c: char| c.is_ascii_digit())
        }
        None => false,
    }
}

impl KernelVersion {
    /// Parses a kernel release string as printed by `uname -r`.
    pub fn parse(text: &str) -> Result<Self, KernelVersionError> {
        let bad = || KernelVersionError(text.to_string());
        let t = text.trim();
        if !t.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(bad());
        }
        // Upstream: dotted numbers up to the first character that is neither digit nor dot.
        let up_end = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (up, mut rest) = t.split_at(up_end);
        let up = up.trim_end_matches('.');
        let upstream = up
            .split('.')
            .map(|p| p.parse::<u64>().map_err(|_| bad()))
            .collect::<Result<Vec<_>, _>>()?;
        if upstream.len() < 2 || upstream.len() > 4 {
            return Err(bad());
        }
        if up_end > up.len() {
            // A trailing dot was trimmed: `6.1.` carries on as `.x86_64` and the like.
            rest = &t[up.len()..];
        }
        let mut v = KernelVersion {
            upstream,
            rc: None,
            release: Vec::new(),
            distro: String::new(),
            flavour: String::new(),
        };
        let mut flavour: Vec<&str> = Vec::new();
        let mut in_release = true;
        for tok in rest.split(['-', '.', '+', '~']).filter(|s| !s.is_empty()) {
            if let Some(n) = tok.strip_prefix("rc").and_then(|n| n.parse::<u64>().ok()) {
                if v.rc.is_some() || !v.release.is_empty() || !flavour.is_empty() {
                    return Err(bad());
                }
                v.rc = Some(n);
            } else if in_release && tok.chars().all(|c| c.is_ascii_digit()) {
                v.release.push(tok.parse::<u64>().map_err(|_| bad())?);
            } else if v.distro.is_empty() && flavour.is_empty() && is_distro_tag(tok) {
                v.distro = tok.to_string();
                in_release = false;
            } else if tok.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                in_release = false;
                flavour.push(tok);
            } else {
                return Err(bad());
            }
        }
        v.flavour = flavour.join("-");
        Ok(v)
    }

    /// `6.1.0-18-amd64` → `6.1`.
    pub fn series(&self) -> String {
        self.upstream
            .iter()
            .take(2)
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(".")
    }
}

fn cmp_padded(a: &[u64], b: &[u64]) -> Ordering {
    let n = a.len().max(b.len());
    for i in 0..n {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0),
            b.get(i).copied().unwrap_or(0),
        );
        match x.cmp(&y) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    Ordering::Equal
}

impl Ord for KernelVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_padded(&self.upstream, &other.upstream)
            .then_with(|| match (self.rc, other.rc) {
                (None, None) => Ordering::Equal,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(a), Some(b)) => a.cmp(&b),
            })
            .then_with(|| self.release.cmp(&other.release))
            .then_with(|| self.distro.cmp(&other.distro))
            .then_with(|| self.flavour.cmp(&other.flavour))
    }
}

impl PartialOrd for KernelVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[export_module]
pub mod kernel_fns {
    #[allow(unused_imports)]
    use super::helpers::*;
    use super::KernelVersion;
    use crate::err;
    use rhai::{Array, Dynamic, EvalAltResult, Map, INT};

    /// Parses a kernel release into its parts: `upstream` (array of ints), `rc` (int or `()`),
    /// `release` (array of ints), `distro`, `flavour`, `series`.
    ///
    /// ```rhai
    /// let k = kernel_version("5.14.0-362.8.1.el9_3.x86_64");
    /// assert_eq(k.upstream, [5, 14, 0]);
    /// assert_eq(k.release, [362, 8, 1]);
    /// assert_eq(k.distro, "el9_3");
    /// assert_eq(k.flavour, "x86_64");
    /// assert_eq(kernel_version("6.1.0-18-amd64").series, "6.1");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn kernel_version(text: &str) -> Result<Map, Box<EvalAltResult>> {
        let k = KernelVersion::parse(text).map_err(|e| err(e.to_string()))?;
        let ints =
            |v: &[u64]| -> Array { v.iter().map(|n| Dynamic::from_int(*n as INT)).collect() };
        let mut m = Map::new();
        m.insert("upstream".into(), ints(&k.upstream).into());
        m.insert(
            "rc".into(),
            k.rc.map(|n| Dynamic::from_int(n as INT))
                .unwrap_or(Dynamic::UNIT),
        );
        m.insert("release".into(), ints(&k.release).into());
        m.insert("distro".into(), k.distro.clone().into());
        m.insert("flavour".into(), k.flavour.clone().into());
        m.insert("series".into(), k.series().into());
        Ok(m)
    }

    /// Compares two kernel releases: -1, 0 or 1.
    ///
    /// ```rhai
    /// assert_eq(kernel_cmp("6.1.0-18-amd64", "6.1.0-21-amd64"), -1);
    /// assert_eq(kernel_cmp("6.6.9", "6.1.0-21-amd64"), 1);
    /// assert_eq(kernel_cmp("6.7.0-rc3", "6.7.0"), -1);
    /// assert_eq(kernel_cmp("5.15.0-91-generic", "5.15.0-91-generic"), 0);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn kernel_cmp(a: &str, b: &str) -> Result<INT, Box<EvalAltResult>> {
        let (a, b) = (parse(a)?, parse(b)?);
        Ok(a.cmp(&b) as INT)
    }

    /// Whether release `a` is newer than release `b`.
    ///
    /// ```rhai
    /// assert(kernel_newer("6.1.0-21-amd64", "6.1.0-18-amd64"));
    /// assert(!kernel_newer("5.14.0-362.el9", "5.14.0-427.el9"));
    /// ```
    #[rhai_fn(return_raw)]
    pub fn kernel_newer(a: &str, b: &str) -> Result<bool, Box<EvalAltResult>> {
        Ok(parse(a)? > parse(b)?)
    }

    /// Whether release `a` is `b` or newer.
    ///
    /// ```rhai
    /// assert(kernel_at_least("6.6.9", "6.1.0-21-amd64"));
    /// assert(kernel_at_least("6.1.0-18-amd64", "6.1.0-18-amd64"));
    /// ```
    #[rhai_fn(return_raw)]
    pub fn kernel_at_least(a: &str, b: &str) -> Result<bool, Box<EvalAltResult>> {
        Ok(parse(a)? >= parse(b)?)
    }

    /// Whether `text` parses as a kernel release.
    ///
    /// ```rhai
    /// assert(is_kernel_version("6.1.0-18-amd64"));
    /// assert(!is_kernel_version("banana"));
    /// ```
    pub fn is_kernel_version(text: &str) -> bool {
        KernelVersion::parse(text).is_ok()
    }
}

mod helpers {
    use super::KernelVersion;
    #[allow(unused_imports)]
    use super::*;
    use crate::err;
    use rhai::EvalAltResult;

    pub(super) fn parse(text: &str) -> Result<KernelVersion, Box<EvalAltResult>> {
        KernelVersion::parse(text).map_err(|e| err(e.to_string()))
    }
}

use rhai::plugin::*;

#[cfg(test)]
mod tests {
    use super::*;

    fn check_order(sorted: &[&str]) {
        for w in sorted.windows(2) {
            let (a, b) = (
                KernelVersion::parse(w[0]).unwrap(),
                KernelVersion::parse(w[1]).unwrap(),
            );
            assert!(a < b, "{} < {}", w[0], w[1]);
        }
    }

    #[test]
    fn ordering() {
        check_order(&["6.1.0-18-amd64", "6.1.0-21-amd64", "6.6.9"]);
        check_order(&["6.7.0-rc1", "6.7.0-rc3", "6.7.0", "6.7.1"]);
        check_order(&[
            "4.18.0-513.el8.x86_64",
            "5.14.0-362.8.1.el9_3.x86_64",
            "5.14.0-362.13.1.el9_3.x86_64",
            "5.14.0-427.el9.x86_64",
        ]);
        check_order(&[
            "5.15.0-9-generic",
            "5.15.0-91-generic",
            "5.15.0-100-generic",
        ]);
        check_order(&["6.1", "6.1.1"]);
    }

    #[test]
    fn parts() {
        let k = KernelVersion::parse("6.1.0-18-cloud-amd64").unwrap();
        assert_eq!(k.upstream, vec![6, 1, 0]);
        assert_eq!(k.release, vec![18]);
        assert_eq!(k.flavour, "cloud-amd64");
        let k = KernelVersion::parse("6.8.0-1015-aws").unwrap();
        assert_eq!(k.release, vec![1015]);
        assert_eq!(k.flavour, "aws");
        assert_eq!(KernelVersion::parse("6.1").unwrap().upstream, vec![6, 1]);
    }

    #[test]
    fn rejects() {
        for bad in ["", "banana", "v6.1", "6", "6.1.0-18-am$d64", "1.2.3.4.5"] {
            assert!(KernelVersion::parse(bad).is_err(), "{bad:?}");
        }
    }
}
