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

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How much harm a catalogue entry can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Safety {
    Read,
    Write,
    Dangerous,
}

impl Safety {
    pub fn word(self) -> &'static str {
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

/// Settings whose value is a secret: never read from a `read` entry, redacted in every reply,
/// never kept in a revert journal.
pub const SECRET_SETTINGS: [&str; 4] = [
    "requirepass",
    "masterauth",
    "tls-key-file-pass",
    "tls-client-key-file-pass",
];

/// Whether setting `name` (any letter case) holds a secret.
pub fn is_secret(name: &str) -> bool {
    SECRET_SETTINGS.contains(&name.to_ascii_lowercase().as_str())
}

/// Settings `CONFIG SET` may never change short of a confirmed `dangerous` entry: where data is
/// written, who may connect, and what the server exposes. (Every setting that is not a
/// [`TUNABLES`] entry needs `dangerous` too; these get a sharper message.)
pub const PROTECTED_SETTINGS: [&str; 18] = [
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
    "appendfilename",
    "appenddirname",
];

/// What a tunable's value may be.
#[derive(Debug, Clone, Copy)]
pub enum Bound {
    /// A size in bytes, with Redis's units (`100mb`, `1gb`).
    Bytes {
        min: u64,
        max: u64,
    },
    Int {
        min: i64,
        max: i64,
    },
    OneOf(&'static [&'static str]),
    YesNo,
}

/// The settings a `write` entry may change, with their bounds.
pub const TUNABLES: [(&str, Bound); 24] = [
    // 0 is "no limit", Redis's default, so a revert to it always passes.
    (
        "maxmemory",
        Bound::Bytes {
            min: 0,
            max: 1 << 50,
        },
    ),
    (
        "maxmemory-policy",
        Bound::OneOf(&[
            "volatile-lru",
            "allkeys-lru",
            "volatile-lfu",
            "allkeys-lfu",
            "volatile-random",
            "allkeys-random",
            "volatile-ttl",
            "noeviction",
        ]),
    ),
    ("maxmemory-samples", Bound::Int { min: 1, max: 64 }),
    (
        "maxmemory-eviction-tenacity",
        Bound::Int { min: 0, max: 100 },
    ),
    ("lfu-log-factor", Bound::Int { min: 0, max: 255 }),
    ("lfu-decay-time", Bound::Int { min: 0, max: 1440 }),
    ("hz", Bound::Int { min: 1, max: 100 }),
    ("dynamic-hz", Bound::YesNo),
    ("active-expire-effort", Bound::Int { min: 1, max: 10 }),
    ("lazyfree-lazy-eviction", Bound::YesNo),
    ("lazyfree-lazy-expire", Bound::YesNo),
    ("lazyfree-lazy-server-del", Bound::YesNo),
    ("lazyfree-lazy-user-del", Bound::YesNo),
    ("activedefrag", Bound::YesNo),
    (
        "active-defrag-threshold-lower",
        Bound::Int { min: 0, max: 100 },
    ),
    (
        "active-defrag-threshold-upper",
        Bound::Int { min: 0, max: 100 },
    ),
    ("active-defrag-cycle-min", Bound::Int { min: 1, max: 99 }),
    ("active-defrag-cycle-max", Bound::Int { min: 1, max: 99 }),
    (
        "slowlog-log-slower-than",
        Bound::Int {
            min: -1,
            max: 10_000_000,
        },
    ),
    (
        "slowlog-max-len",
        Bound::Int {
            min: 0,
            max: 100_000,
        },
    ),
    (
        "latency-monitor-threshold",
        Bound::Int {
            min: 0,
            max: 60_000,
        },
    ),
    (
        "timeout",
        Bound::Int {
            min: 0,
            max: 86_400,
        },
    ),
    ("tcp-keepalive", Bound::Int { min: 0, max: 7_200 }),
    (
        "busy-reply-threshold",
        Bound::Int {
            min: 100,
            max: 60_000,
        },
    ),
];

