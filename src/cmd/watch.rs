//! `fleetward watch [DIR]`: hot reload, one line per reload event.

use super::Ctx;
use crate::output::{color, json_line, Exit, Format};
use fleetward_engine::reload::ReloadEvent;
use fleetward_engine::source::short_hash;
use fleetward_engine::watch::{watch_loop, FsWatcher, DEFAULT_DEBOUNCE};
use fleetward_engine::PolicyStore;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The policy directory.
    #[arg(default_value = "policies")]
    pub dir: PathBuf,
    /// Quiet period, in milliseconds, before a burst of file events counts as one change.
    #[arg(long, default_value_t = DEFAULT_DEBOUNCE.as_millis() as u64)]
    pub debounce_ms: u64,
}

pub fn print_event(format: Format, ev: &ReloadEvent) {
    match format {
        Format::Json => json_line(&serde_json::to_value(ev).unwrap_or_default()),
        Format::Human => match ev {
            ReloadEvent::Reloaded {
                hash,
                elapsed_ms,
                policies,
                ..
            } => println!(
                "reloaded       hash {}  {} policies  {:.1} ms",
                short_hash(hash),
                policies.len(),
                elapsed_ms
            ),
            ReloadEvent::Unchanged { hash } => {
                println!(
                    "unchanged      hash {}",
                    short_hash(hash.as_deref().unwrap_or("-"))
                )
            }
            ReloadEvent::ReloadFailed { hash, error, .. } => {
                let kept = hash
                    .as_deref()
                    .map(|h| format!("keeping hash {}", short_hash(h)))
                    .unwrap_or_else(|| "no set loaded".into());
                println!("reload_failed  {kept}  {}", error.message);
                for d in &error.diagnostics {
                    eprint!("{}", d.render(color()));
                }
            }
        },
    }
    let _ = std::io::stdout().flush();
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<Exit> {
    // Watch first, then load, so no edit between the two is missed.
    let mut watcher = FsWatcher::new(&a.dir, Duration::from_millis(a.debounce_ms))?;
    let store = PolicyStore::new(&a.dir, ctx.load_options());
    print_event(ctx.format, &store.reload());
    watch_loop(&store, &mut watcher, |ev| {
        print_event(ctx.format, ev);
        ControlFlow::Continue(())
    });
    Ok(Exit::Ok)
}
