//! `fleetward`: parses the command line and dispatches to one file per subcommand.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cmd;
mod output;
mod progress;

use clap::{Parser, Subcommand};
use output::{Exit, Format};
use std::process::ExitCode;

const EXIT_CODES: &str = "\
Exit codes:
  0  ok / pass; rollout completed or rolled back with every host back
  1  error: bad input, invalid policy, I/O failure
  2  needs attention: gate paused or inconclusive, rollout paused, drift found,
     review items pending, hosts that returned no signals (collect), hosts that
     failed on their way back in a rollback
  3  failed: gate failed, rollout aborted, policy tests failed,
     simulation outcome differs from the scenario's expectation";

/// Policy engine for kernel rollouts, drift control and runtime cache control across
/// bare-metal fleets. Policies are Rhai scripts in a directory (default `policies/`).
#[derive(Parser, Debug)]
#[command(name = "fleetward", version, after_help = EXIT_CODES)]
struct Cli {
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Format::Human)]
    output: Format,

    /// Override one evaluation limit for this run (`max_operations=500000`); repeatable.
    #[arg(long = "limit", global = true, value_name = "KEY=VALUE")]
    limits: Vec<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate a policy directory.
    #[command(after_help = EXIT_CODES)]
    Check(cmd::check::Args),
    /// Call one policy function on a JSON input: a dry run of any rule.
    #[command(after_help = EXIT_CODES)]
    Eval(cmd::eval::Args),
    /// Hot-reload a policy directory, printing one line per reload event.
    #[command(after_help = EXIT_CODES)]
    Watch(cmd::watch::Args),
    /// Run the policy tests (`fn test_*()` in `*_test.rhai`).
    #[command(after_help = EXIT_CODES)]
    Test(cmd::test::Args),
    /// Write Rhai definition files (`.d.rhai`) for editor autocompletion.
    #[command(after_help = EXIT_CODES)]
    Defs(cmd::defs::Args),
    /// Plan a rollout: canaries, waves, batches and timeline for an inventory (a dry run).
    #[command(after_help = EXIT_CODES)]
    Plan(cmd::plan::Args),
    /// The verdict of `gates.rhai` on a stage's recorded samples against baselines (a dry run).
    #[command(after_help = EXIT_CODES)]
    Gate(cmd::gate::Args),
    /// Signals from real hosts in the gate's schema, written as CSV or Parquet.
    #[command(after_help = EXIT_CODES)]
    Collect(cmd::collect::Args),
    /// Why each decision of a rollout was made, from its journal.
    #[command(after_help = EXIT_CODES)]
    Explain(cmd::explain::Args),
    /// Carry out a rollout over SSH: start, status, pause, resume, abort.
    #[command(after_help = EXIT_CODES)]
    Rollout(cmd::rollout::Args),
    /// Run a rollout scenario on a simulated fleet in virtual time.
    #[command(after_help = EXIT_CODES)]
    Simulate(cmd::simulate::Args),
    /// Drift from declared state: `drift audit`, `drift remediate [--apply]`.
    #[command(after_help = EXIT_CODES)]
    Drift(cmd::drift::Args),
    /// Runtime cache commands from `cache.rhai`: `cache list`, `cache run NAME`, `cache revert`.
    #[command(after_help = EXIT_CODES)]
    Cache(cmd::cache::Args),
    /// Generate example data (`generate fleet`, `generate samples`).
    #[command(after_help = EXIT_CODES)]
    Generate(cmd::generate::Args),
    /// Measure hot reload, a typed policy call, planning, a gate and a simulated rollout.
    #[command(after_help = EXIT_CODES)]
    Bench(cmd::bench::Args),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FLEETWARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let ctx = cmd::Ctx {
        format: cli.output,
        limits: cli.limits,
    };
    let result = match cli.command {
        Command::Check(a) => cmd::check::run(&ctx, a),
        Command::Eval(a) => cmd::eval::run(&ctx, a),
        Command::Watch(a) => cmd::watch::run(&ctx, a),
        Command::Test(a) => cmd::test::run(&ctx, a),
        Command::Defs(a) => cmd::defs::run(&ctx, a),
        Command::Plan(a) => cmd::plan::run(&ctx, a),
        Command::Gate(a) => cmd::gate::run(&ctx, a),
        Command::Rollout(a) => cmd::rollout::run(&ctx, a),
        Command::Collect(a) => cmd::collect::run(&ctx, a),
        Command::Explain(a) => cmd::explain::run(&ctx, a),
        Command::Simulate(a) => cmd::simulate::run(&ctx, a),
        Command::Drift(a) => cmd::drift::run(&ctx, a),
        Command::Cache(a) => cmd::cache::run(&ctx, a),
        Command::Generate(a) => cmd::generate::run(&ctx, a),
        Command::Bench(a) => cmd::bench::run(&ctx, a),
    };
    match result {
        Ok(code) => code.into(),
        Err(e) => {
            output::report_error(ctx.format, &e);
            Exit::Error.into()
        }
    }
}
