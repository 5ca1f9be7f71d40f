//! `fleetward test [DIR]`: run the policy tests and end with `N passed, M failed`.

use super::Ctx;
use crate::output::{color, json_line, Exit, Format};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The policy directory.
    #[arg(default_value = "policies")]
    pub dir: PathBuf,
    /// Run only tests whose `file::name` contains this text.
    #[arg(long)]
    pub filter: Option<String>,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<Exit> {
    let set = ctx.load(&a.dir)?;
    let results = set.run_tests(a.filter.as_deref());
    let passed = results.iter().filter(|r| r.passed).count();
    let failed = results.len() - passed;
    match ctx.format {
        Format::Json => {
            for r in &results {
                json_line(&serde_json::json!({ "event": "test", "result": r }));
            }
            json_line(&serde_json::json!({
                "event": "summary", "passed": passed, "failed": failed, "hash": set.hash(),
            }));
        }
        Format::Human => {
            for r in &results {
                let status = if r.passed { "PASS" } else { "FAIL" };
                println!("{status}  {}::{}  ({} µs)", r.file, r.name, r.micros);
                for line in &r.output {
                    println!("      print: {line}");
                }
                if let Some(e) = &r.error {
                    for line in e.render(color()).lines() {
                        println!("      {line}");
                    }
                }
            }
            println!("{passed} passed, {failed} failed");
        }
    }
    Ok(if failed > 0 { Exit::Failed } else { Exit::Ok })
}
