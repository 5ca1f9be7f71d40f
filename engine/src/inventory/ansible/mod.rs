//! Ansible inventories, INI and YAML (and the JSON of `ansible-inventory --list`): groups,
//! `:children`, `:vars`, host ranges such as `web[01:20]`, `host:port`, and host and group
//! variables merged with Ansible's precedence (`all` < parent groups < child groups, groups of
//! equal depth in name order, host variables last).

mod ini;
mod pattern;
mod yaml;

pub use ini::read_ini;
use pattern::*;
pub use yaml::read_yaml;
use yaml::*;

use super::tree::{Node, NodeKind};
use super::{check_host_name, infer_scalar, Problem, RawHost};
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};

/// The most hosts one range pattern may expand to.
const MAX_RANGE_HOSTS: usize = 1_000_000;

#[derive(Debug, Default)]
struct Group {
    name: String,
    vars: Map<String, Value>,
    children: Vec<(String, usize)>,
    hosts: Vec<usize>,
}

#[derive(Debug)]
struct HostDecl {
    name: String,
    line: usize,
    vars: Map<String, Value>,
    /// Where each host variable was set, to report conflicting duplicates.
    var_lines: HashMap<String, usize>,
}

#[derive(Debug, Default)]
struct Builder {
    groups: Vec<Group>,
    group_ix: HashMap<String, usize>,
    hosts: Vec<HostDecl>,
    host_ix: HashMap<String, usize>,
    problems: Vec<Problem>,
}

impl Builder {
    fn group(&mut self, name: &str) -> usize {
        if let Some(i) = self.group_ix.get(name) {
            return *i;
        }
        self.groups.push(Group {
            name: name.to_string(),
            ..Group::default()
        });
        self.group_ix
            .insert(name.to_string(), self.groups.len() - 1);
        self.groups.len() - 1
    }

    fn add_host(&mut self, group: usize, name: String, line: usize, vars: Map<String, Value>) {
        if let Err(e) = check_host_name(&name) {
            self.problems.push(Problem::at(line, e));
            return;
        }
        let ix = match self.host_ix.get(&name) {
            Some(i) => *i,
            None => {
                self.hosts.push(HostDecl {
                    name: name.clone(),
                    line,
                    vars: Map::new(),
                    var_lines: HashMap::new(),
                });
                self.host_ix.insert(name.clone(), self.hosts.len() - 1);
                self.hosts.len() - 1
            }
        };
        let Some(h) = self.hosts.get_mut(ix) else {
            return;
        };
        for (k, v) in vars {
            match h.vars.get(&k) {
                Some(old) if *old != v => {
                    let first = h.var_lines.get(&k).copied().unwrap_or(h.line);
                    self.problems.push(Problem::at(
                        line,
                        format!(
                            "host `{name}` sets `{k}` to `{}` here and to `{}` on line {first}",
                            plain(&v),
                            plain(old)
                        ),
                    ));
                }
                _ => {
                    h.var_lines.insert(k.clone(), line);
                    h.vars.insert(k, v);
                }
            }
        }
        if let Some(g) = self.groups.get_mut(group) {
            if !g.hosts.contains(&ix) {
                g.hosts.push(ix);
            }
        }
    }

    fn add_child(&mut self, parent: usize, child: &str, line: usize) {
        self.group(child);
        if let Some(g) = self.groups.get_mut(parent) {
            if !g.children.iter().any(|(c, _)| c == child) {
                g.children.push((child.to_string(), line));
            }
        }
    }

