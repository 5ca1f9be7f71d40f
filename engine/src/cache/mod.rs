//! Runtime cache commands: the catalogue `cache.rhai` declares, parameter checking, and the
//! round protocol a command's script follows. Pure: the Redis runner sends what a round asks
//! for, after [`guard::check`], and feeds the replies back.
//!
//! A catalogue entry names a script function `run`, called once per round as
//! `run(params, round)` with `round = #{ n, state, replies, node, live }` (`n` from 0;
//! `replies` answer the previous round's `send`, in order; `live` is false in a dry run,
//! where every reply is `()`). It returns `#{ send, state, rows, done }`: the commands
//! to send now (argument vectors), state to carry to the next round, result rows to add, and
//! whether the command is finished. So one SCAN-based command walks its cursor round by round,
//! and every command it builds passes the guard.

use crate::error::Invalid;
pub mod client;
pub mod guard;
pub mod kind;
pub mod render;
pub mod revert;
pub mod runner;
pub mod session;

use crate::model::Host;
use crate::runtime::typed::to_dynamic;
use crate::runtime::PolicySet;
use crate::PolicyError;
use guard::{Guards, Safety};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A parameter's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    Int,
    Float,
    String,
    Bool,
}

impl ParamType {
    /// `int`, `float`, `string`, `bool`: the serde form.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::String => "string",
            ParamType::Bool => "bool",
        }
    }
}

/// A typed parameter with its validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Param {
    #[serde(rename = "type")]
    pub kind: ParamType,
    #[serde(default)]
    pub description: String,
    /// Without a default, the parameter is required.
    #[serde(default)]
    pub default: Option<Value>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    /// Allowed values, when the parameter is an enumeration.
    #[serde(default)]
    pub choices: Vec<Value>,
}

/// One catalogue entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub description: String,
    pub safety: Safety,
    #[serde(default)]
    pub params: BTreeMap<String, Param>,
    /// The default node selector (`fleetward cache run --target` overrides it).
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub guards: Guards,
    /// The script function that runs the command, round by round.
    pub run: String,
    /// For `config-set`-like entries: the parameter holding a duration (seconds) after which
    /// the change is reverted.
    #[serde(default)]
    pub revert_after: Option<String>,
}

/// The catalogue, by command name.
pub type Catalogue = BTreeMap<String, Entry>;

/// Reads `commands()`'s result, naming the entry and field of any problem.
pub fn parse_catalogue(v: &Value) -> Result<Catalogue, Invalid> {
    let map = v
        .as_object()
        .ok_or_else(|| format!("`commands()` must return a map of entries, got `{v}`"))?;
    let mut out = Catalogue::new();
    for (name, e) in map {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(
                format!("command name `{name}` must be letters, digits, `-` or `_`").into(),
            );
        }
        let entry: Entry =
            serde_json::from_value(e.clone()).map_err(|err| format!("command `{name}`: {err}"))?;
        for (p, spec) in &entry.params {
            if let Some(d) = &spec.default {
                check_value(spec, d)
                    .map_err(|m| format!("command `{name}`: default of `{p}`: {m}"))?;
            }
        }
        if let Some(r) = &entry.revert_after {
            if !entry.params.contains_key(r) {
                return Err(format!(
                    "command `{name}`: `revert_after` names `{r}`, which is not a parameter"
                )
                .into());
            }
        }
        out.insert(name.clone(), entry);
    }
    Ok(out)
}

fn check_value(spec: &Param, v: &Value) -> Result<(), Invalid> {
    let ok_type = match spec.kind {
        ParamType::Int => v.as_i64().is_some(),
        ParamType::Float => v.as_f64().is_some(),
        ParamType::String => v.is_string(),
        ParamType::Bool => v.is_boolean(),
    };
    if !ok_type {
        return Err(format!("`{v}` is not a {}", type_word(spec.kind)).into());
    }
    if let Some(x) = v.as_f64() {
        if let Some(min) = spec.min {
            if x < min {
                return Err(format!("`{v}` is below the minimum {min}").into());
            }
        }
        if let Some(max) = spec.max {
            if x > max {
                return Err(format!("`{v}` is above the maximum {max}").into());
            }
        }
    }
    if !spec.choices.is_empty() && !spec.choices.contains(v) {
        return Err(format!(
            "`{v}` is not one of {}",
            spec.choices
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
        .into());
    }
    Ok(())
}

fn type_word(k: ParamType) -> &'static str {
    match k {
        ParamType::Int => "whole number",
        ParamType::Float => "number",
        ParamType::String => "string",
        ParamType::Bool => "boolean",
    }
}

