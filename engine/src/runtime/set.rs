//! A compiled, validated policy set and its typed call path.

use super::diag::{eval_error, parse_error, Sources, SHIM_SOURCE};
use super::engine::{build_engine, EvalScope};
use super::kinds::{KindSpec, Registry};
use super::resolver::SetResolver;
use super::typed::{from_dynamic, IntoArgs};
use crate::config::{Limits, Section, Settings, CONFIG_FILE};
use crate::error::{line_col, Diagnostic, DiagnosticKind, PolicyError};
use crate::source::SourceTree;
use rhai::{CallFnOptions, Dynamic, Engine, FnAccess, Module, Scope, AST};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// How to load a set beyond what the directory says.
/// (`Default` gives fleetward's own kinds and sections; it lives with the registry, above the
/// runtime.)
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// `--limit KEY=VALUE` overrides, applied after `fleetward.toml`.
    pub limit_overrides: Vec<String>,
    /// The policy kinds and settings sections to load with.
    pub registry: Registry,
}

/// A function a policy file defines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FnSig {
    pub name: String,
    pub params: Vec<String>,
}

impl std::fmt::Display for FnSig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", self.name, self.params.join(", "))
    }
}

/// One policy file of a known kind.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyFile {
    pub kind: &'static str,
    pub file: String,
    pub functions: Vec<FnSig>,
    #[serde(skip)]
    spec: &'static KindSpec,
}

#[derive(Debug, Clone)]
pub(super) struct TestFile {
    pub file: String,
    pub module: String,
    pub tests: Vec<String>,
}

/// What `fleetward check` reports about a loaded set.
#[derive(Debug, Clone, Serialize)]
pub struct SetSummary {
    pub dir: String,
    pub hash: String,
    pub policies: Vec<PolicyFile>,
    pub modules: Vec<String>,
    pub test_files: Vec<String>,
    pub tests: usize,
    pub limits: Limits,
}

/// A result together with what the script printed while computing it.
#[derive(Debug, Clone)]
pub struct Traced<T> {
    pub value: T,
    pub prints: Vec<String>,
}

/// A compiled and validated policy directory. Immutable: a reload builds a new one.
pub struct PolicySet {
    pub(super) tree: SourceTree,
    pub(super) limits: Limits,
    sections: BTreeMap<&'static str, Section>,
    registry: Registry,
    pub(super) engine: Engine,
    shims: AST,
    shim_names: HashSet<String>,
    pub(super) policies: BTreeMap<&'static str, PolicyFile>,
    pub(super) modules: Vec<String>,
    pub(super) tests: Vec<TestFile>,
    /// One evaluation at a time on this set: see `EvalScope::serialized`.
    pub(super) evaluating: std::sync::Mutex<()>,
}

impl std::fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySet")
            .field("dir", &self.tree.root())
            .field("hash", &self.hash())
            .finish()
    }
}

fn policy_module(kind: &str) -> String {
    format!("policy_{kind}")
}

fn shim_name(module: &str, func: &str, arity: usize) -> String {
    format!("call__{module}__{func}__{arity}")
}

