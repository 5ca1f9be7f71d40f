//! `fleetward eval`: call one policy function on a JSON input and print the result.

use super::Ctx;
use crate::output::{json_line, Exit, Format};
use anyhow::Context;
use fleetward_engine::runtime::typed::to_dynamic;
use fleetward_engine::PolicyError;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The policy directory.
    #[arg(long, default_value = "policies")]
    pub policy_dir: PathBuf,
    /// The function: `NAME`, or `KIND::NAME` when several policies define it.
    #[arg(long = "fn", value_name = "NAME")]
    pub func: String,
    /// A JSON file: the argument of a one-parameter function, or an array of arguments for a
    /// function with several. `-` reads standard input. Not needed for zero parameters.
    #[arg(long)]
    pub input: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<Exit> {
    let set = ctx.load(&a.policy_dir)?;
    let (policy, sigs) = set.resolve_fn(&a.func)?;
    let input: Option<serde_json::Value> = match &a.input {
        None => None,
        Some(p) => {
            let text = if p.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading standard input")?
            } else {
                std::fs::read_to_string(p).with_context(|| format!("reading `{}`", p.display()))?
            };
            Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("`{}` is not valid JSON", p.display()))?,
            )
        }
    };
    // Pick the overload the input fits: none → 0 params; an array → as many params as it has
    // elements (or 1, taking the array whole); anything else → 1 param.
    let args: Vec<serde_json::Value> = {
        let arities: Vec<usize> = sigs.iter().map(|s| s.params.len()).collect();
        match input {
            None => Vec::new(),
            Some(serde_json::Value::Array(items))
                if !arities.contains(&1)
                    || (arities.contains(&items.len()) && items.len() != 1) =>
            {
                items
            }
            Some(v) => vec![v],
        }
    };
    let sig = sigs
        .iter()
        .find(|s| s.params.len() == args.len())
        .ok_or_else(|| PolicyError::BadInput {
            function: a.func.clone(),
            message: format!(
                "it takes {} but the input gives {} argument(s)",
                sigs.iter()
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
            function: a.func.clone(),
            message,
        })?;
    let start = std::time::Instant::now();
    let out = set.eval_json(policy.kind, &sig.name, dyn_args)?;
    let micros = start.elapsed().as_micros();
    // A verdict sets the exit code as a gate would.
    let exit = match out.value.get("verdict").and_then(|v| v.as_str()) {
        Some("pause") => Exit::Attention,
        Some("fail") => Exit::Failed,
        _ => Exit::Ok,
    };
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({
            "ok": true,
            "function": format!("{}::{}", policy.kind, sig),
            "file": policy.file,
            "hash": set.hash(),
            "result": out.value,
            "prints": out.prints,
            "micros": micros,
        })),
        Format::Human => {
            for p in &out.prints {
                eprintln!("print: {p}");
            }
            println!("{}", serde_json::to_string_pretty(&out.value)?);
            eprintln!(
                "{}::{} from {} (set {}) in {} µs",
                policy.kind,
                sig,
                policy.file,
                set.short_hash(),
                micros
            );
        }
    }
    Ok(exit)
}