/// Turns `--param k=v` pairs into typed values, with defaults filled in and every value
/// checked. Unknown and missing parameters are errors.
/// A `--param` that does not fit the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(pub String);

pub fn bind_params(
    entry: &Entry,
    given: &[(String, String)],
) -> Result<BTreeMap<String, Value>, ParamError> {
    let mut out = BTreeMap::new();
    for (k, raw) in given {
        let spec = entry.params.get(k).ok_or_else(|| {
            let known: Vec<String> = entry.params.keys().map(|p| format!("`{p}`")).collect();
            ParamError(format!(
                "unknown parameter `{k}`; this command takes {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })?;
        let v = match spec.kind {
            ParamType::Int => raw.parse::<i64>().map(Value::from).map_err(|_| {
                ParamError(format!("parameter `{k}`: `{raw}` is not a whole number"))
            })?,
            ParamType::Float => raw
                .parse::<f64>()
                .ok()
                .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
                .ok_or_else(|| ParamError(format!("parameter `{k}`: `{raw}` is not a number")))?,
            ParamType::Bool => match raw.as_str() {
                "true" | "yes" | "1" => Value::Bool(true),
                "false" | "no" | "0" => Value::Bool(false),
                _ => {
                    return Err(ParamError(format!(
                        "parameter `{k}`: `{raw}` is not true or false"
                    )))
                }
            },
            ParamType::String => Value::String(raw.clone()),
        };
        check_value(spec, &v).map_err(|m| ParamError(format!("parameter `{k}`: {m}")))?;
        out.insert(k.clone(), v);
    }
    for (k, spec) in &entry.params {
        if out.contains_key(k) {
            continue;
        }
        match &spec.default {
            Some(d) => {
                out.insert(k.clone(), d.clone());
            }
            None => {
                return Err(ParamError(format!(
                    "parameter `{k}` is required (`--param {k}=...`)"
                )))
            }
        }
    }
    Ok(out)
}

/// A cache node: one Redis instance of an inventory host (fact `redis_port`, default 6379; or
/// `redis_ports = [6379, 6380]` for several instances, each its own node `host:port`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    pub name: String,
    pub address: String,
    pub port: u16,
}

pub const DEFAULT_REDIS_PORT: u16 = 6379;

/// A target that selects no usable node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectError(pub String);

/// The hosts a selector picks: `key=value` terms joined by `,`, all of which must hold. Keys
/// are host fields (`name`, `address`, `hardware`, `workload`, `datacenter`, `rack`,
/// `kernel`), `tag`, or any fact.
pub fn select_nodes(hosts: &[Host], selector: &str) -> Result<Vec<Node>, SelectError> {
    let mut terms = Vec::new();
    for t in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (k, v) = t
            .split_once('=')
            .ok_or_else(|| SelectError(format!("selector term `{t}` is not `key=value`")))?;
        terms.push((k.trim(), v.trim()));
    }
    let field = |h: &Host, k: &str| -> Option<String> {
        Some(match k {
            "name" => h.name.clone(),
            "address" => h.address.clone(),
            "hardware" => h.hardware.clone(),
            "workload" => h.workload.clone(),
            "datacenter" => h.datacenter.clone(),
            "rack" => h.rack.clone(),
            "kernel" => h.kernel.clone(),
            _ => match h.facts.get(k)? {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
        })
    };
    let mut out = Vec::new();
    for h in hosts {
        let hit = terms.iter().all(|(k, v)| {
            if *k == "tag" {
                h.tags.iter().any(|t| t == v)
            } else {
                field(h, k).as_deref() == Some(*v)
            }
        });
        if !hit {
            continue;
        }
        let ports = h
            .redis_ports()
            .map_err(|e| SelectError(e.to_string()))?
            .unwrap_or_else(|| vec![DEFAULT_REDIS_PORT]);
        let several = ports.len() > 1;
        for port in ports {
            out.push(Node {
                // Several instances on one host are nodes of their own, named by port.
                name: if several {
                    format!("{}:{port}", h.name)
                } else {
                    h.name.clone()
                },
                address: h.address.clone(),
                port,
            });
        }
    }
    if out.is_empty() {
        return Err(SelectError(format!(
            "no inventory host matches the target `{selector}`"
        )));
    }
    Ok(out)
}

/// What the runner hands a command's script each round.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Round {
    pub n: u64,
    pub state: Value,
    pub replies: Vec<Value>,
    pub node: Node,
    /// `false` in a dry run, where every reply is `()`.
    pub live: bool,
}

impl Round {
    /// Round 0 on `node`.
    pub fn first(node: &Node, live: bool) -> Round {
        Round {
            n: 0,
            state: Value::Null,
            replies: Vec::new(),
            node: node.clone(),
            live,
        }
    }

    /// The round after this one, with the state the script returned and the replies.
    pub fn next(&self, state: Value, replies: Vec<Value>) -> Round {
        Round {
            n: self.n + 1,
            state,
            replies,
            node: self.node.clone(),
            live: self.live,
        }
    }
}

/// The catalogue of a policy set, each entry's `run` function checked to exist.
pub fn catalogue(set: &PolicySet) -> Result<Catalogue, PolicyError> {
    let v = set.eval_json("cache", "commands", vec![])?.value;
    let cat = parse_catalogue(&v).map_err(|message| PolicyError::BadInput {
        function: "commands".into(),
        message: message.0,
    })?;
    for (name, e) in &cat {
        if !set.defines("cache", &e.run, 2) {
            return Err(PolicyError::BadInput {
                function: "commands".into(),
                message: format!(
                    "command `{name}`: `run` names `{}`, which cache.rhai does not define with two parameters `(p, r)`",
                    e.run
                ),
            });
        }
    }
    Ok(cat)
}

/// One round of a command's script.
pub fn call_round(
    set: &PolicySet,
    entry: &Entry,
    params: &BTreeMap<String, Value>,
    round: &Round,
) -> Result<Step, PolicyError> {
    let bad = |e: Invalid| PolicyError::BadInput {
        function: entry.run.clone(),
        message: e.0,
    };
    let p = to_dynamic(params).map_err(bad)?;
    let r = to_dynamic(round).map_err(bad)?;
    let out = set.eval_json("cache", &entry.run, vec![p, r])?;
    parse_step(&out.value).map_err(|message| PolicyError::BadInput {
        function: entry.run.clone(),
        message: message.0,
    })
}

/// What a round of a command's script returns.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(default)]
    pub send: Vec<Vec<String>>,
    #[serde(default)]
    pub state: Value,
    #[serde(default)]
    pub rows: Vec<Value>,
    #[serde(default)]
    pub done: bool,
    /// Keys the command has examined so far, when it walks the keyspace and counts them
    /// itself (its own limit can stop short of what SCAN returned).
    #[serde(default)]
    pub examined: Option<u64>,
}

/// Parses a round's result.
pub fn parse_step(v: &Value) -> Result<Step, Invalid> {
    let s: Step =
        serde_json::from_value(v.clone()).map_err(|e| format!("a round returned `{v}`: {e}"))?;
    if !s.done && s.send.is_empty() {
        return Err("a round that is not `done` must `send` something".into());
    }
    Ok(s)
}

/// `[cache]`: the ACL user for cache nodes and the environment variable holding its password
/// (the password itself never lives in a policy directory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    pub user: Option<String>,
    pub password_env: String,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            user: None,
            password_env: "FLEETWARD_REDIS_PASSWORD".into(),
        }
    }
}

