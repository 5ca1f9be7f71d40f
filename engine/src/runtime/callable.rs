//! What `fleetward eval` can call: the functions of policy files (`KIND::NAME`, or `NAME` when
//! one policy defines it) and of module files (`lib/thresholds::NAME`), chosen by the input's
//! shape among overloads. A name nothing defines gets the closest callable names.

use super::engine::EvalScope;
use super::set::{public_fns, FnSig, PolicySet, Traced};
use super::typed::to_dynamic;
use crate::error::PolicyError;
use rhai::{Dynamic, Scope};
use serde::Serialize;

/// Where a callable function lives.
#[derive(Debug, Clone)]
enum Home {
    /// A policy kind's file.
    Policy(&'static str),
    /// A module file, imported by its path (`lib/thresholds`).
    Module(String),
}

/// The overloads of one function name in one file.
#[derive(Debug, Clone)]
pub struct Callable {
    home: Home,
    /// The file that defines it.
    pub file: String,
    pub sigs: Vec<FnSig>,
}

impl Callable {
    /// `gates` or `lib/thresholds`: what qualifies the name.
    pub fn qualifier(&self) -> &str {
        match &self.home {
            Home::Policy(k) => k,
            Home::Module(m) => m,
        }
    }
}

/// An evaluation: the function called, its result and what it printed.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// `gates::gate(w)`.
    pub function: String,
    pub file: String,
    pub result: serde_json::Value,
    pub prints: Vec<String>,
    pub micros: u128,
}

/// The closest of `names` to `wanted`, best first, at most 5.
fn closest(wanted: &str, names: Vec<String>) -> Vec<String> {
    let bare = wanted.rsplit("::").next().unwrap_or(wanted);
    let mut scored: Vec<(f64, String)> = names
        .into_iter()
        .map(|n| {
            let short = n.rsplit("::").next().unwrap_or(&n);
            let s = strsim::jaro_winkler(wanted, &n).max(strsim::jaro_winkler(bare, short));
            (s, n)
        })
        .filter(|(s, _)| *s >= 0.7)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(5).map(|(_, n)| n).collect()
}

impl PolicySet {
    /// The functions a module file (not a policy kind, not a test file) defines.
    fn module_fns(&self, rel: &str) -> Vec<FnSig> {
        self.tree
            .text(rel)
            .and_then(|t| self.engine.compile(&*t).ok())
            .map(|ast| public_fns(&ast))
            .unwrap_or_default()
    }

    /// Every callable `qualifier::name`, for suggestions.
    fn callable_names(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .policies
            .values()
            .flat_map(|p| {
                p.functions
                    .iter()
                    .map(|f| format!("{}::{}", p.kind, f.name))
            })
            .collect();
        for m in &self.modules {
            let path = m.trim_end_matches(".rhai");
            out.extend(
                self.module_fns(m)
                    .into_iter()
                    .map(|f| format!("{path}::{}", f.name)),
            );
        }
        out.sort();
        out.dedup();
        out
    }

    /// Finds `NAME`, `KIND::NAME` or `MODULE/PATH::NAME`.
    pub fn callable(&self, qualified: &str) -> Result<Callable, PolicyError> {
        let (qualifier, name) = match qualified.rsplit_once("::") {
            Some((q, n)) => (Some(q), n),
            None => (None, qualified),
        };
        let module = qualifier.and_then(|q| {
            let rel = format!("{}.rhai", q.trim_end_matches(".rhai"));
            self.modules.contains(&rel).then_some(rel)
        });
        let found = match (qualifier, module) {
            (Some(q), Some(rel)) => {
                let sigs: Vec<FnSig> = self
                    .module_fns(&rel)
                    .into_iter()
                    .filter(|f| f.name == name)
                    .collect();
                (!sigs.is_empty()).then(|| Callable {
                    home: Home::Module(q.trim_end_matches(".rhai").to_string()),
                    file: rel,
                    sigs,
                })
            }
            _ => match self.resolve_fn(qualified) {
                Ok((p, sigs)) => Some(Callable {
                    home: Home::Policy(p.kind),
                    file: p.file.clone(),
                    sigs: sigs.into_iter().cloned().collect(),
                }),
                Err(PolicyError::NoSuchFunction(_)) => None,
                Err(e) => return Err(e),
            },
        };
        found.ok_or_else(|| PolicyError::UnknownFunction {
            name: qualified.to_string(),
            closest: closest(qualified, self.callable_names()),
        })
    }

    /// Calls `c` with the JSON `input`: none for no parameters, an array for several (or one
    /// array parameter), anything else for one.
    pub fn eval(
        &self,
        c: &Callable,
        input: Option<serde_json::Value>,
    ) -> Result<Evaluation, PolicyError> {
        let arities: Vec<usize> = c.sigs.iter().map(|s| s.params.len()).collect();
        let args: Vec<serde_json::Value> = match input {
            None => Vec::new(),
            Some(serde_json::Value::Array(items))
                if !arities.contains(&1)
                    || (arities.contains(&items.len()) && items.len() != 1) =>
            {
                items
            }
            Some(v) => vec![v],
        };
        let qualified = |s: &str| format!("{}::{s}", c.qualifier());
        let sig = c
            .sigs
            .iter()
            .find(|s| s.params.len() == args.len())
            .ok_or_else(|| PolicyError::BadInput {
                function: qualified(&c.sigs.first().map(|s| s.name.clone()).unwrap_or_default()),
                message: format!(
                    "it takes {} but the input gives {} argument(s)",
                    c.sigs
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(" or "),
                    args.len()
                ),
            })?;
        let dyn_args = args
            .iter()
            .map(to_dynamic)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|message| PolicyError::BadInput {
                function: qualified(&sig.name),
                message: message.0,
            })?;
        let start = std::time::Instant::now();
        let out = match &c.home {
            Home::Policy(kind) => self.eval_json(kind, &sig.name, dyn_args)?,
            Home::Module(path) => self.eval_module_fn(path, &c.file, &sig.name, dyn_args)?,
        };
        Ok(Evaluation {
            function: qualified(&sig.to_string()),
            file: c.file.clone(),
            result: out.value,
            prints: out.prints,
            micros: start.elapsed().as_micros(),
        })
    }

    /// Imports the module at `path` as a policy would and calls `func` under the set's limits.
    fn eval_module_fn(
        &self,
        path: &str,
        file: &str,
        func: &str,
        args: Vec<Dynamic>,
    ) -> Result<Traced<serde_json::Value>, PolicyError> {
        let mut scope = Scope::new();
        let names: Vec<String> = (0..args.len()).map(|i| format!("arg__{i}")).collect();
        for (n, a) in names.iter().zip(args) {
            scope.push_dynamic(n.as_str(), a);
        }
        let script = format!(
            "import {:?} as module__; module__::{func}({})",
            path,
            names.join(", ")
        );
        let guard = EvalScope::serialized(&self.limits, &self.evaluating);
        let r = self.engine.eval_with_scope::<Dynamic>(&mut scope, &script);
        let prints = guard.take_prints();
        drop(guard);
        match r {
            Ok(v) => Ok(Traced {
                value: serde_json::to_value(&v)
                    .unwrap_or_else(|_| serde_json::Value::String(v.to_string())),
                prints,
            }),
            Err(e) => Err(self.call_error(file, func, &e)),
        }
    }
}
