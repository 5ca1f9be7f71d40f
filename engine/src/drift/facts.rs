//! Collecting facts: the one command that reads everything a host's declared state names
//! ([`facts_command`], a POSIX `sh` script sent with its arguments, never spliced into a
//! shell line), and the parser for what it prints ([`parse_facts`]).

use super::declared::HostSpec;
use super::Kind;
use crate::exec::RemoteCommand;
use std::collections::HashMap;

/// The script, run as `sh -c SCRIPT fleetward-facts ARGS…`.
pub const SCRIPT: &str = include_str!("facts.sh");

/// `$0` of the script: how a host stand-in or the simulator recognises a facts request.
pub const ARGV0: &str = "fleetward-facts";

/// One fact a host reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    Value(String),
    /// The host could not read it, and why.
    Unknown(String),
}

/// Facts by `(kind, key, field)`; scalar kinds use empty key and field.
pub type Facts = HashMap<(Kind, String, String), Fact>;

/// The names a host's facts request must cover, grouped by flag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub sysctl: Vec<String>,
    pub module: Vec<String>,
    pub package: Vec<String>,
    pub service: Vec<String>,
    pub file: Vec<String>,
}

impl Request {
    pub fn for_spec(spec: &HostSpec) -> Request {
        Request {
            sysctl: spec.sysctl.keys().cloned().collect(),
            module: spec
                .modules_loaded
                .iter()
                .chain(&spec.modules_blacklisted)
                .cloned()
                .collect(),
            package: spec.packages.keys().cloned().collect(),
            service: spec.services.keys().cloned().collect(),
            file: spec.files.keys().cloned().collect(),
        }
    }

    /// The script's arguments.
    pub fn args(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (flag, names) in [
            ("--sysctl", &self.sysctl),
            ("--module", &self.module),
            ("--package", &self.package),
            ("--service", &self.service),
            ("--file", &self.file),
        ] {
            if !names.is_empty() {
                out.push(flag.to_string());
                out.extend(names.iter().cloned());
            }
        }
        out
    }

    /// Reads a request back from the script's arguments (for the simulator).
    pub fn from_args(args: &[String]) -> Request {
        let mut r = Request::default();
        let mut cur: Option<&mut Vec<String>> = None;
        for a in args {
            match a.as_str() {
                "--sysctl" => cur = Some(&mut r.sysctl),
                "--module" => cur = Some(&mut r.module),
                "--package" => cur = Some(&mut r.package),
                "--service" => cur = Some(&mut r.service),
                "--file" => cur = Some(&mut r.file),
                _ => {
                    if let Some(v) = cur.as_deref_mut() {
                        v.push(a.clone());
                    }
                }
            }
        }
        r
    }
}

/// The command that collects `spec`'s facts in one round trip.
pub fn facts_command(spec: &HostSpec) -> RemoteCommand {
    let mut argv = vec![
        "sh".to_string(),
        "-c".to_string(),
        SCRIPT.to_string(),
        ARGV0.to_string(),
    ];
    argv.extend(Request::for_spec(spec).args());
    RemoteCommand { argv }
}

/// Is `argv` a facts request? Returns the script's arguments.
pub fn as_facts_request(argv: &[String]) -> Option<&[String]> {
    match argv {
        [sh, c, _script, argv0, rest @ ..] if sh == "sh" && c == "-c" && argv0 == ARGV0 => {
            Some(rest)
        }
        _ => None,
    }
}

fn field(s: &str) -> String {
    if s == "-" {
        String::new()
    } else {
        s.to_string()
    }
}

/// Parses the script's output. Lines it does not understand are skipped and counted.
pub fn parse_facts(stdout: &str) -> (Facts, usize) {
    let mut facts = Facts::new();
    let mut bad = 0;
    for line in stdout.lines() {
        let mut parts = line.splitn(5, '\t');
        let (Some(tag), Some(kind), Some(key), Some(fld), Some(value)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            if !line.trim().is_empty() {
                bad += 1;
            }
            continue;
        };
        let Some(kind) = Kind::parse(kind) else {
            bad += 1;
            continue;
        };
        let fact = match tag {
            "F" => Fact::Value(value.to_string()),
            "U" => Fact::Unknown(value.to_string()),
            _ => {
                bad += 1;
                continue;
            }
        };
        facts.insert((kind, field(key), field(fld)), fact);
    }
    (facts, bad)
}

