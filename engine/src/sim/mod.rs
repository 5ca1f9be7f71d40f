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
pub mod verdicts;

pub use scenario::{Scenario, ScenarioError, Summary};
