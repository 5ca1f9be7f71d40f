//! Rhai definition files (`.d.rhai`) for editors: the stdlib, the language packages policies
//! may use, the stdlib script modules, and the functions each policy kind must define.

use crate::config::Limits;
use crate::error::PolicyError;
use crate::registry::REGISTRY;
use std::path::{Path, PathBuf};

/// The definition files as `(file name, contents)`.
pub fn definitions() -> Vec<(String, String)> {
    let engine = crate::runtime::engine::build_engine(&Limits::default());
    let mut files: Vec<(String, String)> = engine
        .definitions()
        .with_headers(true)
        .include_standard_packages(true)
        .iter_files()
        .collect();

    let mut api = String::from(
        "module static;\n\n// The functions each fleetward policy file defines. fleetward checks that they\n// exist with these parameters when it loads a policy set.\n",
    );
    for k in REGISTRY.kinds {
        api.push_str(&format!(
            "\n// ---- {} ({}) ----\n// {}\n",
            k.name,
            k.file(),
            k.doc
        ));
        for f in k.functions() {
            let optional = if k.optional.iter().any(|o| o.name == f.name) {
                "Optional. "
            } else {
                ""
            };
            api.push_str(&format!(
                "\n/// {optional}{}\n/// Returns {}.\nfn {}({});\n",
                f.doc,
                f.returns,
                f.name,
                f.params.join(", ")
            ));
        }
    }
    files.push(("__fleetward_policy_api__.d.rhai".to_string(), api));

    let mut std = String::from(
        "module static;\n\n// Stdlib script modules: `import \"std/NAME\" as NAME;` then `NAME::fn(..)`.\n",
    );
    if let Ok(docs) = fleetward_stdlib::docs::script_docs() {
        for d in docs {
            std.push_str(&format!("\n// {}\n", d.signature));
            for line in d.doc.lines() {
                std.push_str(&format!("//   {line}\n"));
            }
        }
    }
    files.push(("__fleetward_std_modules__.d.rhai".to_string(), std));
    files
}

/// Writes the definition files into `dir`, creating it if needed.
pub fn write_definitions(dir: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    let io = |path: &Path, source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut written = Vec::new();
    for (name, text) in definitions() {
        let path = dir.join(&name);
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
        written.push(path);
    }
    Ok(written)
}
