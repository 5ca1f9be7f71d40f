//! Deterministic example fleets for `policy-examples/`, tests and benchmarks, and writers
//! for every inventory format fleetward reads. The same seed gives the same fleet on every
//! machine.

use crate::model::Host;
use crate::plan::{splitmix64_finish, SPLITMIX64_GAMMA};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

pub const HARDWARE: [&str; 6] = ["r640", "r750", "c6420", "hpe-dl380", "sm-x11", "sm-x12"];
pub const WORKLOADS: [&str; 4] = ["web", "db", "cache", "batch"];
pub const DATACENTERS: [&str; 3] = ["ams1", "iad2", "sjc3"];
/// The names of further datacenters, for fleets of more than three (then `dcN`).
const MORE_DATACENTERS: [&str; 9] = [
    "fra1", "lhr2", "nrt1", "sin2", "gru1", "syd1", "ord2", "dfw1", "bom1",
];
/// The kernel most of the fleet runs.
pub const CURRENT_KERNEL: &str = "6.8.0-40-generic";
/// The kernel the example rollout installs.
pub const TARGET_KERNEL: &str = "6.8.0-45-generic";
/// The group kept at exactly three hosts.
pub const TINY_GROUP: (&str, &str) = ("sm-x12", "db");
const RACK_SIZE: usize = 40;

/// splitmix64: a tiny, well-known generator, so fleets do not depend on a crate's version.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(SPLITMIX64_GAMMA);
        splitmix64_finish(self.0)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    pub hosts: usize,
    pub seed: u64,
    pub no_reboot: usize,
    pub legal_hold: usize,
    pub on_target: usize,
    pub newer: usize,
    /// Datacenters: three (40/35/25% of the hosts), or as many as asked, of equal share.
    pub datacenters: usize,
}

/// The name of datacenter `i` (from 0).
pub fn datacenter(i: usize) -> String {
    match DATACENTERS.get(i) {
        Some(d) => d.to_string(),
        None => MORE_DATACENTERS
            .get(i - DATACENTERS.len())
            .map_or_else(|| format!("dc{}", i + 1), |d| d.to_string()),
    }
}

impl FleetSpec {
    /// The example fleet: `hosts` hosts with a handful of excluded and already-updated ones.
    pub fn example(hosts: usize, seed: u64) -> Self {
        FleetSpec {
            hosts,
            seed,
            no_reboot: 8,
            legal_hold: 3,
            on_target: 12,
            newer: 2,
            datacenters: DATACENTERS.len(),
        }
    }
}

