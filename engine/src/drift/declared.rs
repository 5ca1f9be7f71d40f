//! The declared-state file (`declared.toml` beside the policies): what every host should look
//! like, set for all hosts, per group (`hardware/workload`, either side may be `*`) and per
//! host, and resolved into one [`HostSpec`] per host.

use super::Kind;
use crate::model::Host;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The file's name in a policy directory.
pub const FILE_NAME: &str = "declared.toml";

#[derive(Debug, thiserror::Error)]
pub enum DeclaredError {
    #[error("cannot read `{}`: {message}", .path.display())]
    Read { path: PathBuf, message: String },
    #[error("{}:{line}:{col}: {message}", .path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        col: usize,
        message: String,
    },
}

/// A sysctl value as written: a number or a string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Int(i64),
    Str(String),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Int(i) => i.to_string(),
            Scalar::Str(s) => s.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModulesSpec {
    #[serde(default)]
    loaded: Vec<String>,
    #[serde(default)]
    blacklisted: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub enabled: Option<bool>,
    pub active: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Hex SHA-256 of the content, or `absent` for a file that must not exist.
    pub sha256: Option<String>,
    /// Octal, as `"0644"`.
    pub mode: Option<String>,
    /// `user:group`, or `user`.
    pub owner: Option<String>,
}

/// One layer of declarations: `[all]`, a `[group."hw/workload"]` or a `[host."name"]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Layer {
    kernel: Option<String>,
    boot_entry: Option<String>,
    cmdline: Option<String>,
    microcode: Option<String>,
    #[serde(default)]
    sysctl: BTreeMap<String, Scalar>,
    #[serde(default)]
    modules: ModulesSpec,
    #[serde(default)]
    packages: BTreeMap<String, String>,
    #[serde(default)]
    services: BTreeMap<String, ServiceSpec>,
    #[serde(default)]
    files: BTreeMap<String, FileSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpecRoot {
    #[serde(default)]
    all: Layer,
    #[serde(default)]
    group: BTreeMap<String, Layer>,
    #[serde(default)]
    host: BTreeMap<String, Layer>,
}

/// The parsed file.
#[derive(Debug, Clone, Default)]
pub struct Declared {
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, for the record.
    pub hash: String,
    root: FileSpecRoot,
}

/// What one host should look like.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostSpec {
    pub kernel: Option<String>,
    pub boot_entry: Option<String>,
    pub cmdline: Option<String>,
    pub microcode: Option<String>,
    pub sysctl: BTreeMap<String, String>,
    pub modules_loaded: BTreeSet<String>,
    pub modules_blacklisted: BTreeSet<String>,
    pub packages: BTreeMap<String, String>,
    pub services: BTreeMap<String, ServiceSpec>,
    pub files: BTreeMap<String, FileSpec>,
}

/// One declared fact: what a host must report for `(kind, key, field)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub kind: Kind,
    pub key: String,
    pub field: String,
    pub declared: String,
}

/// Module names are the same with `-` or `_`; the kernel reports `_`.
pub fn module_name(m: &str) -> String {
    m.replace('-', "_")
}

impl HostSpec {
    fn apply(&mut self, l: &Layer) {
        let set = |dst: &mut Option<String>, src: &Option<String>| {
            if let Some(v) = src {
                *dst = Some(v.clone());
            }
        };
        set(&mut self.kernel, &l.kernel);
        set(&mut self.boot_entry, &l.boot_entry);
        set(&mut self.cmdline, &l.cmdline);
        set(&mut self.microcode, &l.microcode);
        for (k, v) in &l.sysctl {
            self.sysctl.insert(k.clone(), v.text());
        }
        for m in &l.modules.loaded {
            let m = module_name(m);
            self.modules_blacklisted.remove(&m);
            self.modules_loaded.insert(m);
        }
        for m in &l.modules.blacklisted {
            let m = module_name(m);
            self.modules_loaded.remove(&m);
            self.modules_blacklisted.insert(m);
        }
        for (k, v) in &l.packages {
            self.packages.insert(k.clone(), v.clone());
        }
        for (k, v) in &l.services {
            let s = self.services.entry(k.clone()).or_default();
            s.enabled = v.enabled.or(s.enabled);
            s.active = v.active.or(s.active);
        }
        for (k, v) in &l.files {
            let f = self.files.entry(k.clone()).or_default();
            f.sha256 = v.sha256.clone().or(f.sha256.take());
            f.mode = v.mode.clone().or(f.mode.take());
            f.owner = v.owner.clone().or(f.owner.take());
        }
    }

