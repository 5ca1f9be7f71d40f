//! fleetward-engine: policy sets (load → validate → swap), evaluation under limits, hot
//! reload, and the data model policies decide over.
//!
//! The core ([`runtime`], [`model`], [`config`], [`error`]) does no I/O of its own beyond
//! [`source::SourceTree::read_dir`]; file watching lives in [`watch`] behind a trait.

pub mod alert;
pub mod cache;
pub mod clock;
pub mod config;
pub mod coord;
pub mod defs;
pub mod drift;
pub mod error;
pub mod exec;
pub mod failpoint;
pub mod gate;
pub mod inventory;
pub mod model;
pub mod paths;
pub mod plan;
pub mod pool;
pub mod probe;
pub mod registry;
pub mod reload;
pub mod rollout;
pub mod runtime;
pub mod signals;
pub mod sim;
pub mod source;
pub mod text;
pub mod watch;

pub use config::Limits;
pub use error::{Diagnostic, DiagnosticKind, Invalid, Location, PolicyError};
pub use reload::{PolicyStore, ReloadEvent};
pub use runtime::{LoadOptions, PolicySet};