/// How a command's arguments are read.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// Between `min` and `max` arguments after the name, none checked further.
    Arity(usize, usize),
    /// `SCAN cursor [MATCH p] [COUNT n] [TYPE t]`, or `xSCAN key cursor [MATCH p] [COUNT n]`.
    Scan { keyed: bool },
    /// `MEMORY USAGE key [SAMPLES n]`.
    MemoryUsage,
    /// A read of a whole collection: its size (`probe key`) must be within the cap.
    Whole { probe: &'static str },
    /// `LRANGE key start stop`.
    Range { probe: &'static str },
    /// `ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]`.
    ZRange,
    /// One or more keys, at most `collection_max`.
    Keys,
    /// `SLOWLOG GET [n]`.
    SlowlogGet,
    /// `CONFIG GET pattern [pattern ...]`.
    ConfigGet,
    /// `CONFIG SET name value [name value ...]`.
    ConfigSet,
}

/// The `read` allowlist: (name, rule).
pub const READ: [(&str, RuleRef); 41] = [
    ("PING", RuleRef(Rule::Arity(0, 1))),
    ("INFO", RuleRef(Rule::Arity(0, 16))),
    ("DBSIZE", RuleRef(Rule::Arity(0, 0))),
    ("ROLE", RuleRef(Rule::Arity(0, 0))),
    ("TIME", RuleRef(Rule::Arity(0, 0))),
    ("LASTSAVE", RuleRef(Rule::Arity(0, 0))),
    ("SCAN", RuleRef(Rule::Scan { keyed: false })),
    ("HSCAN", RuleRef(Rule::Scan { keyed: true })),
    ("SSCAN", RuleRef(Rule::Scan { keyed: true })),
    ("ZSCAN", RuleRef(Rule::Scan { keyed: true })),
    ("TYPE", RuleRef(Rule::Arity(1, 1))),
    ("TTL", RuleRef(Rule::Arity(1, 1))),
    ("PTTL", RuleRef(Rule::Arity(1, 1))),
    ("STRLEN", RuleRef(Rule::Arity(1, 1))),
    ("LLEN", RuleRef(Rule::Arity(1, 1))),
    ("SCARD", RuleRef(Rule::Arity(1, 1))),
    ("ZCARD", RuleRef(Rule::Arity(1, 1))),
    ("HLEN", RuleRef(Rule::Arity(1, 1))),
    ("XLEN", RuleRef(Rule::Arity(1, 1))),
    ("GET", RuleRef(Rule::Arity(1, 1))),
    ("HGET", RuleRef(Rule::Arity(2, 2))),
    ("EXISTS", RuleRef(Rule::Keys)),
    ("MGET", RuleRef(Rule::Keys)),
    ("HGETALL", RuleRef(Rule::Whole { probe: "HLEN" })),
    ("HKEYS", RuleRef(Rule::Whole { probe: "HLEN" })),
    ("HVALS", RuleRef(Rule::Whole { probe: "HLEN" })),
    ("SMEMBERS", RuleRef(Rule::Whole { probe: "SCARD" })),
    ("LRANGE", RuleRef(Rule::Range { probe: "LLEN" })),
    ("ZRANGE", RuleRef(Rule::ZRange)),
    ("MEMORY USAGE", RuleRef(Rule::MemoryUsage)),
    ("MEMORY STATS", RuleRef(Rule::Arity(0, 0))),
    ("OBJECT FREQ", RuleRef(Rule::Arity(1, 1))),
    ("OBJECT ENCODING", RuleRef(Rule::Arity(1, 1))),
    ("OBJECT IDLETIME", RuleRef(Rule::Arity(1, 1))),
    ("SLOWLOG GET", RuleRef(Rule::SlowlogGet)),
    ("SLOWLOG LEN", RuleRef(Rule::Arity(0, 0))),
    ("LATENCY LATEST", RuleRef(Rule::Arity(0, 0))),
    ("CONFIG GET", RuleRef(Rule::ConfigGet)),
    ("CLIENT LIST", RuleRef(Rule::Arity(0, 0))),
    ("CLIENT INFO", RuleRef(Rule::Arity(0, 0))),
    ("CLUSTER INFO", RuleRef(Rule::Arity(0, 0))),
];

/// What `write` adds to [`READ`].
pub const WRITE: [(&str, RuleRef); 9] = [
    ("CONFIG SET", RuleRef(Rule::ConfigSet)),
    ("UNLINK", RuleRef(Rule::Keys)),
    ("DEL", RuleRef(Rule::Keys)),
    ("EXPIRE", RuleRef(Rule::Arity(2, 3))),
    ("PEXPIRE", RuleRef(Rule::Arity(2, 3))),
    ("PERSIST", RuleRef(Rule::Arity(1, 1))),
    ("SLOWLOG RESET", RuleRef(Rule::Arity(0, 0))),
    ("LATENCY RESET", RuleRef(Rule::Arity(0, 32))),
    ("CONFIG RESETSTAT", RuleRef(Rule::Arity(0, 0))),
];

/// What `dangerous` adds, with why each needs `--confirm`. A container name alone (`MODULE`)
/// covers every subcommand.
pub const DANGEROUS: [(&str, &str); 36] = [
    ("KEYS", "walks the whole keyspace in one blocking call"),
    ("FLUSHALL", "deletes every key"),
    ("FLUSHDB", "deletes every key"),
    ("DEBUG", "can crash, block or rewrite the server"),
    ("SHUTDOWN", "stops the server"),
    (
        "MONITOR",
        "streams every command without a bound and slows the server",
    ),
    ("SAVE", "blocks the server while it writes a snapshot"),
    ("BGSAVE", "forks the server to write a snapshot"),
    (
        "BGREWRITEAOF",
        "forks the server to rewrite its append-only file",
    ),
    ("SWAPDB", "swaps whole databases under clients"),
    ("REPLICAOF", "changes replication and can drop the dataset"),
    ("SLAVEOF", "changes replication and can drop the dataset"),
    ("FAILOVER", "hands the primary role to a replica"),
    ("SYNC", "starts a full replication stream"),
    ("PSYNC", "starts a replication stream"),
    ("MIGRATE", "moves keys off the node"),
    (
        "EVAL",
        "runs a script, which can write, block the server or walk the keyspace",
    ),
    (
        "EVALSHA",
        "runs a script, which can write, block the server or walk the keyspace",
    ),
    (
        "EVAL_RO",
        "runs a script, which can block the server or walk the keyspace",
    ),
    (
        "EVALSHA_RO",
        "runs a script, which can block the server or walk the keyspace",
    ),
    (
        "FCALL",
        "runs a function, which can write, block the server or walk the keyspace",
    ),
    (
        "FCALL_RO",
        "runs a function, which can block the server or walk the keyspace",
    ),
    ("SCRIPT", "loads, flushes or kills server-side scripts"),
    ("FUNCTION", "loads, deletes or kills server-side functions"),
    ("MODULE", "loads code into the server"),
    ("ACL", "reads or changes who may connect"),
    ("CONFIG REWRITE", "rewrites the server's configuration file"),
    (
        "CONFIG SET",
        "changes a setting outside the write allowlist",
    ),
    ("CONFIG GET", "reads a secret"),
    ("CLIENT KILL", "disconnects clients"),
    ("CLIENT PAUSE", "stops serving clients"),
    ("CLIENT UNPAUSE", "resumes clients another operator paused"),
    (
        "CLIENT NO-EVICT",
        "exempts a connection from client eviction",
    ),
    ("CLUSTER", "changes the cluster's topology"),
    ("LATENCY DOCTOR", "walks the latency history"),
    (
        "MEMORY PURGE",
        "asks the allocator to release memory, which can stall the server",
    ),
];

/// A rule, wrapped so the tables can be public while the rule type stays private.
#[derive(Debug, Clone, Copy)]
pub struct RuleRef(Rule);

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

fn upper(s: &str) -> String {
    s.to_ascii_uppercase()
}

const CONTAINERS: [&str; 12] = [
    "CONFIG", "SCRIPT", "FUNCTION", "CLIENT", "CLUSTER", "SLOWLOG", "LATENCY", "MEMORY", "OBJECT",
    "ACL", "DEBUG", "MODULE",
];

/// The command's name as Redis reads it: one word, or two for container commands
/// (`CONFIG SET`, `SCRIPT LOAD`), and how many words that is.
pub fn name(argv: &[String]) -> (String, usize) {
    let first = argv.first().map(|s| upper(s)).unwrap_or_default();
    match argv.get(1) {
        Some(sub) if CONTAINERS.contains(&first.as_str()) => (format!("{first} {}", upper(sub)), 2),
        _ => (first, 1),
    }
}

fn lookup(table: &[(&str, RuleRef)], n: &str) -> Option<Rule> {
    table.iter().find(|(k, _)| *k == n).map(|(_, r)| r.0)
}

fn danger(n: &str) -> Option<&'static str> {
    let first = n.split(' ').next().unwrap_or("");
    DANGEROUS
        .iter()
        .find(|(k, _)| *k == n)
        .or_else(|| DANGEROUS.iter().find(|(k, _)| *k == first))
        .map(|(_, why)| *why)
}