    /// Every declared fact, in a stable order.
    pub fn expectations(&self) -> Vec<Expect> {
        let mut out = Vec::new();
        let mut push = |kind: Kind, key: &str, field: &str, declared: &str| {
            out.push(Expect {
                kind,
                key: key.to_string(),
                field: field.to_string(),
                declared: declared.to_string(),
            })
        };
        if let Some(v) = &self.kernel {
            push(Kind::Kernel, "", "", v);
        }
        if let Some(v) = &self.boot_entry {
            push(Kind::BootEntry, "", "", v);
        }
        if let Some(v) = &self.cmdline {
            push(Kind::Cmdline, "", "", v);
        }
        if let Some(v) = &self.microcode {
            push(Kind::Microcode, "", "", v);
        }
        for (k, v) in &self.sysctl {
            push(Kind::Sysctl, k, "runtime", v);
            push(Kind::Sysctl, k, "persisted", v);
        }
        for m in &self.modules_loaded {
            push(Kind::Module, m, "loaded", "yes");
        }
        for m in &self.modules_blacklisted {
            push(Kind::Module, m, "blacklisted", "yes");
            push(Kind::Module, m, "loaded", "no");
        }
        for (k, v) in &self.packages {
            push(Kind::Package, k, "version", v);
        }
        for (k, s) in &self.services {
            if let Some(e) = s.enabled {
                push(
                    Kind::Service,
                    k,
                    "enabled",
                    if e { "enabled" } else { "disabled" },
                );
            }
            if let Some(a) = s.active {
                push(
                    Kind::Service,
                    k,
                    "active",
                    if a { "active" } else { "inactive" },
                );
            }
        }
        for (k, f) in &self.files {
            if let Some(v) = &f.sha256 {
                push(Kind::File, k, "sha256", v);
            }
            if let Some(v) = &f.mode {
                push(Kind::File, k, "mode", v);
            }
            if let Some(v) = &f.owner {
                push(Kind::File, k, "owner", v);
            }
        }
        out
    }
}

/// How specific a group pattern is, and whether it matches.
fn group_match(pattern: &str, hardware: &str, workload: &str) -> Option<u8> {
    let key = crate::model::GroupKey::parse(pattern)?;
    let (hw, wl) = (key.hardware.as_str(), key.workload.as_str());
    let hw_ok = hw == "*" || hw == hardware;
    let wl_ok = wl == "*" || wl == workload;
    (hw_ok && wl_ok).then_some(u8::from(hw != "*") + u8::from(wl != "*"))
}

impl Declared {
    pub fn load(path: &Path) -> Result<Declared, DeclaredError> {
        let text = std::fs::read_to_string(path).map_err(|e| DeclaredError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Declared::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Declared, DeclaredError> {
        let perr = |offset: Option<usize>, message: String| {
            let (line, col) = offset
                .map(|o| crate::error::line_col(text, o))
                .unwrap_or((1, 1));
            DeclaredError::Parse {
                path: path.to_path_buf(),
                line,
                col,
                message,
            }
        };
        let root: FileSpecRoot = toml::from_str(text)
            .map_err(|e| perr(e.span().map(|s| s.start), e.message().to_string()))?;
        let at = |needle: &str| text.find(needle);
        for g in root.group.keys() {
            if group_match(g, "", "").is_none() && !g.contains('/') {
                return Err(perr(
                    at(&format!("\"{g}\"")),
                    format!("group `{g}` is not `hardware/workload` (either side may be `*`)"),
                ));
            }
        }
        let layers = std::iter::once(&root.all)
            .chain(root.group.values())
            .chain(root.host.values());
        for l in layers {
            for (name, f) in &l.files {
                if !name.starts_with('/') {
                    return Err(perr(
                        at(name),
                        format!("file `{name}` is not an absolute path"),
                    ));
                }
                if let Some(m) = &f.mode {
                    if u32::from_str_radix(m, 8).is_err() {
                        return Err(perr(
                            at(m),
                            format!("mode `{m}` of `{name}` is not octal, such as \"0644\""),
                        ));
                    }
                }
                if let Some(h) = &f.sha256 {
                    if h != "absent" && (h.len() != 64 || !h.bytes().all(|c| c.is_ascii_hexdigit()))
                    {
                        return Err(perr(
                            at(h),
                            format!("sha256 `{h}` of `{name}` is not 64 hex digits or `absent`"),
                        ));
                    }
                }
            }
            for k in l.sysctl.keys() {
                if k.is_empty() || k.contains(char::is_whitespace) || k.contains("..") {
                    return Err(perr(at(k), format!("sysctl `{k}` is not a sysctl name")));
                }
            }
        }
        Ok(Declared {
            path: path.to_path_buf(),
            hash: {
                use sha2::Digest;
                sha2::Sha256::digest(text.as_bytes())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            },
            root,
        })
    }

    /// Hosts named in `[host."…"]` that the inventory does not have: likely typos.
    pub fn unknown_hosts<'a>(&'a self, hosts: &[Host]) -> Vec<&'a str> {
        let names: BTreeSet<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
        self.root
            .host
            .keys()
            .map(String::as_str)
            .filter(|n| !names.contains(n))
            .collect()
    }