/// Generates a fleet: 6 hardware classes × 4 workloads × 3 datacenters, uneven group sizes
/// (one group of exactly 3 hosts), racks of up to 40 hosts mixing groups.
pub fn generate(spec: &FleetSpec) -> Vec<Host> {
    let mut rng = Rng(spec.seed);
    // Uneven group sizes from squared random weights; the tiny group is fixed at 3.
    let mut groups: Vec<((&str, &str), f64)> = Vec::new();
    for hw in HARDWARE {
        for wl in WORKLOADS {
            let w = 0.15 + rng.unit() * 1.5;
            groups.push(((hw, wl), w * w));
        }
    }
    let tiny = if spec.hosts >= 200 { 3 } else { 0 };
    let others: f64 = groups
        .iter()
        .filter(|(g, _)| *g != TINY_GROUP)
        .map(|(_, w)| w)
        .sum();
    let budget = spec.hosts.saturating_sub(tiny);
    let mut sizes: Vec<((&str, &str), usize)> = groups
        .iter()
        .map(|(g, w)| {
            let n = if *g == TINY_GROUP && tiny > 0 {
                tiny
            } else {
                ((w / others) * budget as f64).floor() as usize
            };
            (*g, n)
        })
        .collect();
    // Hand out the rounding remainder one host at a time.
    let mut have: usize = sizes.iter().map(|s| s.1).sum();
    let mut i = 0;
    while have < spec.hosts {
        let k = i % sizes.len();
        if sizes.get(k).is_some_and(|s| s.0 != TINY_GROUP || tiny == 0) {
            if let Some(s) = sizes.get_mut(k) {
                s.1 += 1;
                have += 1;
            }
        }
        i += 1;
    }
    // Place hosts in datacenters (40/35/25, or equal shares of more), shuffle each
    // datacenter, fill racks.
    let dcs = spec.datacenters.max(1);
    let mut per_dc: Vec<Vec<(&str, &str)>> = vec![Vec::new(); dcs];
    for ((hw, wl), n) in &sizes {
        for _ in 0..*n {
            let r = rng.unit();
            let dc = if dcs != DATACENTERS.len() {
                ((r * dcs as f64) as usize).min(dcs - 1)
            } else if r < 0.40 {
                0
            } else if r < 0.75 {
                1
            } else {
                2
            };
            if let Some(v) = per_dc.get_mut(dc) {
                v.push((hw, wl));
            }
        }
    }
    let mut hosts = Vec::with_capacity(spec.hosts);
    let mut counters: BTreeMap<(usize, &str), usize> = BTreeMap::new();
    for (dci, members) in per_dc.iter_mut().enumerate() {
        for k in (1..members.len()).rev() {
            let j = rng.below(k + 1);
            members.swap(k, j);
        }
        let dc = datacenter(dci);
        for (slot, (hw, wl)) in members.iter().enumerate() {
            let rack = slot / RACK_SIZE + 1;
            let n = counters.entry((dci, wl)).or_default();
            *n += 1;
            let cores = match *hw {
                "r640" => 32,
                "r750" | "hpe-dl380" => 64,
                "c6420" => 48,
                _ => 96,
            };
            let mut facts = BTreeMap::new();
            facts.insert("cores".to_string(), Value::from(cores));
            facts.insert("mem_gb".to_string(), Value::from(cores * 8));
            facts.insert(
                "serial".to_string(),
                Value::from(format!("SN{:08X}", rng.next() as u32)),
            );
            hosts.push(Host {
                name: format!("{wl}{n:04}.{dc}"),
                address: format!("10.{}.{}.{}", dci + 1, slot / 250, slot % 250 + 1),
                port: None,
                user: None,
                hardware: hw.to_string(),
                workload: wl.to_string(),
                datacenter: dc.to_string(),
                rack: format!("r{rack:03}"),
                kernel: CURRENT_KERNEL.to_string(),
                tags: Vec::new(),
                facts,
            });
        }
    }
    // Mark a few hosts, never in the tiny group, never twice.
    let mut free: Vec<usize> = (0..hosts.len())
        .filter(|i| {
            hosts
                .get(*i)
                .is_some_and(|h| (h.hardware.as_str(), h.workload.as_str()) != TINY_GROUP)
        })
        .collect();
    let mut take = |n: usize, rng: &mut Rng| -> Vec<usize> {
        (0..n.min(free.len()))
            .map(|_| free.swap_remove(rng.below(free.len())))
            .collect()
    };
    for i in take(spec.no_reboot, &mut rng) {
        if let Some(h) = hosts.get_mut(i) {
            h.tags.push("no-reboot".into());
        }
    }
    for i in take(spec.legal_hold, &mut rng) {
        if let Some(h) = hosts.get_mut(i) {
            h.tags.push("legal-hold".into());
        }
    }
    for i in take(spec.on_target, &mut rng) {
        if let Some(h) = hosts.get_mut(i) {
            h.kernel = TARGET_KERNEL.into();
        }
    }
    for i in take(spec.newer, &mut rng) {
        if let Some(h) = hosts.get_mut(i) {
            h.kernel = "6.11.0-9-generic".into();
        }
    }
    hosts
}

