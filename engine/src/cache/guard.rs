//! The guard every Redis command passes before it is sent, whether the catalogue declares it or
//! a script builds it at run time: commands that block or wipe a cache need a `dangerous`
//! entry and the operator's `--confirm`; a `read` entry may send only read commands; cost
//! guards cap SCAN `COUNT` and MEMORY USAGE `SAMPLES`. Pure: argument vectors in, a decision out.

use serde::{Deserialize, Serialize};

/// How much harm a catalogue entry can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Safety {
    Read,
    Write,
    Dangerous,
}

/// Cost guards of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Guards {
    /// Largest SCAN `COUNT`.
    pub scan_count: u64,
    /// Largest MEMORY USAGE `SAMPLES` (0, "all", is never allowed).
    pub memory_samples: u64,
    /// Keys examined per node at most.
    pub keys_per_node: u64,
    /// Pause between steps on one node, in milliseconds.
    pub pace_ms: u64,
}

impl Default for Guards {
    fn default() -> Self {
        Guards {
            scan_count: 1_000,
            memory_samples: 5,
            keys_per_node: 100_000,
            pace_ms: 2,
        }
    }
}

/// Settings `CONFIG SET` may never change from a catalogue command short of `dangerous`:
/// where data is written, who may connect, and what the server exposes.
pub const PROTECTED_SETTINGS: [&str; 16] = [
    "dir",
    "dbfilename",
    "logfile",
    "requirepass",
    "masterauth",
    "masteruser",
    "aclfile",
    "bind",
    "port",
    "protected-mode",
    "enable-debug-command",
    "enable-module-command",
    "enable-protected-configs",
    "rename-command",
    "unixsocket",
    "replicaof",
];

/// Commands (first word, or first two words) a `read` entry may send.
const READ_ONLY: [&str; 45] = [
    "PING",
    "INFO",
    "DBSIZE",
    "ROLE",
    "TIME",
    "LASTSAVE",
    "SCAN",
    "TYPE",
    "TTL",
    "PTTL",
    "EXISTS",
    "STRLEN",
    "LLEN",
    "SCARD",
    "ZCARD",
    "HLEN",
    "XLEN",
    "GET",
    "MGET",
    "HGET",
    "HGETALL",
    "HSCAN",
    "SSCAN",
    "ZSCAN",
    "LRANGE",
    "EVAL_RO",
    "EVALSHA_RO",
    "FCALL_RO",
    "SLOWLOG GET",
    "SLOWLOG LEN",
    "LATENCY LATEST",
    "LATENCY HISTORY",
    "LATENCY DOCTOR",
    "MEMORY USAGE",
    "MEMORY STATS",
    "MEMORY DOCTOR",
    "OBJECT FREQ",
    "OBJECT ENCODING",
    "OBJECT IDLETIME",
    "OBJECT REFCOUNT",
    "CONFIG GET",
    "CLIENT LIST",
    "CLIENT INFO",
    "CLUSTER INFO",
    "CLUSTER NODES",
];

/// Why a command may not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("`{command}` {why}; only a `dangerous` catalogue entry may send it, and only with --confirm")]
    Dangerous { command: String, why: String },
    #[error("`{command}` {why}; this `dangerous` command runs only with --confirm")]
    Unconfirmed { command: String, why: String },
    #[error("`{command}` writes, and this catalogue entry is declared `read`")]
    WriteFromRead { command: String },
    #[error("`{command}`: {why}")]
    Cost { command: String, why: String },
    #[error("an empty Redis command")]
    Empty,
}

fn upper(s: &str) -> String {
    s.to_ascii_uppercase()
}

/// The command's name as Redis reads it: one word, or two for container commands
/// (`CONFIG SET`, `SCRIPT LOAD`).
fn name(argv: &[String]) -> String {
    let first = argv.first().map(|s| upper(s)).unwrap_or_default();
    let containers = [
        "CONFIG", "SCRIPT", "FUNCTION", "CLIENT", "CLUSTER", "SLOWLOG", "LATENCY", "MEMORY",
        "OBJECT", "ACL", "DEBUG",
    ];
    match argv.get(1) {
        Some(sub) if containers.contains(&first.as_str()) => format!("{first} {}", upper(sub)),
        _ => first,
    }
}

