//! The rollout's durable state: the event model, the append-only journal with its exclusive
//! lock, and the state folded from it. The controller that drives hosts builds on these.

pub mod bench;
pub mod check;
pub mod controller;
pub mod event;
pub mod explain;
pub mod journal;
pub mod kind;
pub mod render;
pub mod rollback;
pub mod session;
pub mod settings;
pub mod shard;
pub mod spec;
pub mod state;

pub use event::{Event, Record, StagePlan, Step};
pub use journal::{Journal, JournalError};
pub use state::{HostState, Phase, RolloutState};