fn fact_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// fleetward's own TOML: a `[[hosts]]` table per host, written by the `toml` serializer.
pub fn to_toml(hosts: &[Host]) -> String {
    use toml::Value as T;
    let rows: Vec<T> = hosts
        .iter()
        .map(|h| {
            let mut t = toml::Table::new();
            for (k, v) in [
                ("name", &h.name),
                ("address", &h.address),
                ("hardware", &h.hardware),
                ("workload", &h.workload),
                ("datacenter", &h.datacenter),
                ("rack", &h.rack),
                ("kernel", &h.kernel),
            ] {
                t.insert(k.into(), T::String(v.clone()));
            }
            if !h.tags.is_empty() {
                t.insert(
                    "tags".into(),
                    T::Array(h.tags.iter().cloned().map(T::String).collect()),
                );
            }
            for (k, v) in &h.facts {
                let tv = match v {
                    Value::Number(n) => n
                        .as_i64()
                        .map(T::Integer)
                        .or_else(|| n.as_f64().map(T::Float))
                        .unwrap_or_else(|| T::String(n.to_string())),
                    other => T::String(fact_text(other)),
                };
                t.insert(k.clone(), tv);
            }
            T::Table(t)
        })
        .collect();
    let mut doc = toml::Table::new();
    doc.insert("hosts".into(), T::Array(rows));
    format!(
        "# fleetward inventory.\n{}",
        toml::to_string(&doc).unwrap_or_default()
    )
}

/// CSV with a header row; tags separated by `;`. Written by the `csv` crate, so a field with
/// a comma or quote is quoted.
pub fn to_csv(hosts: &[Host]) -> String {
    let fact_keys: Vec<String> = hosts
        .first()
        .map(|h| h.facts.keys().cloned().collect())
        .unwrap_or_default();
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let header = [
        "name",
        "address",
        "hardware",
        "workload",
        "datacenter",
        "rack",
        "kernel",
        "tags",
    ];
    let _ = w.write_record(
        header
            .iter()
            .copied()
            .chain(fact_keys.iter().map(String::as_str)),
    );
    for h in hosts {
        let tags = h.tags.join(";");
        let facts: Vec<String> = fact_keys
            .iter()
            .map(|k| h.facts.get(k).map(fact_text).unwrap_or_default())
            .collect();
        let _ = w.write_record(
            [
                &h.name,
                &h.address,
                &h.hardware,
                &h.workload,
                &h.datacenter,
                &h.rack,
                &h.kernel,
                &tags,
            ]
            .into_iter()
            .map(String::as_str)
            .chain(facts.iter().map(String::as_str)),
        );
    }
    w.into_inner()
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default()
}

/// Hosts by datacenter, in fleet order.
fn by_dc(hosts: &[Host]) -> BTreeMap<&str, Vec<&Host>> {
    let mut m: BTreeMap<&str, Vec<&Host>> = BTreeMap::new();
    for h in hosts {
        m.entry(h.datacenter.as_str()).or_default().push(h);
    }
    m
}

/// A host's Ansible variables, with the site's own names for hardware and workload.
fn ansible_vars(h: &Host) -> Vec<(String, String)> {
    let mut v = vec![
        ("ansible_host".to_string(), h.address.clone()),
        ("hw_class".to_string(), h.hardware.clone()),
        ("role".to_string(), h.workload.clone()),
        ("rack".to_string(), h.rack.clone()),
        ("kernel".to_string(), h.kernel.clone()),
    ];
    v.extend(h.facts.iter().map(|(k, x)| (k.clone(), fact_text(x))));
    v
}

/// Ansible INI: one group per datacenter (with `datacenter` in its `:vars`), the site's own
/// variable names `hw_class` and `role` (map them with `--field hardware=hw_class
/// --field workload=role`).
pub fn to_ansible_ini(hosts: &[Host]) -> String {
    let mut out = String::from("# Ansible inventory. Hardware and workload are in `hw_class` and `role`.\n\n[all:vars]\nansible_user=fleetward\n");
    let dcs = by_dc(hosts);
    for (dc, members) in &dcs {
        let _ = write!(out, "\n[{dc}]\n");
        for h in members {
            out.push_str(&h.name);
            for (k, v) in ansible_vars(h) {
                let _ = write!(out, " {k}={v}");
            }
            if !h.tags.is_empty() {
                let _ = write!(out, " tags={}", h.tags.join(","));
            }
            out.push('\n');
        }
        let _ = write!(out, "\n[{dc}:vars]\ndatacenter={dc}\n");
    }
    out.push_str("\n[datacenters:children]\n");
    for dc in dcs.keys() {
        let _ = writeln!(out, "{dc}");
    }
    out
}