    /// The declared state of `host`: `[all]`, then matching groups from the least to the most
    /// specific, then its `[host]` entry.
    pub fn resolve(&self, host: &Host) -> HostSpec {
        let mut spec = HostSpec::default();
        spec.apply(&self.root.all);
        let mut groups: Vec<(u8, &String, &Layer)> = self
            .root
            .group
            .iter()
            .filter_map(|(p, l)| group_match(p, &host.hardware, &host.workload).map(|s| (s, p, l)))
            .collect();
        groups.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        for (_, _, l) in groups {
            spec.apply(l);
        }
        if let Some(l) = self.root.host.get(&host.name) {
            spec.apply(l);
        }
        spec
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn host(name: &str, hw: &str, wl: &str) -> Host {
        Host {
            name: name.into(),
            hardware: hw.into(),
            workload: wl.into(),
            ..Host::default()
        }
    }

    #[test]
    fn layers_resolve_from_all_to_host() {
        let d = Declared::parse(
            Path::new("declared.toml"),
            r#"
[all]
kernel = "6.8.0-45-generic"
sysctl = { "vm.swappiness" = 10, "net.core.somaxconn" = "4096" }
modules = { loaded = ["tcp_bbr"], blacklisted = ["floppy"] }
services.chrony = { enabled = true, active = true }

[group."*/db"]
sysctl = { "vm.swappiness" = 1 }

[group."r750/db"]
sysctl = { "vm.swappiness" = 0 }
services.chrony = { active = false }

[host.db1]
modules = { loaded = ["floppy"] }
"#,
        )
        .unwrap();
        let s = d.resolve(&host("db1", "r750", "db"));
        assert_eq!(s.sysctl["vm.swappiness"], "0");
        assert_eq!(s.sysctl["net.core.somaxconn"], "4096");
        assert!(s.modules_loaded.contains("floppy"));
        assert!(!s.modules_blacklisted.contains("floppy"));
        assert_eq!(
            s.services["chrony"],
            ServiceSpec {
                enabled: Some(true),
                active: Some(false)
            }
        );
        let w = d.resolve(&host("web1", "r650", "web"));
        assert_eq!(w.sysctl["vm.swappiness"], "10");
        assert!(w.modules_blacklisted.contains("floppy"));
        assert_eq!(d.unknown_hosts(&[host("web1", "a", "b")]), vec!["db1"]);
    }

    #[test]
    fn bad_files_name_the_place() {
        let check = |text: &str, want: &str| {
            let e = Declared::parse(Path::new("d.toml"), text)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e}");
        };
        check(
            "[all]\nkernal = \"x\"\n",
            "d.toml:2:1: unknown field `kernal`",
        );
        check(
            "[all.files.\"/etc/motd\"]\nmode = \"rw-r--r--\"\n",
            "d.toml:2:9: mode `rw-r--r--` of `/etc/motd` is not octal",
        );
        check(
            "[group.db]\nkernel = \"x\"\n",
            "group `db` is not `hardware/workload`",
        );
        check(
            "[all.files.\"etc/motd\"]\nmode = \"0644\"\n",
            "file `etc/motd` is not an absolute path",
        );
    }
}
