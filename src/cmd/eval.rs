//! `fleetward eval`: call one policy or module function on a JSON input and print the result.

use super::Ctx;
use crate::output::{json_line, Exit, Format};
use anyhow::Context;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The policy directory.
    #[arg(long, default_value = "policies")]
    pub policy_dir: PathBuf,
    /// The function: `NAME`, `KIND::NAME` when several policies define it, or
    /// `MODULE::NAME` for a module file (`lib/thresholds::max_change`).
    #[arg(long = "fn", value_name = "NAME")]
    pub func: String,
    /// A JSON file: the argument of a one-parameter function, or an array of arguments for a
    /// function with several. `-` reads standard input. Not needed for zero parameters.
    #[arg(long)]
    pub input: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<Exit> {
    let set = ctx.load(&a.policy_dir)?;
    let callable = set.callable(&a.func)?;
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
    let out = set.eval(&callable, input)?;
    // A verdict sets the exit code as a gate would.
    let exit = match out.result.get("verdict").and_then(|v| v.as_str()) {
        Some("pause") => Exit::Attention,
        Some("fail") => Exit::Failed,
        _ => Exit::Ok,
    };
    match ctx.format {
        Format::Json => {
            let mut v = serde_json::to_value(&out)?;
            v["ok"] = true.into();
            v["hash"] = set.hash().into();
            json_line(&v);
        }
        Format::Human => {
            for p in &out.prints {
                eprintln!("print: {p}");
            }
            println!("{}", serde_json::to_string_pretty(&out.result)?);
            eprintln!(
                "{} from {} (set {}) in {} µs",
                out.function,
                out.file,
                set.short_hash(),
                out.micros
            );
        }
    }
    Ok(exit)
}