/// Renders facts the way the script prints them (the simulator answers with this).
pub fn render_facts<'a>(
    facts: impl IntoIterator<Item = (&'a (Kind, String, String), &'a Fact)>,
) -> String {
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    let mut out = String::new();
    for ((kind, key, fld), fact) in facts {
        let (tag, v) = match fact {
            Fact::Value(v) => ("F", v),
            Fact::Unknown(r) => ("U", r),
        };
        out.push_str(&format!(
            "{tag}\t{}\t{}\t{}\t{v}\n",
            kind.as_str(),
            dash(key),
            dash(fld)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_script_reads_a_root_and_parses_back() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let w = |p: &str, body: &str| {
            let p = r.join(p.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        };
        w("/proc/sys/kernel/osrelease", "6.8.0-45-generic\n");
        w("/proc/cmdline", "BOOT_IMAGE=/vmlinuz ro  quiet\n");
        w("/proc/cpuinfo", "processor\t: 0\nmicrocode\t: 0x2b000590\n");
        w(
            "/boot/grub/grubenv",
            "# GRUB\nsaved_entry=Ubuntu, with Linux 6.8.0-45-generic\n",
        );
        w("/proc/sys/net/ipv4/tcp_rmem", "4096\t131072\t6291456\n");
        w("/proc/sys/vm/swappiness", "60\n");
        w(
            "/etc/sysctl.d/10-a.conf",
            "vm.swappiness = 30\n# vm.swappiness = 1\n",
        );
        w("/usr/lib/sysctl.d/10-a.conf", "vm.swappiness = 99\n");
        w(
            "/etc/sysctl.d/20-b.conf",
            "net/ipv4/tcp_rmem=4096 131072   6291456\n",
        );
        w("/etc/sysctl.conf", "vm.swappiness=10\n");
        w("/proc/modules", "tcp_bbr 20480 3 - Live 0x0\n");
        w("/etc/modprobe.d/bl.conf", "blacklist floppy\n");
        w("/etc/motd", "hello\n");
        let spec = HostSpec {
            sysctl: [
                ("vm.swappiness", "10"),
                ("net.ipv4.tcp_rmem", "x"),
                ("vm.nope", "1"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            modules_loaded: ["tcp_bbr".to_string()].into(),
            modules_blacklisted: ["floppy".to_string()].into(),
            files: [("/etc/motd".to_string(), Default::default())].into(),
            ..HostSpec::default()
        };
        let cmd = facts_command(&spec);
        let out = std::process::Command::new(&cmd.argv[0])
            .args(&cmd.argv[1..])
            .env("FLEETWARD_ROOT", r)
            .output()
            .unwrap();
        let (facts, bad) = parse_facts(&String::from_utf8(out.stdout).unwrap());
        assert_eq!(bad, 0);
        let get = |k: Kind, key: &str, f: &str| facts[&(k, key.to_string(), f.to_string())].clone();
        let v = |s: &str| Fact::Value(s.to_string());
        assert_eq!(get(Kind::Kernel, "", ""), v("6.8.0-45-generic"));
        assert_eq!(
            get(Kind::Cmdline, "", ""),
            v("BOOT_IMAGE=/vmlinuz ro quiet")
        );
        assert_eq!(get(Kind::Microcode, "", ""), v("0x2b000590"));
        assert_eq!(
            get(Kind::BootEntry, "", ""),
            v("Ubuntu, with Linux 6.8.0-45-generic")
        );
        assert_eq!(get(Kind::Sysctl, "vm.swappiness", "runtime"), v("60"));
        assert_eq!(get(Kind::Sysctl, "vm.swappiness", "persisted"), v("10"));
        assert_eq!(
            get(Kind::Sysctl, "net.ipv4.tcp_rmem", "runtime"),
            v("4096 131072 6291456")
        );
        assert_eq!(
            get(Kind::Sysctl, "net.ipv4.tcp_rmem", "persisted"),
            v("4096 131072 6291456")
        );
        assert!(matches!(
            get(Kind::Sysctl, "vm.nope", "runtime"),
            Fact::Unknown(_)
        ));
        assert_eq!(
            get(Kind::Sysctl, "vm.nope", "persisted"),
            v("(not persisted)")
        );
        assert_eq!(get(Kind::Module, "tcp_bbr", "loaded"), v("yes"));
        assert_eq!(get(Kind::Module, "floppy", "blacklisted"), v("yes"));
        assert_eq!(get(Kind::Module, "floppy", "loaded"), v("no"));
        assert_eq!(
            get(Kind::File, "/etc/motd", "sha256"),
            v("5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03")
        );
        let rendered = render_facts(facts.iter());
        assert_eq!(parse_facts(&rendered).0, facts);
        assert_eq!(
            Request::from_args(&Request::for_spec(&spec).args()),
            Request::for_spec(&spec)
        );
    }
}
