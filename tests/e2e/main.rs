//! End-to-end tests over the `fleetward` binary: real processes, real files, real `notify`
//! events. One test binary, so the engine links once.

mod cli;
mod support;
mod watch;
