//! Simulation, in one place: generated fleets and metric samples, simulated hosts (the
//! executor and their drift facts), scenarios run on a virtual clock, and the benchmark
//! workloads. Production modules never depend on this one; it drives them.

pub mod bench;
pub mod drift;
pub mod exec;
pub mod fleetgen;
pub mod rollouts;
pub mod samplegen;
pub mod scenario;
pub mod shards;
pub mod verdicts;

pub use scenario::{Scenario, ScenarioError, Summary};

/// Runs `run(seed)` for seeds `1..=seeds` on every core (seeds dealt round-robin to the
/// workers); a worker that panicked gives `stopped()` once in place of its results.
pub(crate) fn over_seeds<T: Send>(
    seeds: usize,
    run: impl Fn(u64) -> T + Sync,
    stopped: impl Fn() -> T,
) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(seeds)
        .max(1);
    let run = &run;
    std::thread::scope(|sc| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                sc.spawn(move || {
                    (t..seeds)
                        .step_by(threads)
                        .map(|seed| run(seed as u64 + 1))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|_| vec![stopped()]))
            .collect()
    })
}
