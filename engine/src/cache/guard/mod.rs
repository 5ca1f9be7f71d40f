//! The guard every Redis command passes before it is sent, whether the catalogue declares it,
//! a script builds it at run time, or a revert sends it: an allowlist per safety class, each
//! command read by its own parser the way Redis reads it. Pure: argument vectors in, a
//! decision out (with the live checks the runner must make first, such as a collection's
//! size before a whole-collection read).
//!
//! - `read` may send the commands of [`READ`] and nothing else: no scripts, no `CONFIG GET`
//!   of a secret, no whole-collection read of unbounded size.
//! - `write` adds [`WRITE`]: `CONFIG SET` of the tunables in [`TUNABLES`] within their bounds
//!   (`maxmemory` never below the node's used memory or the entry's floor), key deletion and
//!   expiry in bounded batches, statistics resets.
//! - `dangerous` adds [`DANGEROUS`] (scripts, server-level operations, replication, ACL,
//!   modules, any other `CONFIG SET`), and only with the operator's `--confirm`.
//!
//! Options are parsed as Redis parses them. Redis takes the last of a repeated option, so a
//! repeated option is refused rather than guessed at; an unknown option is refused too. Cost
//! caps (SCAN `COUNT`, `MEMORY USAGE` `SAMPLES`, collection sizes) hold in every class.

mod parse;
mod tables;

use parse::*;
pub use parse::{name, redis_bytes, redis_int};
use serde::{Deserialize, Serialize};
use serde_json::Value;
pub use tables::*;

/// How much harm a catalogue entry can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Safety {
    Read,
    Write,
    Dangerous,
}

impl Safety {
    pub fn as_str(self) -> &'static str {
        match self {
            Safety::Read => "read",
            Safety::Write => "write",
            Safety::Dangerous => "dangerous",
        }
    }
}

/// Cost guards of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Guards {
    /// Largest SCAN `COUNT`.
    pub scan_count: u64,
    /// Largest MEMORY USAGE `SAMPLES` (0, "all", is never allowed).
    pub memory_samples: u64,
    /// Keys examined per node at most (SCAN replies); the last page is trimmed to it.
    pub keys_per_node: u64,
    /// Pause between steps on one node, in milliseconds.
    pub pace_ms: u64,
    /// Largest collection a whole-collection read (`HGETALL`, `SMEMBERS`, `LRANGE 0 -1`, ...)
    /// may return, and the most keys one command (`MGET`, `UNLINK`, ...) may name.
    pub collection_max: u64,
    /// `CONFIG SET maxmemory` is never set below this many bytes (nor below the node's
    /// `used_memory`).
    pub maxmemory_floor: u64,
    /// The whole command on one node must finish within this many seconds.
    pub deadline_secs: u64,
}

impl Default for Guards {
    fn default() -> Self {
        Guards {
            scan_count: 1_000,
            memory_samples: 5,
            keys_per_node: 100_000,
            pace_ms: 2,
            collection_max: 10_000,
            maxmemory_floor: 0,
            deadline_secs: 300,
        }
    }
}

/// A check the runner must make on the live node before the command may be sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "need", rename_all = "snake_case")]
pub enum Need {
    /// `probe` (e.g. `HLEN key`) must answer at most `max`.
    Size { probe: Vec<String>, max: u64 },
    /// The node's `used_memory` (from `INFO memory`) must be at most `bytes`.
    UsedMemoryAtMost { bytes: u64 },
}

/// Why a command may not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("`{command}` {why}; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `{class}`)")]
    Dangerous {
        command: String,
        why: String,
        class: &'static str,
    },
    #[error("`{command}` {why}; this `dangerous` command runs only with --confirm")]
    Unconfirmed { command: String, why: String },
    #[error("`{command}` needs a `write` catalogue entry; this entry is `read`")]
    WriteFromRead { command: String },
    #[error("`{command}` is not on the allowlist of any class (this entry is `{class}`)")]
    NotAllowed {
        command: String,
        class: &'static str,
    },
    #[error("`{command}`: {why}")]
    Syntax { command: String, why: String },
    #[error("`{command}`: {why}")]
    Cost { command: String, why: String },
    #[error("an empty Redis command")]
    Empty,
}

/// Checks one command for an entry of class `safety` with `guards`, `confirmed` meaning the
/// operator passed `--confirm`. `Ok` carries the live checks the runner must make on the node
/// before sending it.
pub fn check(
    argv: &[String],
    safety: Safety,
    guards: &Guards,
    confirmed: bool,
) -> Result<Vec<Need>, GuardError> {
    if argv.is_empty() || argv.first().is_some_and(|a| a.trim().is_empty()) {
        return Err(GuardError::Empty);
    }
    let (command, words) = name(argv);
    let args = argv.get(words..).unwrap_or(&[]);
    let mut c = Ctx {
        command: command.clone(),
        class: safety,
        guards,
        confirmed,
        needs: Vec::new(),
    };
    if let Some(rule) = lookup(&READ, &command) {
        check_rule(&mut c, rule, args)?;
        return Ok(c.needs);
    }
    if let Some(rule) = lookup(&WRITE, &command) {
        if safety == Safety::Read {
            return Err(GuardError::WriteFromRead { command });
        }
        check_rule(&mut c, rule, args)?;
        return Ok(c.needs);
    }
    if let Some(why) = danger(&command) {
        c.dangerous(why)?;
        return Ok(c.needs);
    }
    Err(GuardError::NotAllowed {
        command,
        class: safety.as_str(),
    })
}

/// A reply with every secret setting's value replaced, for `CONFIG GET` (either reply shape:
/// a flat name-value array or a map).
pub fn redact(argv: &[String], reply: Value) -> Value {
    if name(argv).0 != "CONFIG GET" {
        return reply;
    }
    let hidden = || Value::String("<redacted>".into());
    match reply {
        Value::Array(mut a) => {
            let mut i = 0;
            while i + 1 < a.len() {
                if a[i].as_str().is_some_and(is_secret) {
                    a[i + 1] = hidden();
                }
                i += 2;
            }
            Value::Array(a)
        }
        Value::Object(mut m) => {
            for (k, v) in m.iter_mut() {
                if is_secret(k) {
                    *v = hidden();
                }
            }
            Value::Object(m)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests;
