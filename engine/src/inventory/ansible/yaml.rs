//! The YAML form (and `ansible-inventory --list` JSON): `all`, `children`, `hosts`, `vars`.

use super::*;

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

pub(super) fn walk_group(b: &mut Builder, gi: usize, node: &Node) {
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

pub(super) fn add_pattern(
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
