//! `fleetward check [DIR]`: load and validate a policy directory.

use super::Ctx;
use crate::output::{json_line, Exit, Format};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The policy directory.
    #[arg(default_value = "policies")]
    pub dir: PathBuf,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<Exit> {
    let set = ctx.load(&a.dir)?;
    let s = set.summary();
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({ "ok": true, "summary": s })),
        Format::Human => {
            println!("ok  {}  hash {}", a.dir.display(), set.short_hash());
            for p in &s.policies {
                let fns: Vec<String> = p.functions.iter().map(|f| f.to_string()).collect();
                println!("  {:<8} {:<16} {}", p.kind, p.file, fns.join(", "));
            }
            if !s.modules.is_empty() {
                println!("  modules  {}", s.modules.join(", "));
            }
            println!("  tests    {} in {} file(s)", s.tests, s.test_files.len());
        }
    }
    Ok(Exit::Ok)
}