/// A whole decimal number as Redis's `string2ll` reads it (an optional `-`, digits, no
/// leading zeros, no `+`, no spaces).
pub fn redis_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// A size with Redis's memory units (`1gb`, `100mb`, `512k`, plain bytes).
pub fn redis_bytes(s: &str) -> Option<u64> {
    let l = s.to_ascii_lowercase();
    let units: [(&str, u64); 8] = [
        ("kb", 1 << 10),
        ("mb", 1 << 20),
        ("gb", 1 << 30),
        ("k", 1000),
        ("m", 1_000_000),
        ("g", 1_000_000_000),
        ("b", 1),
        ("", 1),
    ];
    for (u, mul) in units {
        if let Some(n) = l.strip_suffix(u) {
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            return n.parse::<u64>().ok()?.checked_mul(mul);
        }
    }
    None
}

struct Ctx<'a> {
    command: String,
    class: Safety,
    guards: &'a Guards,
    confirmed: bool,
    needs: Vec<Need>,
}

impl Ctx<'_> {
    fn syntax(&self, why: impl Into<String>) -> GuardError {
        GuardError::Syntax {
            command: self.command.clone(),
            why: why.into(),
        }
    }
    fn cost(&self, why: impl Into<String>) -> GuardError {
        GuardError::Cost {
            command: self.command.clone(),
            why: why.into(),
        }
    }
    /// The command needs a confirmed `dangerous` entry, for `why`.
    fn dangerous(&self, why: impl Into<String>) -> Result<(), GuardError> {
        match (self.class, self.confirmed) {
            (Safety::Dangerous, true) => Ok(()),
            (Safety::Dangerous, false) => Err(GuardError::Unconfirmed {
                command: self.command.clone(),
                why: why.into(),
            }),
            (c, _) => Err(GuardError::Dangerous {
                command: self.command.clone(),
                why: why.into(),
                class: c.word(),
            }),
        }
    }
}

