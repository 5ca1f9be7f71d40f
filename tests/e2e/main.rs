//! End-to-end tests over the `fleetward` binary: real processes, real files, real `notify`
//! events. One test binary, so the engine links once.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cache;
mod cache_findings;
mod cli;
mod coord;
mod drift;
mod etcd;
mod gate;
mod plan;
mod prometheus;
mod redisd;
mod report;
mod rollback;
mod rollout;
mod shards;
mod signals;
mod simulate;
mod ssh;
mod sshd;
mod support;
mod watch;
