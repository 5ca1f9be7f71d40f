//! `fleetward defs [DIR]`: write `.d.rhai` definition files for editors.

use super::Ctx;
use crate::output::{json_line, Exit, Format};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to write the files.
    #[arg(default_value = ".fleetward/defs")]
    pub dir: PathBuf,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<Exit> {
    let written = fleetward_engine::defs::write_definitions(&a.dir)?;
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({
            "ok": true,
            "files": written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        })),
        Format::Human => {
            for p in &written {
                println!("wrote {}", p.display());
            }
        }
    }
    Ok(Exit::Ok)
}
