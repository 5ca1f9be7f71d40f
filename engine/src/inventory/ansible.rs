//! Ansible inventories, INI and YAML (and the JSON of `ansible-inventory --list`): groups,
//! `:children`, `:vars`, host ranges such as `web[01:20]`, `host:port`, and host and group
//! variables merged with Ansible's precedence (`all` < parent groups < child groups, groups of
//! equal depth in name order, host variables last).

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

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Host patterns

/// Splits `host:port` (not IPv6, not inside a range) into its parts.
fn split_port(pattern: &str) -> Result<(&str, Option<u16>), String> {
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
fn hosts_of(pattern: &str) -> Result<(Vec<String>, Option<u16>), String> {
    let (p, port) = split_port(pattern)?;
    Ok((expand_range(p)?, port))
}

// ---------------------------------------------------------------------------------------------
// INI

/// Splits an INI host line into words, honouring quotes and dropping a trailing `# comment`.
fn words(line: &str) -> Result<Vec<(String, bool)>, String> {
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
fn ini_value(raw: &str, quoted: bool) -> Value {
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

enum Section {
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

/// Reads an Ansible YAML inventory, or the JSON `ansible-inventory --list` prints.
pub fn read_yaml(node: &Node) -> Result<Vec<RawHost>, Vec<Problem>> {
    let mut b = Builder::default();
    let NodeKind::Map(top) = &node.kind else {
        return Err(vec![Problem::at(
            node.line,
            format!("expected a map of groups, found {}", node.type_name()),
        )]);
    };
    let mut hostvars: Vec<(String, usize, Map<String, Value>)> = Vec::new();
    for (name, g) in top {
        if name == "_meta" {
            match g.get("hostvars").map(|h| (&h.kind, h.line)) {
                Some((NodeKind::Map(hv), _)) => {
                    for (h, vars) in hv {
                        match vars.to_json() {
                            Value::Object(m) => hostvars.push((h.clone(), vars.line, m)),
                            Value::Null => {}
                            _ => b.problems.push(Problem::at(
                                vars.line,
                                format!(
                                    "hostvars of `{h}` must be a map, found {}",
                                    vars.type_name()
                                ),
                            )),
                        }
                    }
                }
                Some((_, line)) => b
                    .problems
                    .push(Problem::at(line, "`_meta.hostvars` must be a map")),
                None => {}
            }
            continue;
        }
        let gi = b.group(name);
        walk_group(&mut b, gi, g);
    }
    for (h, line, vars) in hostvars {
        match b.host_ix.get(&h).copied() {
            Some(_) => {
                let all = b.group("all");
                b.add_host(all, h, line, vars);
            }
            None => b.problems.push(Problem::at(
                line,
                format!("`_meta.hostvars` names `{h}`, which is in no group"),
            )),
        }
    }
    b.finish()
}

fn walk_group(b: &mut Builder, gi: usize, node: &Node) {
    let entries = match &node.kind {
        NodeKind::Map(e) => e,
        NodeKind::Scalar(Value::Null) => return,
        _ => {
            b.problems.push(Problem::at(
                node.line,
                format!(
                    "group `{}` must be a map with `hosts`, `vars` or `children`, found {}",
                    b.groups.get(gi).map(|g| g.name.as_str()).unwrap_or("?"),
                    node.type_name()
                ),
            ));
            return;
        }
    };
    for (key, v) in entries {
        match key.as_str() {
            "hosts" => match &v.kind {
                NodeKind::Map(hosts) => {
                    for (pattern, vnode) in hosts {
                        let line = vnode.line;
                        let vars = match vnode.to_json() {
                            Value::Object(m) => m,
                            Value::Null => Map::new(),
                            _ => {
                                b.problems.push(Problem::at(
                                    line,
                                    format!(
                                        "variables of `{pattern}` must be a map, found {}",
                                        vnode.type_name()
                                    ),
                                ));
                                continue;
                            }
                        };
                        add_pattern(b, gi, pattern, line, vars);
                    }
                }
                NodeKind::Seq(items) => {
                    for item in items {
                        match item.to_json() {
                            Value::String(p) => add_pattern(b, gi, &p, item.line, Map::new()),
                            _ => b.problems.push(Problem::at(
                                item.line,
                                format!("a host must be a name, found {}", item.type_name()),
                            )),
                        }
                    }
                }
                NodeKind::Scalar(Value::Null) => {}
                _ => b
                    .problems
                    .push(Problem::at(v.line, "`hosts` must be a map or a list")),
            },
            "vars" => match v.to_json() {
                Value::Object(m) => {
                    if let Some(g) = b.groups.get_mut(gi) {
                        g.vars.extend(m);
                    }
                }
                Value::Null => {}
                _ => b.problems.push(Problem::at(
                    v.line,
                    format!("`vars` must be a map, found {}", v.type_name()),
                )),
            },
            "children" => match &v.kind {
                NodeKind::Map(children) => {
                    for (c, cnode) in children {
                        b.add_child(gi, c, cnode.line);
                        let ci = b.group(c);
                        walk_group(b, ci, cnode);
                    }
                }
                NodeKind::Seq(items) => {
                    for item in items {
                        match item.to_json() {
                            Value::String(c) => b.add_child(gi, &c, item.line),
                            _ => b
                                .problems
                                .push(Problem::at(item.line, "a child group must be a name")),
                        }
                    }
                }
                NodeKind::Scalar(Value::Null) => {}
                _ => b
                    .problems
                    .push(Problem::at(v.line, "`children` must be a map or a list")),
            },
            other => b.problems.push(Problem::at(
                v.line,
                format!("unknown key `{other}` in a group; expected `hosts`, `vars` or `children`"),
            )),
        }
    }
}

fn add_pattern(
    b: &mut Builder,
    gi: usize,
    pattern: &str,
    line: usize,
    mut vars: Map<String, Value>,
) {
    match hosts_of(pattern) {
        Ok((names, port)) => {
            if let Some(p) = port {
                vars.entry("ansible_port")
                    .or_insert(Value::Number(p.into()));
            }
            for n in names {
                b.add_host(gi, n, line, vars.clone());
            }
        }
        Err(e) => b.problems.push(Problem::at(line, e)),
    }
}

#[cfg(test)]
mod tests {
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