/// Options after the fixed arguments: each option word once, with its value. `flags` take no
/// value; `valued` take one. Anything else, or a repeat, is refused.
fn options<'a>(
    c: &Ctx<'_>,
    args: &'a [String],
    valued: &[&str],
    flags: &[&str],
) -> Result<Vec<(String, Option<&'a str>)>, GuardError> {
    let mut out: Vec<(String, Option<&str>)> = Vec::new();
    let mut i = 0;
    while let Some(a) = args.get(i) {
        let o = upper(a);
        if out.iter().any(|(k, _)| *k == o) {
            return Err(c.syntax(format!(
                "repeats `{o}`; Redis would use the last one, so the guard refuses the command"
            )));
        }
        if valued.contains(&o.as_str()) {
            let v = args
                .get(i + 1)
                .ok_or_else(|| c.syntax(format!("`{o}` has no value")))?;
            out.push((o, Some(v.as_str())));
            i += 2;
        } else if flags.contains(&o.as_str()) {
            out.push((o, None));
            i += 1;
        } else {
            return Err(c.syntax(format!("unknown option `{a}`")));
        }
    }
    Ok(out)
}

/// Option `opt`'s value (Redis's `default` when it is absent) must be within 1..=`cap`.
fn capped(
    c: &Ctx<'_>,
    opts: &[(String, Option<&str>)],
    opt: &str,
    cap: u64,
    default: u64,
) -> Result<(), GuardError> {
    match opts.iter().find(|(k, _)| k == opt) {
        Some((_, Some(v))) => count_at_most(c, opt, v, cap).map(|_| ()),
        _ if cap < default => Err(c.cost(format!(
            "without {opt} Redis reads {default}, over this entry's cap of {cap}"
        ))),
        _ => Ok(()),
    }
}

fn count_at_most(c: &Ctx<'_>, what: &str, v: &str, cap: u64) -> Result<u64, GuardError> {
    let n = redis_int(v).ok_or_else(|| c.cost(format!("{what} `{v}` is not a number")))?;
    if n < 1 {
        return Err(c.cost(format!("{what} {n} is not a positive number")));
    }
    let n = n.unsigned_abs();
    if n > cap {
        return Err(c.cost(format!("{what} {n} is over this entry's cap of {cap}")));
    }
    Ok(n)
}

