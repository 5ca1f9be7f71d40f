//! The policy runtime: compiling a policy directory into a validated, hashed [`PolicySet`] and
//! calling its functions under limits. Pure: it reads nothing but the snapshot it is given.

pub mod callable;
pub(crate) mod diag;
pub(crate) mod engine;
pub mod kinds;
pub(crate) mod resolver;
mod set;
mod testing;
pub mod typed;

pub use set::{FnSig, LoadOptions, PolicyFile, PolicySet, SetSummary, Traced};
pub use testing::TestOutcome;

#[cfg(test)]
mod tests;