/// `[cache]` in `fleetward.toml`.
pub const SECTION: crate::config::SectionSpec = crate::config::SectionSpec {
    name: "cache",
    parse: |text| {
        #[derive(Deserialize)]
        struct Only {
            #[serde(default)]
            cache: CacheSettings,
        }
        Ok(std::sync::Arc::new(
            crate::config::section_of::<Only>(text)?.cache,
        ))
    },
};

impl PolicySet {
    /// `[cache]` in `fleetward.toml`.
    pub fn cache_settings(&self) -> &CacheSettings {
        static DEFAULT: std::sync::OnceLock<CacheSettings> = std::sync::OnceLock::new();
        self.section::<CacheSettings>(SECTION.name)
            .unwrap_or_else(|| DEFAULT.get_or_init(CacheSettings::default))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry() -> Entry {
        parse_catalogue(&json!({
            "big-keys": {
                "description": "largest keys",
                "safety": "read",
                "run": "big_keys",
                "params": {
                    "top": { "type": "int", "default": 20, "min": 1, "max": 1000 },
                    "pattern": { "type": "string", "default": "*" },
                    "policy": { "type": "string", "choices": ["lfu", "lru"], "default": "lfu" },
                    "node": { "type": "string" }
                }
            }
        }))
        .unwrap()
        .remove("big-keys")
        .unwrap()
    }

    #[test]
    fn parameters_are_typed_checked_and_defaulted() {
        let e = entry();
        let p = bind_params(
            &e,
            &[("node".into(), "a".into()), ("top".into(), "5".into())],
        )
        .unwrap();
        assert_eq!(p["top"], json!(5));
        assert_eq!(p["pattern"], json!("*"));
        let err = |given: &[(&str, &str)]| {
            let g: Vec<(String, String)> = given
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            bind_params(&e, &g).unwrap_err().0
        };
        assert_eq!(
            err(&[]),
            "parameter `node` is required (`--param node=...`)"
        );
        assert_eq!(
            err(&[("node", "a"), ("top", "x")]),
            "parameter `top`: `x` is not a whole number"
        );
        assert_eq!(
            err(&[("node", "a"), ("top", "5000")]),
            "parameter `top`: `5000` is above the maximum 1000"
        );
        assert_eq!(
            err(&[("node", "a"), ("policy", "random")]),
            "parameter `policy`: `\"random\"` is not one of `\"lfu\"`, `\"lru\"`"
        );
        assert_eq!(
            err(&[("node", "a"), ("nope", "1")]),
            "unknown parameter `nope`; this command takes `node`, `pattern`, `policy`, `top`"
        );
    }

    #[test]
    fn catalogue_problems_name_the_entry() {
        let bad = |v: Value| parse_catalogue(&v).unwrap_err().0;
        assert!(
            bad(json!({"x": {"description": "d", "safety": "sometimes", "run": "f"}}))
                .starts_with("command `x`: unknown variant `sometimes`")
        );
        assert!(bad(json!({"x": {"description": "d", "safety": "read"}}))
            .contains("missing field `run`"));
        assert_eq!(
            bad(
                json!({"x": {"description": "d", "safety": "read", "run": "f", "params": {"n": {"type": "int", "default": "ten"}}}})
            ),
            "command `x`: default of `n`: `\"ten\"` is not a whole number"
        );
        assert_eq!(
            bad(
                json!({"x": {"description": "d", "safety": "write", "run": "f", "revert_after": "ttl"}})
            ),
            "command `x`: `revert_after` names `ttl`, which is not a parameter"
        );
        assert_eq!(
            bad(json!({"x y": {}})),
            "command name `x y` must be letters, digits, `-` or `_`"
        );
    }

    #[test]
    fn rounds() {
        let s = parse_step(&json!({"send": [["SCAN", "0"]], "state": {"cursor": "0"}})).unwrap();
        assert_eq!(s.send, vec![vec!["SCAN".to_string(), "0".to_string()]]);
        assert!(!s.done);
        assert!(
            parse_step(&json!({"done": true, "rows": [{"a": 1}]}))
                .unwrap()
                .done
        );
        assert_eq!(
            parse_step(&json!({})).unwrap_err().0,
            "a round that is not `done` must `send` something"
        );
    }
}
