//! fleetward's own inventory format, the same in TOML, JSON and YAML: an optional `defaults`
//! map applied to every host, and a `hosts` list of maps, each with a name.

use super::tree::{Node, NodeKind};
use super::{check_host_name, Problem, RawHost};
use serde_json::{Map, Value};

/// Whether a document is in fleetward's own shape (a top-level `hosts` list).
pub fn looks_native(node: &Node) -> bool {
    matches!(node.get("hosts").map(|h| &h.kind), Some(NodeKind::Seq(_)))
}

pub fn read(node: &Node, name_keys: &[String]) -> Result<Vec<RawHost>, Vec<Problem>> {
    let NodeKind::Map(top) = &node.kind else {
        return Err(vec![Problem::at(
            node.line,
            format!(
                "expected a map with a `hosts` list, found {}",
                node.type_name()
            ),
        )]);
    };
    let mut problems = Vec::new();
    for (k, v) in top {
        if k != "hosts" && k != "defaults" {
            problems.push(Problem::at(
                v.line,
                format!("unknown top-level key `{k}`; expected `defaults` and `hosts`"),
            ));
        }
    }
    let defaults = match node.get("defaults") {
        None => Map::new(),
        Some(d) => match d.to_json() {
            Value::Object(m) => m,
            _ => {
                problems.push(Problem::at(
                    d.line,
                    format!("`defaults` must be a map, found {}", d.type_name()),
                ));
                Map::new()
            }
        },
    };
    let Some(NodeKind::Seq(items)) = node.get("hosts").map(|h| &h.kind) else {
        problems.push(Problem::at(node.line, "there is no `hosts` list"));
        return Err(problems);
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(vars) = item.to_json() else {
            problems.push(Problem::at(
                item.line,
                format!("host #{} must be a map, found {}", i + 1, item.type_name()),
            ));
            continue;
        };
        let name = name_keys.iter().find_map(|k| vars.get(k));
        let name = match name {
            Some(Value::String(s)) => s.trim().to_string(),
            Some(other) => {
                problems.push(Problem::at(
                    item.line,
                    format!("host #{}: the name `{other}` is not a string", i + 1),
                ));
                continue;
            }
            None => {
                problems.push(Problem::at(
                    item.line,
                    format!(
                        "host #{} has no name (looked for {})",
                        i + 1,
                        name_keys
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
                continue;
            }
        };
        if let Err(e) = check_host_name(&name) {
            problems.push(Problem::at(item.line, e));
            continue;
        }
        let mut merged = defaults.clone();
        merged.extend(vars);
        out.push(RawHost {
            name,
            line: item.line,
            vars: merged,
            groups: Vec::new(),
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}