/// Ansible YAML of the same shape as [`to_ansible_ini`].
pub fn to_ansible_yaml(hosts: &[Host]) -> String {
    let mut out = String::from("# Ansible inventory. Hardware and workload are in `hw_class` and `role`.\nall:\n  vars:\n    ansible_user: fleetward\n  children:\n    datacenters:\n      children:\n");
    for (dc, members) in &by_dc(hosts) {
        let _ = write!(
            out,
            "        {dc}:\n          vars:\n            datacenter: {dc}\n          hosts:\n"
        );
        for h in members {
            let mut vars: Vec<String> = ansible_vars(h)
                .into_iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            if !h.tags.is_empty() {
                vars.push(format!("tags: [{}]", h.tags.join(", ")));
            }
            let _ = writeln!(out, "            {}: {{ {} }}", h.name, vars.join(", "));
        }
    }
    out
}

/// A generated fleet as inventory text in `format` (`toml`, `csv`, `ini`, `yaml`).
pub fn write(hosts: &[Host], format: &str) -> Result<String, UnknownFormat> {
    Ok(match format {
        "toml" => to_toml(hosts),
        "csv" => to_csv(hosts),
        "ini" => to_ansible_ini(hosts),
        "yaml" => to_ansible_yaml(hosts),
        other => return Err(UnknownFormat(other.to_string())),
    })
}

/// An inventory format the generator does not write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format `{0}`; formats are toml, csv, ini, yaml")]
pub struct UnknownFormat(pub String);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{parse, FieldMap};

    #[test]
    fn a_fleet_of_ten_datacenters_shares_its_hosts_evenly_with_unique_names() {
        let hosts = generate(&FleetSpec {
            datacenters: 10,
            ..FleetSpec::example(10_000, 1)
        });
        let mut per: BTreeMap<&str, usize> = BTreeMap::new();
        for h in &hosts {
            *per.entry(h.datacenter.as_str()).or_default() += 1;
        }
        let names: Vec<&str> = per.keys().copied().collect();
        assert_eq!(
            names,
            ["ams1", "fra1", "gru1", "iad2", "lhr2", "nrt1", "ord2", "sin2", "sjc3", "syd1"]
        );
        assert!(per.values().all(|n| (850..1150).contains(n)), "{per:?}");
        let unique: std::collections::HashSet<&str> =
            hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(unique.len(), hosts.len());
        assert_eq!(datacenter(12), "dc13");
    }

    #[test]
    fn same_seed_same_fleet_and_every_format_reads_back() {
        let spec = FleetSpec::example(600, 7);
        let a = generate(&spec);
        assert_eq!(a, generate(&spec));
        assert_eq!(a.len(), 600);
        let tiny = a
            .iter()
            .filter(|h| (h.hardware.as_str(), h.workload.as_str()) == TINY_GROUP)
            .count();
        assert_eq!(tiny, 3);
        let mut ansible = FieldMap::default();
        ansible.set("hardware=hw_class").unwrap();
        ansible.set("workload=role").unwrap();
        let strip = |mut hs: Vec<Host>| {
            for h in &mut hs {
                h.facts.remove("groups");
                h.user = None;
            }
            hs
        };
        for (ext, text, map) in [
            ("toml", to_toml(&a), FieldMap::default()),
            ("csv", to_csv(&a), FieldMap::default()),
            ("ini", to_ansible_ini(&a), ansible.clone()),
            ("yaml", to_ansible_yaml(&a), ansible.clone()),
        ] {
            let inv = parse(&format!("f.{ext}"), ext, &text, None, &map).unwrap();
            let mut got = strip(inv.hosts);
            let mut want = a.clone();
            got.sort_by(|x, y| x.name.cmp(&y.name));
            want.sort_by(|x, y| x.name.cmp(&y.name));
            assert_eq!(got, want, "{ext}");
        }
    }
}
