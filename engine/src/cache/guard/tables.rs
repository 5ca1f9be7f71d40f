//! The allowlists: the commands of each safety class with the rule that reads their
//! arguments, the secret and protected settings, and the `CONFIG SET` tunables with bounds.

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
pub(super) enum Rule {
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
pub struct RuleRef(pub(super) Rule);
