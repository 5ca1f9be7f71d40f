//! Reference data for the stdlib: each function's signature, doc text and ```` ```rhai ````
//! examples, read from the same doc comments that `fleetward defs` publishes.

use rhai::{Engine, Module, Scope};

/// One documented stdlib function.
#[derive(Debug, Clone)]
pub struct FnDoc {
    /// `native` or the script module's path (`std/waves`).
    pub origin: String,
    pub name: String,
    pub signature: String,
    pub doc: String,
    pub examples: Vec<String>,
}

/// Joins doc-comment lines (`/// text` or `/** .. */`) into plain text.
pub fn doc_text(comments: &[String]) -> String {
    let mut out = Vec::new();
    for c in comments {
        for line in c.lines() {
            let l = line.trim_start();
            let l = l
                .strip_prefix("///")
                .or_else(|| l.strip_prefix("/**"))
                .unwrap_or(l);
            let l = l.strip_suffix("*/").unwrap_or(l);
            out.push(l.strip_prefix(' ').unwrap_or(l).to_string());
        }
    }
    out.join("\n")
}

/// The ```` ```rhai ```` blocks of a doc text.
pub fn examples(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<Vec<&str>> = None;
    for line in doc.lines() {
        let t = line.trim();
        match &mut cur {
            None if t == "```rhai" => cur = Some(Vec::new()),
            Some(lines) if t == "```" => {
                out.push(lines.join("\n"));
                cur = None;
            }
            Some(lines) => lines.push(line),
            None => {}
        }
    }
    out
}

/// Every native stdlib function (one entry per overload), read from the engine's metadata.
pub fn native_docs() -> Result<Vec<FnDoc>, String> {
    let mut engine = Engine::new_raw();
    engine.register_global_module(crate::native_module());
    let json = engine
        .gen_fn_metadata_to_json(false)
        .map_err(|e| format!("metadata: {e}"))?;
    let v: serde_json::Value = serde_json::from_str(&json).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for f in v["functions"].as_array().cloned().unwrap_or_default() {
        let comments: Vec<String> = f["docComments"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let doc = doc_text(&comments);
        out.push(FnDoc {
            origin: "native".into(),
            name: f["name"].as_str().unwrap_or_default().to_string(),
            signature: f["signature"].as_str().unwrap_or_default().to_string(),
            examples: examples(&doc),
            doc,
        });
    }
    Ok(out)
}

/// Every function of the stdlib script modules.
pub fn script_docs() -> Result<Vec<FnDoc>, ModuleError> {
    let engine = Engine::new_raw();
    let mut out = Vec::new();
    for (path, src) in crate::SCRIPT_MODULES {
        let ast = engine.compile(src).map_err(|e| ModuleError {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        for f in ast.iter_functions() {
            let comments: Vec<String> = f.comments.iter().map(|c| c.to_string()).collect();
            let doc = doc_text(&comments);
            out.push(FnDoc {
                origin: (*path).to_string(),
                name: f.name.to_string(),
                signature: format!(
                    "{}::{}({})",
                    path.trim_start_matches("std/"),
                    f.name,
                    f.params.join(", ")
                ),
                examples: examples(&doc),
                doc,
            });
        }
    }
    Ok(out)
}

/// A stdlib script module that does not compile or run.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ModuleError {
    pub path: String,
    pub message: String,
}

/// A resolver serving only the stdlib script modules, for running examples outside a
/// policy set.
pub fn std_resolver(
    engine: &Engine,
) -> Result<rhai::module_resolvers::StaticModuleResolver, ModuleError> {
    let mut r = rhai::module_resolvers::StaticModuleResolver::new();
    for (path, src) in crate::SCRIPT_MODULES {
        let mut ast = engine.compile(src).map_err(|e| ModuleError {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        ast.set_source(*path);
        let m = Module::eval_ast_as_new(Scope::new(), &ast, engine).map_err(|e| ModuleError {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        r.insert(*path, m);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut e = Engine::new_raw();
        crate::register(&mut e);
        let r = std_resolver(&e).unwrap();
        e.set_module_resolver(r);
        e
    }

    /// Runs every stdlib doc example, and fails for any function without one.
    #[test]
    fn every_stdlib_function_has_a_passing_example() {
        let engine = engine();
        let mut docs = native_docs().unwrap();
        docs.extend(script_docs().unwrap());
        assert!(docs.len() > 30, "found only {} functions", docs.len());
        let mut missing = Vec::new();
        let mut failed = Vec::new();
        let mut ran = 0;
        // Overloads share one doc comment on the first variant; a name is covered once any
        // of its overloads has an example.
        let mut covered = std::collections::BTreeSet::new();
        for d in &docs {
            for ex in &d.examples {
                ran += 1;
                covered.insert((d.origin.clone(), d.name.clone()));
                if let Err(e) = engine.run(ex) {
                    failed.push(format!("{} ({}): {e}\n{ex}", d.name, d.signature));
                }
            }
        }
        for d in &docs {
            if !covered.contains(&(d.origin.clone(), d.name.clone())) {
                missing.push(d.signature.clone());
            }
        }
        assert!(
            failed.is_empty(),
            "failing examples:\n{}",
            failed.join("\n\n")
        );
        assert!(
            missing.is_empty(),
            "functions without an example: {missing:?}"
        );
        assert!(ran >= docs.len() / 2);
    }

    #[test]
    fn extracts_examples() {
        let doc = "Text.\n\n```rhai\nassert(true);\n```\nMore.\n```rhai\nlet x = 1;\n```";
        assert_eq!(examples(doc), vec!["assert(true);", "let x = 1;"]);
    }
}
