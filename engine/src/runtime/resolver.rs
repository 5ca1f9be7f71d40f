//! Module resolution for `import`: `std/NAME` from the stdlib, anything else from the policy
//! set's own snapshot (paths relative to the policy directory, `.rhai` optional).

use rhai::{Engine, EvalAltResult, Module, Position, Scope, Shared};

type SharedModule = Shared<Module>;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

pub(crate) struct SetResolver {
    files: Arc<BTreeMap<String, Arc<str>>>,
    cache: Mutex<HashMap<String, SharedModule>>,
    loading: Mutex<Vec<String>>,
}

/// The file an import path names: `lib/common` → `lib/common.rhai`, `std/waves` →
/// `std/waves.rhai`.
pub(crate) fn module_file(path: &str) -> String {
    let p = path.trim_start_matches("./");
    if p.ends_with(".rhai") {
        p.to_string()
    } else {
        format!("{p}.rhai")
    }
}

fn runtime(msg: String, pos: Position) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(msg.into(), pos))
}

impl SetResolver {
    pub(crate) fn new(files: Arc<BTreeMap<String, Arc<str>>>) -> Self {
        SetResolver {
            files,
            cache: Mutex::new(HashMap::new()),
            loading: Mutex::new(Vec::new()),
        }
    }

    fn text_of(&self, file: &str) -> Option<Arc<str>> {
        if let Some(std) = file.strip_prefix("std/") {
            return fleetward_stdlib::script_module_source(&format!("std/{std}")).map(Arc::from);
        }
        self.files.get(file).cloned()
    }
}

impl rhai::ModuleResolver for SetResolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        if path.starts_with('/') || path.split('/').any(|p| p == "..") {
            return Err(runtime(
                format!("module `{path}` is outside the policy directory"),
                pos,
            ));
        }
        let file = module_file(path);
        if let Some(m) = self.cache.lock().ok().and_then(|c| c.get(&file).cloned()) {
            return Ok(m);
        }
        let text = self
            .text_of(&file)
            .ok_or_else(|| Box::new(EvalAltResult::ErrorModuleNotFound(path.to_string(), pos)))?;
        {
            let mut loading = self
                .loading
                .lock()
                .map_err(|_| runtime("module loader poisoned".into(), pos))?;
            if loading.contains(&file) {
                let mut cycle = loading.clone();
                cycle.push(file.clone());
                return Err(runtime(format!("import cycle: {}", cycle.join(" → ")), pos));
            }
            loading.push(file.clone());
        }
        let result = (|| {
            let mut ast = engine.compile(&*text).map_err(|e| {
                Box::new(EvalAltResult::ErrorInModule(
                    file.clone(),
                    Box::new(EvalAltResult::ErrorParsing(*e.0, e.1)),
                    pos,
                ))
            })?;
            ast.set_source(file.as_str());
            Module::eval_ast_as_new(Scope::new(), &ast, engine)
                .map_err(|e| Box::new(EvalAltResult::ErrorInModule(file.clone(), e, pos)))
        })();
        if let Ok(mut loading) = self.loading.lock() {
            loading.retain(|f| f != &file);
        }
        let module: SharedModule = result?.into();
        if let Ok(mut c) = self.cache.lock() {
            c.insert(file, module.clone());
        }
        Ok(module)
    }
}