fn check_rule(c: &mut Ctx<'_>, rule: Rule, args: &[String]) -> Result<(), GuardError> {
    let arity = |min: usize, max: usize| -> Result<(), GuardError> {
        if args.len() < min || args.len() > max {
            let want = if min == max {
                format!("{min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(c.syntax(format!("takes {want} argument(s), got {}", args.len())));
        }
        Ok(())
    };
    match rule {
        Rule::Arity(min, max) => arity(min, max),
        Rule::Scan { keyed } => {
            let fixed = if keyed { 2 } else { 1 };
            if args.len() < fixed {
                return Err(c.syntax("has no cursor"));
            }
            let valued: &[&str] = if keyed {
                &["MATCH", "COUNT"]
            } else {
                &["MATCH", "COUNT", "TYPE"]
            };
            let flags: &[&str] = if c.command == "HSCAN" {
                &["NOVALUES"]
            } else {
                &[]
            };
            let opts = options(c, &args[fixed..], valued, flags)?;
            // Redis reads 10 when COUNT is not given.
            capped(c, &opts, "COUNT", c.guards.scan_count, 10)
        }
        Rule::MemoryUsage => {
            if args.is_empty() {
                return Err(c.syntax("names no key"));
            }
            let opts = options(c, &args[1..], &["SAMPLES"], &[])?;
            if opts.first().and_then(|(_, v)| *v).and_then(redis_int) == Some(0) {
                return Err(c.cost("SAMPLES 0 reads every element of the key"));
            }
            // Redis samples 5 elements when SAMPLES is not given.
            capped(c, &opts, "SAMPLES", c.guards.memory_samples, 5)
        }
        Rule::Whole { probe } => {
            arity(1, 1)?;
            c.needs.push(Need::Size {
                probe: vec![probe.to_string(), args[0].clone()],
                max: c.guards.collection_max,
            });
            Ok(())
        }
        Rule::Range { probe } => {
            arity(3, 3)?;
            let (Some(start), Some(stop)) = (redis_int(&args[1]), redis_int(&args[2])) else {
                return Err(c.syntax("start and stop must be whole numbers"));
            };
            range_need(c, probe, &args[0], start, stop);
            Ok(())
        }
        Rule::ZRange => {
            if args.len() < 3 {
                return Err(c.syntax("takes a key, a start and a stop"));
            }
            let mut opts = Vec::new();
            let mut i = 3;
            while let Some(a) = args.get(i) {
                let o = upper(a);
                if opts.iter().any(|(k, _): &(String, Option<u64>)| *k == o) {
                    return Err(c.syntax(format!(
                        "repeats `{o}`; Redis would use the last one, so the guard refuses the command"
                    )));
                }
                match o.as_str() {
                    "BYSCORE" | "BYLEX" | "REV" | "WITHSCORES" => {
                        opts.push((o, None));
                        i += 1;
                    }
                    "LIMIT" => {
                        let (Some(_off), Some(n)) = (
                            args.get(i + 1).and_then(|v| redis_int(v)),
                            args.get(i + 2).and_then(|v| redis_int(v)),
                        ) else {
                            return Err(c.syntax("`LIMIT` takes an offset and a count"));
                        };
                        // A negative count returns every element from the offset on.
                        opts.push((o, (n >= 0).then(|| n.unsigned_abs())));
                        i += 3;
                    }
                    _ => return Err(c.syntax(format!("unknown option `{a}`"))),
                }
            }
            let by_value = opts.iter().any(|(k, _)| k == "BYSCORE" || k == "BYLEX");
            let limit = opts
                .iter()
                .find(|(k, _)| k == "LIMIT")
                .and_then(|(_, n)| *n);
            if by_value {
                match limit {
                    Some(n) if n <= c.guards.collection_max => {}
                    _ => c.needs.push(Need::Size {
                        probe: vec!["ZCARD".into(), args[0].clone()],
                        max: c.guards.collection_max,
                    }),
                }
            } else {
                let (Some(start), Some(stop)) = (redis_int(&args[1]), redis_int(&args[2])) else {
                    return Err(c.syntax("start and stop must be whole numbers"));
                };
                match limit {
                    Some(n) if n <= c.guards.collection_max => {}
                    _ => range_need(c, "ZCARD", &args[0], start, stop),
                }
            }
            Ok(())
        }
        Rule::Keys => {
            if args.is_empty() {
                return Err(c.syntax("names no key"));
            }
            if args.len() as u64 > c.guards.collection_max {
                return Err(c.cost(format!(
                    "names {} keys, over this entry's cap of {} per command",
                    args.len(),
                    c.guards.collection_max
                )));
            }
            Ok(())
        }
        Rule::SlowlogGet => {
            arity(0, 1)?;
            if let Some(v) = args.first() {
                count_at_most(c, "the count", v, 1024)?;
            }
            Ok(())
        }
        Rule::ConfigGet => {
            if args.is_empty() {
                return Err(c.syntax("names no setting"));
            }
            // A pattern can match a secret too: the reply's secrets are redacted (`redact`).
            for a in args.iter().filter(|a| is_secret(a)) {
                c.dangerous(format!("reads the secret `{}`", a.to_ascii_lowercase()))?;
            }
            Ok(())
        }
        Rule::ConfigSet => {
            if args.is_empty() || !args.len().is_multiple_of(2) {
                return Err(c.syntax("takes name value pairs"));
            }
            let mut seen: Vec<String> = Vec::new();
            for pair in args.chunks(2) {
                let [k, v] = pair else { continue };
                let k = k.to_ascii_lowercase();
                if seen.contains(&k) {
                    return Err(c.syntax(format!("names `{k}` twice")));
                }
                seen.push(k.clone());
                if PROTECTED_SETTINGS.contains(&k.as_str()) {
                    c.dangerous(format!("changes the protected setting `{k}`"))?;
                    continue;
                }
                let Some((_, bound)) = TUNABLES.iter().find(|(n, _)| *n == k) else {
                    c.dangerous(format!(
                        "changes `{k}`, which is not on the write allowlist of settings"
                    ))?;
                    continue;
                };
                if let Err(why) = within(c, &k, v, *bound) {
                    c.dangerous(why)?;
                }
            }
            Ok(())
        }
    }
}

/// `LRANGE`/`ZRANGE` by index: a known span within the cap needs no probe; anything else (a
/// negative index counts from the end) needs the collection's size.
fn range_need(c: &mut Ctx<'_>, probe: &str, key: &str, start: i64, stop: i64) {
    let span = if start >= 0 && stop >= 0 {
        Some(
            stop.saturating_sub(start)
                .saturating_add(1)
                .max(0)
                .unsigned_abs(),
        )
    } else {
        None
    };
    match span {
        Some(n) if n <= c.guards.collection_max => {}
        _ => c.needs.push(Need::Size {
            probe: vec![probe.to_string(), key.to_string()],
            max: c.guards.collection_max,
        }),
    }
}

/// Whether `v` is within a tunable's bounds; `Err` says why not.
fn within(c: &mut Ctx<'_>, k: &str, v: &str, bound: Bound) -> Result<(), String> {
    match bound {
        Bound::Bytes { min, max } => {
            let n = redis_bytes(v)
                .ok_or_else(|| format!("sets `{k}` to `{v}`, which is not a size"))?;
            if n < min || n > max {
                return Err(format!("sets `{k}` to `{v}`, outside {min}..={max}"));
            }
            if k == "maxmemory" && n != 0 {
                if n < c.guards.maxmemory_floor {
                    return Err(format!(
                        "sets `maxmemory` to {n} bytes, below this entry's floor of {} bytes",
                        c.guards.maxmemory_floor
                    ));
                }
                c.needs.push(Need::UsedMemoryAtMost { bytes: n });
            }
            Ok(())
        }
        Bound::Int { min, max } => {
            let n = redis_int(v)
                .ok_or_else(|| format!("sets `{k}` to `{v}`, which is not a whole number"))?;
            if n < min || n > max {
                return Err(format!("sets `{k}` to {n}, outside {min}..={max}"));
            }
            Ok(())
        }
        Bound::OneOf(words) => {
            if words.iter().any(|w| w.eq_ignore_ascii_case(v)) {
                Ok(())
            } else {
                Err(format!(
                    "sets `{k}` to `{v}`, not one of {}",
                    words.join(", ")
                ))
            }
        }
        Bound::YesNo => {
            if v.eq_ignore_ascii_case("yes") || v.eq_ignore_ascii_case("no") {
                Ok(())
            } else {
                Err(format!("sets `{k}` to `{v}`, not `yes` or `no`"))
            }
        }
    }
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
        class: safety.word(),
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