    /// Resolves the group tree and merges variables. Every problem found so far or here is
    /// returned together.
    fn finish(mut self) -> Result<Vec<RawHost>, Vec<Problem>> {
        let all = self.group("all");
        let ungrouped = self.group("ungrouped");
        // Children by index; parents of each group.
        let n = self.groups.len();
        let mut kids: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
        let mut has_parent = vec![false; n];
        for (i, g) in self.groups.iter().enumerate() {
            for (c, line) in &g.children {
                if let Some(ci) = self.group_ix.get(c) {
                    if let Some(k) = kids.get_mut(i) {
                        k.push((*ci, *line));
                    }
                    if let Some(p) = has_parent.get_mut(*ci) {
                        *p = true;
                    }
                }
            }
        }
        for (i, parent) in has_parent.iter().enumerate() {
            if i != all && !parent {
                if let Some(k) = kids.get_mut(all) {
                    k.push((i, 1));
                }
            }
        }
        // Depth: the longest path from `all`, found by a DFS that also finds cycles.
        let mut depth = vec![0usize; n];
        let mut state = vec![0u8; n]; // 0 new, 1 on the stack, 2 done
        let mut order = Vec::with_capacity(n);
        // Start at `all`, then at any group only a cycle could have kept unreached.
        for root in std::iter::once(all).chain(0..n) {
            if state.get(root).copied() != Some(0) {
                continue;
            }
            if let Some(s) = state.get_mut(root) {
                *s = 1;
            }
            let mut stack = vec![(root, 0usize)];
            while let Some((g, next)) = stack.pop() {
                let children = kids.get(g).map(Vec::as_slice).unwrap_or_default();
                if let Some((c, line)) = children.get(next).copied() {
                    stack.push((g, next + 1));
                    match state.get(c).copied().unwrap_or(2) {
                        0 => {
                            if let Some(s) = state.get_mut(c) {
                                *s = 1;
                            }
                            stack.push((c, 0));
                        }
                        1 => self.problems.push(Problem::at(
                            line,
                            format!(
                                "group `{}` is its own ancestor (through `{}`)",
                                self.groups.get(c).map(|x| x.name.as_str()).unwrap_or("?"),
                                self.groups.get(g).map(|x| x.name.as_str()).unwrap_or("?")
                            ),
                        )),
                        _ => {}
                    }
                } else {
                    if let Some(s) = state.get_mut(g) {
                        *s = 2;
                    }
                    order.push(g);
                }
            }
        }
        if !self.problems.is_empty() {
            return Err(self.problems);
        }
        // Reverse post-order is a topological order from `all` down.
        for &g in order.iter().rev() {
            let d = depth.get(g).copied().unwrap_or(0);
            for &(c, _) in kids.get(g).map(Vec::as_slice).unwrap_or_default() {
                if let Some(dc) = depth.get_mut(c) {
                    *dc = (*dc).max(d + 1);
                }
            }
        }
        // Groups of each host: direct ones plus every ancestor.
        let mut parents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (p, ks) in kids.iter().enumerate() {
            for &(c, _) in ks {
                if let Some(v) = parents.get_mut(c) {
                    v.push(p);
                }
            }
        }
        let mut host_groups: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); self.hosts.len()];
        for (gi, g) in self.groups.iter().enumerate() {
            for &h in &g.hosts {
                let Some(set) = host_groups.get_mut(h) else {
                    continue;
                };
                let mut todo = vec![gi];
                while let Some(x) = todo.pop() {
                    if set.insert(x) {
                        todo.extend(parents.get(x).map(Vec::as_slice).unwrap_or_default());
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(self.hosts.len());
        for (hi, h) in self.hosts.into_iter().enumerate() {
            let mut set = host_groups.get(hi).cloned().unwrap_or_default();
            set.insert(all);
            if set.len() == 1 {
                set.insert(ungrouped);
            }
            let mut ordered: Vec<usize> = set.into_iter().collect();
            ordered.sort_by(|a, b| {
                let key = |g: &usize| {
                    (
                        depth.get(*g).copied().unwrap_or(0),
                        self.groups.get(*g).map(|x| x.name.as_str()).unwrap_or(""),
                    )
                };
                key(a).cmp(&key(b))
            });
            let mut vars = Map::new();
            let mut names = Vec::new();
            for g in ordered {
                let Some(group) = self.groups.get(g) else {
                    continue;
                };
                for (k, v) in &group.vars {
                    vars.insert(k.clone(), v.clone());
                }
                if g != all && g != ungrouped {
                    names.push(group.name.clone());
                }
            }
            for (k, v) in h.vars {
                vars.insert(k, v);
            }
            names.sort();
            out.push(RawHost {
                name: h.name,
                line: h.line,
                vars,
                groups: names,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::ini::words;
    use super::*;

    #[test]
    fn ranges() {
        let check = |p: &str, want: &[&str]| assert_eq!(expand_range(p).unwrap(), want, "{p}");
        check("web[01:03].x", &["web01.x", "web02.x", "web03.x"]);
        check("n[8:10]", &["n8", "n9", "n10"]);
        check("db-[a:c]", &["db-a", "db-b", "db-c"]);
        check("s[0:20:10]", &["s0", "s10", "s20"]);
        check("r[1:2]h[a:b]", &["r1ha", "r1hb", "r2ha", "r2hb"]);
        check("plain", &["plain"]);
        for bad in [
            "w[1:",
            "w[3:1]",
            "w[01:100]",
            "w[1:x]",
            "w[1:2:0]",
            "w]",
            "w[0:99999999]",
        ] {
            assert!(expand_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ports_and_words() {
        assert_eq!(split_port("h:2222").unwrap(), ("h", Some(2222)));
        assert_eq!(split_port("w[1:3]:22").unwrap(), ("w[1:3]", Some(22)));
        assert_eq!(split_port("w[1:3]").unwrap(), ("w[1:3]", None));
        assert_eq!(split_port("fe80::1").unwrap(), ("fe80::1", None));
        assert!(split_port("h:http").is_err());
        let w = words(r#"h a=1 b="x y" c='q' # note"#).unwrap();
        let w: Vec<&str> = w.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(w, ["h", "a=1", "b=x y", "c=q"]);
    }
}