/// Why a command blocks or wipes a cache, if it does.
fn danger(argv: &[String]) -> Option<String> {
    let n = name(argv);
    let first = n.split(' ').next().unwrap_or("");
    let why = match first {
        "KEYS" => "walks the whole keyspace in one blocking call",
        "FLUSHALL" | "FLUSHDB" => "deletes every key",
        "DEBUG" => "can crash, block or rewrite the server",
        "SHUTDOWN" => "stops the server",
        "MONITOR" => "streams every command without a bound and slows the server",
        "SAVE" => "blocks the server while it writes a snapshot",
        "SWAPDB" => "swaps whole databases under clients",
        "REPLICAOF" | "SLAVEOF" => "changes replication and can drop the dataset",
        "MIGRATE" => "moves keys off the node",
        "EVAL" | "EVALSHA" | "FCALL" => "runs a script that may write",
        "SCRIPT" => match n.as_str() {
            "SCRIPT EXISTS" => return None,
            _ => "changes or kills server-side scripts",
        },
        "FUNCTION" => match n.as_str() {
            "FUNCTION LIST" | "FUNCTION STATS" | "FUNCTION DUMP" => return None,
            _ => "changes or kills server-side functions",
        },
        "CLIENT" => match n.as_str() {
            "CLIENT KILL" => "disconnects clients",
            "CLIENT PAUSE" => "stops serving clients",
            _ => return None,
        },
        "CLUSTER" => match n.as_str() {
            "CLUSTER RESET" | "CLUSTER FAILOVER" | "CLUSTER FORGET" | "CLUSTER FLUSHSLOTS"
            | "CLUSTER DELSLOTS" | "CLUSTER SETSLOT" => "changes the cluster's topology",
            _ => return None,
        },
        "CONFIG" if n == "CONFIG SET" => {
            let protected: Vec<String> = argv
                .iter()
                .skip(2)
                .step_by(2)
                .map(|k| k.to_ascii_lowercase())
                .filter(|k| PROTECTED_SETTINGS.contains(&k.as_str()))
                .collect();
            if protected.is_empty() {
                return None;
            }
            return Some(format!(
                "changes protected setting(s) {}",
                protected
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        "ACL" => match n.as_str() {
            "ACL WHOAMI" | "ACL LIST" | "ACL USERS" | "ACL CAT" => return None,
            _ => "changes who may connect",
        },
        _ => return None,
    };
    Some(why.to_string())
}

fn is_read_only(argv: &[String]) -> bool {
    let n = name(argv);
    READ_ONLY.contains(&n.as_str())
        || READ_ONLY.contains(&n.split(' ').next().unwrap_or("")) && !n.contains(' ')
}

/// The value after option `opt` (case-insensitive), as a number.
fn option(argv: &[String], opt: &str) -> Option<Result<u64, String>> {
    let i = argv.iter().position(|a| a.eq_ignore_ascii_case(opt))?;
    let v = argv.get(i + 1).cloned().unwrap_or_default();
    Some(v.parse::<u64>().map_err(|_| v))
}

/// Checks one command for an entry of class `safety` with `guards`, `confirmed` meaning the
/// operator passed `--confirm`.
pub fn check(
    argv: &[String],
    safety: Safety,
    guards: &Guards,
    confirmed: bool,
) -> Result<(), GuardError> {
    if argv.is_empty() || argv.first().is_some_and(|a| a.trim().is_empty()) {
        return Err(GuardError::Empty);
    }
    let command = name(argv);
    if let Some(why) = danger(argv) {
        return match (safety, confirmed) {
            (Safety::Dangerous, true) => Ok(()),
            (Safety::Dangerous, false) => Err(GuardError::Unconfirmed { command, why }),
            _ => Err(GuardError::Dangerous { command, why }),
        };
    }
    if safety == Safety::Read && !is_read_only(argv) {
        return Err(GuardError::WriteFromRead { command });
    }
    let cost = |why: String| GuardError::Cost {
        command: command.clone(),
        why,
    };
    if command.ends_with("SCAN") {
        match option(argv, "COUNT") {
            Some(Ok(n)) if n > guards.scan_count => {
                return Err(cost(format!(
                    "COUNT {n} is over this entry's cap of {}",
                    guards.scan_count
                )))
            }
            Some(Err(v)) => return Err(cost(format!("COUNT `{v}` is not a number"))),
            _ => {}
        }
    }
    if command == "MEMORY USAGE" {
        match option(argv, "SAMPLES") {
            Some(Ok(0)) => return Err(cost("SAMPLES 0 reads every element of the key".into())),
            Some(Ok(n)) if n > guards.memory_samples => {
                return Err(cost(format!(
                    "SAMPLES {n} is over this entry's cap of {}",
                    guards.memory_samples
                )))
            }
            Some(Err(v)) => return Err(cost(format!("SAMPLES `{v}` is not a number"))),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `argv | safety | confirmed` → `ok` or the error's text.
    fn check_case(line: &str) -> String {
        let (cmd, rest) = line.split_once('|').unwrap();
        let (safety, confirmed) = rest.split_once('|').unwrap();
        let argv: Vec<String> = cmd.split_whitespace().map(str::to_string).collect();
        let safety = match safety.trim() {
            "read" => Safety::Read,
            "write" => Safety::Write,
            _ => Safety::Dangerous,
        };
        match check(&argv, safety, &Guards::default(), confirmed.trim() == "yes") {
            Ok(()) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn guard_table() {
        let cases = [
            ("INFO | read | no", "ok"),
            ("info memory | read | no", "ok"),
            ("SCAN 0 MATCH user:* COUNT 500 | read | no", "ok"),
            ("SCAN 0 COUNT 5000 | read | no", "`SCAN`: COUNT 5000 is over this entry's cap of 1000"),
            ("scan 0 count lots | read | no", "`SCAN`: COUNT `lots` is not a number"),
            ("MEMORY USAGE k SAMPLES 5 | read | no", "ok"),
            ("MEMORY USAGE k SAMPLES 0 | read | no", "`MEMORY USAGE`: SAMPLES 0 reads every element of the key"),
            ("MEMORY USAGE k SAMPLES 50 | read | no", "`MEMORY USAGE`: SAMPLES 50 is over this entry's cap of 5"),
            ("CONFIG GET maxmemory* | read | no", "ok"),
            ("CONFIG SET maxmemory-policy allkeys-lfu | read | no", "`CONFIG SET` writes, and this catalogue entry is declared `read`"),
            ("CONFIG SET maxmemory-policy allkeys-lfu | write | no", "ok"),
            ("CONFIG SET maxmemory 1gb dir /tmp | write | no", "`CONFIG SET` changes protected setting(s) `dir`; only a `dangerous` catalogue entry may send it, and only with --confirm"),
            ("CONFIG SET requirepass x | dangerous | yes", "ok"),
            ("UNLINK a b | read | no", "`UNLINK` writes, and this catalogue entry is declared `read`"),
            ("UNLINK a b | dangerous | no", "ok"),
            ("KEYS * | read | no", "`KEYS` walks the whole keyspace in one blocking call; only a `dangerous` catalogue entry may send it, and only with --confirm"),
            ("keys user:* | write | no", "`KEYS` walks the whole keyspace in one blocking call; only a `dangerous` catalogue entry may send it, and only with --confirm"),
            ("KEYS * | dangerous | no", "`KEYS` walks the whole keyspace in one blocking call; this `dangerous` command runs only with --confirm"),
            ("KEYS * | dangerous | yes", "ok"),
            ("FLUSHALL ASYNC | write | no", "`FLUSHALL` deletes every key; only a `dangerous` catalogue entry may send it, and only with --confirm"),
            ("FlushDB | write | no", "`FLUSHDB` deletes every key; only a `dangerous` catalogue entry may send it, and only with --confirm"),
            ("DEBUG SLEEP 10 | write | no", "`DEBUG SLEEP` can crash, block or rewrite the server; only a `dangerous` catalogue entry may send it, and only with --confirm"),
            ("SHUTDOWN NOSAVE | write | no", "`SHUTDOWN` stops the server; only a `dangerous` catalogue entry may send it, and only with --confirm"),
            ("MONITOR | read | no", "`MONITOR` streams every command without a bound and slows the server; only a `dangerous` catalogue entry may send it, and only with --confirm"),
            ("SCRIPT LOAD x | write | no", "`SCRIPT LOAD` changes or kills server-side scripts; only a `dangerous` catalogue entry may send it, and only with --confirm"),
            ("SCRIPT EXISTS abc | read | no", "`SCRIPT EXISTS` writes, and this catalogue entry is declared `read`"),
            ("SCRIPT EXISTS abc | write | no", "ok"),
            ("FUNCTION DELETE lib | write | no", "`FUNCTION DELETE` changes or kills server-side functions; only a `dangerous` catalogue entry may send it, and only with --confirm"),
            ("EVAL x 0 | write | no", "`EVAL` runs a script that may write; only a `dangerous` catalogue entry may send it, and only with --confirm"),
            ("EVAL_RO x 0 | read | no", "ok"),
            ("CLIENT LIST | read | no", "ok"),
            ("CLIENT KILL ID 7 | write | no", "`CLIENT KILL` disconnects clients; only a `dangerous` catalogue entry may send it, and only with --confirm"),
            ("SLOWLOG GET 10 | read | no", "ok"),
            ("SLOWLOG RESET | read | no", "`SLOWLOG RESET` writes, and this catalogue entry is declared `read`"),
            ("OBJECT FREQ k | read | no", "ok"),
            ("   | read | no", "an empty Redis command"),
        ];
        let mut failures = Vec::new();
        for (input, expect) in cases {
            let got = check_case(input);
            if got != expect {
                failures.push(format!("{input}\n  expected: {expect}\n  got:      {got}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
