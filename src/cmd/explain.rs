//! `fleetward explain`: why each decision of a rollout was made, from its journal: the policy
//! hash, the gates' reasons and levels, bake extensions, operator overrides, and the hosts held
//! back or quarantined.

use crate::output::{json_line, Exit, Format};
use fleetward_engine::rollout::{explain, session};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The rollout's state directory (the one `rollout start` or `simulate --state-dir` wrote).
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Only the decisions about this stage: its name (`canary`, `wave 2`) or index.
    #[arg(long)]
    pub stage: Option<String>,
    /// Only the decisions about this host, and the gates of its stage.
    #[arg(long)]
    pub host: Option<String>,
}

pub fn run(ctx: &super::Ctx, a: Args) -> anyhow::Result<Exit> {
    let e = session::explain(&a.state_dir, a.stage.as_deref(), a.host.as_deref())?;
    match ctx.format {
        Format::Json => {
            let mut v = serde_json::to_value(&e)?;
            v["ok"] = true.into();
            json_line(&v);
        }
        Format::Human => print!("{}", explain::render(&e)),
    }
    Ok(Exit::Ok)
}