/// Line and column of `fn NAME` in `text`, or 1:1.
pub(crate) fn fn_location(text: &str, name: &str) -> (usize, usize) {
    let mut from = 0;
    while let Some(i) = text[from..].find("fn ") {
        let at = from + i;
        let rest = text[at + 3..].trim_start();
        if rest.starts_with(name)
            && rest[name.len()..].trim_start().starts_with('(')
            && (at == 0 || !text[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_'))
        {
            return line_col(text, at);
        }
        from = at + 3;
    }
    (1, 1)
}

/// Points `d` at the definition of `fn func` in `file` (or at its first line).
fn at_fn(d: Diagnostic, tree: &SourceTree, file: &str, func: &str) -> Diagnostic {
    let text = tree.text(file);
    let (line, col) = text
        .as_deref()
        .map(|t| fn_location(t, func))
        .unwrap_or((1, 1));
    d.at(file, line, col, text)
}

/// The functions a file defines by name (closures compile to anonymous ones, which nothing
/// calls by name and no listing shows).
pub(super) fn public_fns(ast: &AST) -> Vec<FnSig> {
    let ident = |n: &str| {
        n.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let mut v: Vec<FnSig> = ast
        .iter_functions()
        .filter(|f| f.access == FnAccess::Public && ident(f.name))
        .map(|f| FnSig {
            name: f.name.to_string(),
            params: f.params.iter().map(|p| p.to_string()).collect(),
        })
        .collect();
    v.sort_by(|a, b| (&a.name, a.params.len()).cmp(&(&b.name, b.params.len())));
    v
}

impl PolicySet {
    /// Reads `dir` and compiles it: the startup and reload path.
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<PolicySet, PolicyError> {
        PolicySet::compile(SourceTree::read_dir(dir)?, opts)
    }

    /// Compiles and validates a snapshot: parse every file, check each policy kind's required
    /// functions, evaluate the policy and test files once, then check the results of the
    /// zero-argument functions. Every problem found is reported, not just the first.
    pub fn compile(tree: SourceTree, opts: &LoadOptions) -> Result<PolicySet, PolicyError> {
        let settings = match tree.config() {
            None => Settings::parse("", opts.registry.sections),
            Some(text) => Settings::parse(text, opts.registry.sections),
        }
        .map_err(|e| {
            PolicyError::Invalid(vec![Diagnostic::new(
                DiagnosticKind::Config,
                format!("invalid `{CONFIG_FILE}`: {}", e.message),
            )
            .at(CONFIG_FILE, e.line, e.col, tree.config().cloned())])
        })?;
        let mut limits = settings.limits;
        let sections = settings.sections;
        for o in &opts.limit_overrides {
            limits.set(o).map_err(|m| {
                PolicyError::Invalid(vec![Diagnostic::new(DiagnosticKind::Config, m)])
            })?;
        }
        let mut engine = build_engine(&limits);
        engine.set_module_resolver(SetResolver::new(tree.files().clone()));
        let src = Sources {
            files: tree.files(),
        };
        let mut problems = Vec::new();

        // 1. Parse every file.
        let mut asts = BTreeMap::new();
        for (rel, text) in tree.files().iter() {
            match engine.compile(&**text) {
                Ok(mut ast) => {
                    ast.set_source(rel.as_str());
                    asts.insert(rel.clone(), ast);
                }
                Err(e) => problems.push(parse_error(&src, rel, &e)),
            }
        }

        // A file that does not parse would only be reported again by every file importing it.
        if !problems.is_empty() {
            return Err(PolicyError::Invalid(problems));
        }

        // 2. Sort files into policies, tests and modules; check required functions.
        let mut policies = BTreeMap::new();
        let mut tests = Vec::new();
        let mut modules = Vec::new();
        let fns_of: BTreeMap<&String, Vec<FnSig>> = asts
            .iter()
            .map(|(rel, ast)| (rel, public_fns(ast)))
            .collect();
        for rel in asts.keys() {
            let fns = fns_of.get(rel).cloned().unwrap_or_default();
            if let Some(spec) = opts.registry.kind_of_file(rel) {
                let text = tree.text(rel);
                for req in spec.functions() {
                    let same_name: Vec<&FnSig> =
                        fns.iter().filter(|f| f.name == req.name).collect();
                    if same_name.iter().any(|f| f.params.len() == req.params.len()) {
                        continue;
                    }
                    let optional = spec.optional.iter().any(|o| o.name == req.name);
                    if optional && same_name.is_empty() {
                        continue;
                    }
                    let want = format!("fn {}({})", req.name, req.params.join(", "));
                    let d = match same_name.first() {
                        None => Diagnostic::new(
                            DiagnosticKind::Validation,
                            format!("`{rel}` must define `{want}`"),
                        )
                        .at(rel, 1, 1, text.clone())
                        .with_help(format!("{} It returns {}.", req.doc, req.returns)),
                        Some(found) => at_fn(
                            Diagnostic::new(
                                DiagnosticKind::Validation,
                                format!(
                                    "`fn {found}` takes {} parameter(s); `{rel}` must define `{want}`",
                                    found.params.len()
                                ),
                            ),
                            &tree,
                            rel,
                            req.name,
                        ),
                    };
                    problems.push(d);
                }
                policies.insert(
                    spec.name,
                    PolicyFile {
                        kind: spec.name,
                        file: rel.clone(),
                        functions: fns,
                        spec,
                    },
                );
            } else if rel.ends_with("_test.rhai") {
                tests.push(TestFile {
                    file: rel.clone(),
                    module: format!("policytest_{}", tests.len()),
                    tests: fns
                        .iter()
                        .filter(|f| f.name.starts_with("test_") && f.params.is_empty())
                        .map(|f| f.name.clone())
                        .collect(),
                });
            } else {
                modules.push(rel.clone());
            }
        }

        // 3. Evaluate policy and test files once, as modules: their imports and constants are
        //    bound here, so later calls run with `eval_ast(false)`.
        let mut evaluated: Vec<(String, Module, Vec<FnSig>)> = Vec::new();
        let to_eval = policies
            .values()
            .map(|p| (policy_module(p.kind), p.file.clone()))
            .chain(tests.iter().map(|t| (t.module.clone(), t.file.clone())));
        for (module, rel) in to_eval {
            let Some(ast) = asts.get(&rel) else { continue };
            let guard = EvalScope::enter(&limits);
            match Module::eval_ast_as_new(Scope::new(), ast, &engine) {
                Ok(m) => evaluated.push((module, m, fns_of.get(&rel).cloned().unwrap_or_default())),
                Err(e) => problems.push(eval_error(&src, &rel, &e, &limits)),
            }
            drop(guard);
        }
        if !problems.is_empty() {
            return Err(PolicyError::Invalid(problems));
        }

        // 4. Register them and compile one call shim per function.
        let mut shim_src = String::new();
        let mut shim_names = HashSet::new();
        for (module, m, fns) in evaluated {
            for f in &fns {
                // Closures compile to anonymous functions; nothing calls them by name.
                let ident = f
                    .name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && f.name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !ident {
                    continue;
                }
                let args: Vec<String> = (0..f.params.len()).map(|i| format!("a{i}")).collect();
                let name = shim_name(&module, &f.name, f.params.len());
                shim_src.push_str(&format!(
                    "fn {name}({a}) {{ {module}::{f}({a}) }}\n",
                    a = args.join(", "),
                    f = f.name
                ));
                shim_names.insert(name);
            }
            engine.register_static_module(module.as_str(), m.into());
        }
        let mut shims = engine.compile(&shim_src).map_err(|e| {
            PolicyError::Invalid(vec![Diagnostic::new(
                DiagnosticKind::Syntax,
                format!("internal call shim failed to compile: {e}"),
            )])
        })?;
        shims.set_source(SHIM_SOURCE);

        let set = PolicySet {
            tree,
            limits,
            sections,
            registry: opts.registry,
            engine,
            shims,
            shim_names,
            policies,
            modules,
            tests,
            evaluating: std::sync::Mutex::new(()),
        };

        // 5. Zero-argument functions can be checked now: their results must have the right
        //    shape (`waves()` rising to 100, and so on).
        let mut problems = Vec::new();
        for p in set.policies.values() {
            for req in p
                .spec
                .functions()
                .filter(|r| r.params.is_empty() && set.defines(p.kind, r.name, 0))
            {
                let r = set
                    .call_dynamic(p.kind, req.name, Vec::new())
                    .and_then(|d| {
                        (req.check)(&d)
                            .map_err(|m| set.return_type_error(p, req.name, req.returns, &m.0))
                    });
                if let Err(e) = r {
                    problems.extend(e.diagnostics());
                }
            }
        }
        if !problems.is_empty() {
            return Err(PolicyError::Invalid(problems));
        }
        Ok(set)
    }

    /// SHA-256 of every file in the set, in hex.
    pub fn hash(&self) -> &str {
        self.tree.hash()
    }

    /// The first 12 hex digits of [`hash`](Self::hash), for display.
    pub fn short_hash(&self) -> &str {
        crate::source::short_hash(self.tree.hash())
    }

    pub fn root(&self) -> &Path {
        self.tree.root()
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A section of `fleetward.toml`, as its domain parsed it.
    pub fn section<T: 'static>(&self, name: &str) -> Option<&T> {
        self.sections.get(name).and_then(|s| s.downcast_ref::<T>())
    }

    /// The kinds and sections this set was loaded with.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether `kind`'s policy defines `func` with `arity` parameters.
    pub fn defines(&self, kind: &str, func: &str, arity: usize) -> bool {
        self.shim_names
            .contains(&shim_name(&policy_module(kind), func, arity))
    }

    /// The policy file of a kind, if the set has one.
    pub fn policy(&self, kind: &str) -> Option<&PolicyFile> {
        self.policies.get(kind)
    }

    pub fn summary(&self) -> SetSummary {
        SetSummary {
            dir: self.tree.root().display().to_string(),
            hash: self.hash().to_string(),
            policies: self.policies.values().cloned().collect(),
            modules: self.modules.clone(),
            test_files: self.tests.iter().map(|t| t.file.clone()).collect(),
            tests: self.tests.iter().map(|t| t.tests.len()).sum(),
            limits: self.limits,
        }
    }

    /// Finds a function by `name` or `kind::name` among the policy files.
    pub fn resolve_fn(&self, qualified: &str) -> Result<(&PolicyFile, Vec<&FnSig>), PolicyError> {
        let (kind, name) = match qualified.split_once("::") {
            Some((k, n)) => (Some(k), n),
            None => (None, qualified),
        };
        let hits: Vec<(&PolicyFile, Vec<&FnSig>)> = self
            .policies
            .values()
            .filter(|p| kind.is_none_or(|k| p.kind == k))
            .map(|p| {
                (
                    p,
                    p.functions
                        .iter()
                        .filter(|f| f.name == name)
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, f)| !f.is_empty())
            .collect();
        match hits.len() {
            0 => Err(PolicyError::NoSuchFunction(qualified.to_string())),
            1 => hits
                .into_iter()
                .next()
                .ok_or_else(|| PolicyError::NoSuchFunction(qualified.to_string())),
            _ => Err(PolicyError::AmbiguousFunction {
                name: name.to_string(),
                files: hits.iter().map(|(p, _)| p.file.clone()).collect(),
            }),
        }
    }

    /// Calls `kind`'s function `func` and converts the result to `T`. This is the typed path
    /// every decision goes through.
    pub fn call<T: DeserializeOwned>(
        &self,
        kind: &str,
        func: &str,
        args: impl IntoArgs,
    ) -> Result<T, PolicyError> {
        let args = args.into_args().map_err(|message| PolicyError::BadInput {
            function: func.to_string(),
            message: message.0,
        })?;
        let d = self.call_dynamic(kind, func, args)?;
        from_dynamic::<T>(&d).map_err(|m| {
            let expected = self
                .policies
                .get(kind)
                .and_then(|p| p.spec.function(func))
                .map(|f| f.returns.to_string())
                .unwrap_or_else(|| format!("`{}`", std::any::type_name::<T>()));
            match self.policies.get(kind) {
                Some(p) => self.return_type_error(p, func, &expected, &m.0),
                None => PolicyError::NoSuchFunction(func.to_string()),
            }
        })
    }

    /// Calls a function and returns its raw Rhai result.
    pub fn call_dynamic(
        &self,
        kind: &str,
        func: &str,
        args: Vec<Dynamic>,
    ) -> Result<Dynamic, PolicyError> {
        let file = self
            .policy(kind)
            .map(|p| p.file.clone())
            .unwrap_or_default();
        self.invoke(&policy_module(kind), &file, func, args)
            .map(|t| t.value)
    }

    /// Calls a function, checks its result against the kind's registry when the function is a
    /// registered one, and returns it as JSON together with what the script printed.
    pub fn eval_json(
        &self,
        kind: &str,
        func: &str,
        args: Vec<Dynamic>,
    ) -> Result<Traced<serde_json::Value>, PolicyError> {
        let file = self
            .policy(kind)
            .map(|p| p.file.clone())
            .unwrap_or_default();
        let arity = args.len();
        let t = self.invoke(&policy_module(kind), &file, func, args)?;
        let policy = self
            .policies
            .get(kind)
            .ok_or_else(|| PolicyError::NoSuchFunction(func.to_string()))?;
        let value = match policy
            .spec
            .function(func)
            .filter(|f| f.params.len() == arity)
        {
            Some(spec) => (spec.check)(&t.value)
                .map_err(|m| self.return_type_error(policy, func, spec.returns, &m.0))?,
            None => serde_json::to_value(&t.value)
                .unwrap_or_else(|_| serde_json::Value::String(t.value.to_string())),
        };
        Ok(Traced {
            value,
            prints: t.prints,
        })
    }

    /// Calls `module::func` through its shim. `file` is where `func` is defined; an error Rhai
    /// could not locate (limits pass through without positions) is pinned to `fn func` there.
    pub(super) fn invoke(
        &self,
        module: &str,
        file: &str,
        func: &str,
        args: Vec<Dynamic>,
    ) -> Result<Traced<Dynamic>, PolicyError> {
        let shim = shim_name(module, func, args.len());
        if !self.shim_names.contains(&shim) {
            return Err(PolicyError::NoSuchFunction(format!(
                "{func}/{}",
                args.len()
            )));
        }
        let guard = EvalScope::serialized(&self.limits, &self.evaluating);
        let mut scope = Scope::new();
        let r = self.engine.call_fn_with_options::<Dynamic>(
            CallFnOptions::new().eval_ast(false).rewind_scope(false),
            &mut scope,
            &self.shims,
            &shim,
            args,
        );
        let prints = guard.take_prints();
        drop(guard);
        match r {
            Ok(value) => Ok(Traced { value, prints }),
            Err(e) => Err(self.call_error(file, func, &e)),
        }
    }

    /// A failed call of `func` (defined in `file`) through a call script: an error Rhai could
    /// not locate (limits pass through without positions) is pinned to `fn func` there.
    pub(super) fn call_error(
        &self,
        file: &str,
        func: &str,
        e: &rhai::EvalAltResult,
    ) -> PolicyError {
        let src = Sources {
            files: self.tree.files(),
        };
        let mut d = eval_error(&src, SHIM_SOURCE, e, &self.limits);
        if d.location.as_ref().is_none_or(|l| l.file == SHIM_SOURCE) {
            d.message = format!("in `fn {func}`: {}", d.message);
            d = at_fn(d, &self.tree, file, func);
        }
        PolicyError::Eval(Box::new(d))
    }

    fn return_type_error(
        &self,
        p: &PolicyFile,
        func: &str,
        expected: &str,
        got: &str,
    ) -> PolicyError {
        PolicyError::Eval(Box::new(at_fn(
            Diagnostic::new(
                DiagnosticKind::ReturnType,
                format!(
                    "`fn {func}` in `{}` returned the wrong type: expected {expected}, {got}",
                    p.file
                ),
            ),
            &self.tree,
            &p.file,
            func,
        )))
    }
}
