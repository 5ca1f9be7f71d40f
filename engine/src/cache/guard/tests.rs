use super::*;
use proptest::prelude::*;

/// `argv | safety | confirmed` → `ok`, `ok needs [...]` or the error's text.
fn check_case(line: &str) -> String {
    let (cmd, rest) = line.split_once('|').unwrap();
    let (safety, confirmed) = rest.split_once('|').unwrap();
    let argv: Vec<String> = cmd.split_whitespace().map(str::to_string).collect();
    let safety = match safety.trim() {
        "read" => Safety::Read,
        "write" => Safety::Write,
        _ => Safety::Dangerous,
    };
    let guards = Guards {
        maxmemory_floor: 64 << 20,
        ..Guards::default()
    };
    match check(&argv, safety, &guards, confirmed.trim() == "yes") {
        Ok(needs) if needs.is_empty() => "ok".into(),
        Ok(needs) => format!("ok needs {}", serde_json::to_string(&needs).unwrap()),
        Err(e) => e.to_string(),
    }
}

fn check_table(cases: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (input, expect) in cases {
        let got = check_case(input);
        if got != *expect {
            failures.push(format!("{input}\n  expected: {expect}\n  got:      {got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn read_commands_and_their_cost_caps() {
    check_table(&[
        ("INFO | read | no", "ok"),
        ("info memory | read | no", "ok"),
        ("SCAN 0 MATCH user:* COUNT 500 | read | no", "ok"),
        (
            "SCAN 0 COUNT 5000 | read | no",
            "`SCAN`: COUNT 5000 is over this entry's cap of 1000",
        ),
        (
            "scan 0 count lots | read | no",
            "`SCAN`: COUNT `lots` is not a number",
        ),
        (
            "SCAN 0 COUNT 0 | read | no",
            "`SCAN`: COUNT 0 is not a positive number",
        ),
        ("SCAN 0 TYPE string | read | no", "ok"),
        (
            "SCAN 0 NOVALUES | read | no",
            "`SCAN`: unknown option `NOVALUES`",
        ),
        ("HSCAN h 0 NOVALUES COUNT 10 | read | no", "ok"),
        (
            "SSCAN s 0 TYPE set | read | no",
            "`SSCAN`: unknown option `TYPE`",
        ),
        ("SCAN 0 MATCH | read | no", "`SCAN`: `MATCH` has no value"),
        ("MEMORY USAGE k SAMPLES 5 | read | no", "ok"),
        ("MEMORY USAGE k | read | no", "ok"),
        (
            "MEMORY USAGE k SAMPLES 0 | read | no",
            "`MEMORY USAGE`: SAMPLES 0 reads every element of the key",
        ),
        (
            "MEMORY USAGE k SAMPLES 50 | read | no",
            "`MEMORY USAGE`: SAMPLES 50 is over this entry's cap of 5",
        ),
        (
            "MEMORY USAGE k SAMPLES 05 | read | no",
            "`MEMORY USAGE`: SAMPLES `05` is not a number",
        ),
        ("CONFIG GET maxmemory* | read | no", "ok"),
        ("CONFIG GET * | read | no", "ok"),
        ("CLIENT LIST | read | no", "ok"),
        ("SLOWLOG GET 10 | read | no", "ok"),
        (
            "SLOWLOG GET 100000 | read | no",
            "`SLOWLOG GET`: the count 100000 is over this entry's cap of 1024",
        ),
        ("OBJECT FREQ k | read | no", "ok"),
        ("GET a b | read | no", "`GET`: takes 1 argument(s), got 2"),
        ("MGET a b c | read | no", "ok"),
        ("   | read | no", "an empty Redis command"),
    ]);
}

#[test]
fn whole_collection_reads_need_a_size_check() {
    check_table(&[
        ("HGETALL h | read | no", r#"ok needs [{"need":"size","probe":["HLEN","h"],"max":10000}]"#),
        ("SMEMBERS s | read | no", r#"ok needs [{"need":"size","probe":["SCARD","s"],"max":10000}]"#),
        ("LRANGE l 0 -1 | read | no", r#"ok needs [{"need":"size","probe":["LLEN","l"],"max":10000}]"#),
        ("LRANGE l 0 99 | read | no", "ok"),
        ("LRANGE l 0 99999 | read | no", r#"ok needs [{"need":"size","probe":["LLEN","l"],"max":10000}]"#),
        ("ZRANGE z 0 -1 | read | no", r#"ok needs [{"need":"size","probe":["ZCARD","z"],"max":10000}]"#),
        ("ZRANGE z 0 -1 WITHSCORES LIMIT 0 10 | read | no", "ok"),
        ("ZRANGE z -inf +inf BYSCORE | read | no", r#"ok needs [{"need":"size","probe":["ZCARD","z"],"max":10000}]"#),
        ("ZRANGE z -inf +inf BYSCORE LIMIT 0 100 | read | no", "ok"),
        ("ZRANGE z -inf +inf BYSCORE LIMIT 0 -1 | read | no", r#"ok needs [{"need":"size","probe":["ZCARD","z"],"max":10000}]"#),
        ("ZRANGE z 0 1 REV REV | read | no", "`ZRANGE`: repeats `REV`; Redis would use the last one, so the guard refuses the command"),
        ("HGETALL a b | read | no", "`HGETALL`: takes 1 argument(s), got 2"),
    ]);
}

#[test]
fn finding_eval_ro_and_scripts_are_dangerous_only() {
    check_table(&[
        ("EVAL_RO x 0 | read | no", "`EVAL_RO` runs a script, which can block the server or walk the keyspace; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `read`)"),
        ("EVALSHA_RO abc 0 | read | no", "`EVALSHA_RO` runs a script, which can block the server or walk the keyspace; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `read`)"),
        ("FCALL_RO f 0 | write | no", "`FCALL_RO` runs a function, which can block the server or walk the keyspace; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `write`)"),
        ("EVAL x 0 | write | no", "`EVAL` runs a script, which can write, block the server or walk the keyspace; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `write`)"),
        ("EVAL_RO x 0 | dangerous | no", "`EVAL_RO` runs a script, which can block the server or walk the keyspace; this `dangerous` command runs only with --confirm"),
        ("EVAL_RO x 0 | dangerous | yes", "ok"),
        ("SCRIPT KILL | dangerous | yes", "ok"),
        ("SCRIPT EXISTS abc | read | no", "`SCRIPT EXISTS` loads, flushes or kills server-side scripts; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `read`)"),
    ]);
}

#[test]
fn finding_config_get_of_a_secret() {
    check_table(&[
        ("CONFIG GET requirepass | read | no", "`CONFIG GET` reads the secret `requirepass`; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `read`)"),
        ("CONFIG GET maxmemory MASTERAUTH | read | no", "`CONFIG GET` reads the secret `masterauth`; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `read`)"),
        ("CONFIG GET requirepass | dangerous | yes", "ok"),
        ("ACL LIST | read | no", "`ACL LIST` reads or changes who may connect; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `read`)"),
    ]);
    let argv = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
    let flat = serde_json::json!([
        "maxmemory",
        "0",
        "requirepass",
        "hunter2",
        "masterauth",
        "x"
    ]);
    assert_eq!(
        redact(&argv("CONFIG GET *"), flat),
        serde_json::json!([
            "maxmemory",
            "0",
            "requirepass",
            "<redacted>",
            "masterauth",
            "<redacted>"
        ])
    );
    let map = serde_json::json!({ "requirepass": "hunter2", "port": "6379" });
    assert_eq!(
        redact(&argv("config get *pass*"), map),
        serde_json::json!({ "requirepass": "<redacted>", "port": "6379" })
    );
    let other = serde_json::json!(["requirepass", "hunter2"]);
    assert_eq!(redact(&argv("LRANGE l 0 1"), other.clone()), other);
}

#[test]
fn finding_server_level_operations_from_a_write_entry() {
    check_table(&[
        ("MODULE LOAD /tmp/x.so | write | no", "`MODULE LOAD` loads code into the server; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `write`)"),
        ("CONFIG REWRITE | write | no", "`CONFIG REWRITE` rewrites the server's configuration file; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `write`)"),
        ("BGSAVE | write | no", "`BGSAVE` forks the server to write a snapshot; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `write`)"),
        ("BGREWRITEAOF | write | no", "`BGREWRITEAOF` forks the server to rewrite its append-only file; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `write`)"),
        ("FAILOVER | write | no", "`FAILOVER` hands the primary role to a replica; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `write`)"),
        ("REPLICAOF 10.0.0.9 6379 | write | no", "`REPLICAOF` changes replication and can drop the dataset; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `write`)"),
        ("ACL SETUSER x on | write | no", "`ACL SETUSER` reads or changes who may connect; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `write`)"),
        ("DEBUG SLEEP 10 | write | no", "`DEBUG SLEEP` can crash, block or rewrite the server; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `write`)"),
        ("SHUTDOWN NOSAVE | write | no", "`SHUTDOWN` stops the server; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `write`)"),
        ("KEYS * | read | no", "`KEYS` walks the whole keyspace in one blocking call; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `read`)"),
        ("KEYS * | dangerous | no", "`KEYS` walks the whole keyspace in one blocking call; this `dangerous` command runs only with --confirm"),
        ("KEYS * | dangerous | yes", "ok"),
        ("FLUSHALL ASYNC | write | no", "`FLUSHALL` deletes every key; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `write`)"),
        ("MONITOR | read | no", "`MONITOR` streams every command without a bound and slows the server; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `read`)"),
        ("CLIENT KILL ID 7 | write | no", "`CLIENT KILL` disconnects clients; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `write`)"),
    ]);
}

#[test]
fn finding_config_set_outside_the_tunables() {
    check_table(&[
        ("CONFIG SET maxmemory-policy allkeys-lfu | read | no", "`CONFIG SET` needs a `write` catalogue entry; this entry is `read`"),
        ("CONFIG SET maxmemory-policy allkeys-lfu | write | no", "ok"),
        ("CONFIG SET maxmemory-policy sometimes | write | no", "`CONFIG SET` sets `maxmemory-policy` to `sometimes`, not one of volatile-lru, allkeys-lru, volatile-lfu, allkeys-lfu, volatile-random, allkeys-random, volatile-ttl, noeviction; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `write`)"),
        ("CONFIG SET maxmemory 1 | write | no", "`CONFIG SET` sets `maxmemory` to 1 bytes, below this entry's floor of 67108864 bytes; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `write`)"),
        ("CONFIG SET maxmemory 2gb | write | no", r#"ok needs [{"need":"used_memory_at_most","bytes":2147483648}]"#),
        ("CONFIG SET maxmemory 0 | write | no", "ok"),
        ("CONFIG SET maxmemory lots | write | no", "`CONFIG SET` sets `maxmemory` to `lots`, which is not a size; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `write`)"),
        ("CONFIG SET maxmemory 1 | dangerous | yes", "ok"),
        ("CONFIG SET hz 500 | write | no", "`CONFIG SET` sets `hz` to 500, outside 1..=100; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `write`)"),
        ("CONFIG SET maxmemory 1gb dir /tmp | write | no", "`CONFIG SET` changes the protected setting `dir`; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `write`)"),
        ("CONFIG SET requirepass x | write | no", "`CONFIG SET` changes the protected setting `requirepass`; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `write`)"),
        ("CONFIG SET requirepass x | dangerous | yes", "ok"),
        ("CONFIG SET save 60 | write | no", "`CONFIG SET` changes `save`, which is not on the write allowlist of settings; only a `dangerous` catalogue entry may send it, and only with --confirm (this entry is `write`)"),
        ("CONFIG SET hz 10 HZ 20 | write | no", "`CONFIG SET`: names `hz` twice"),
        ("CONFIG SET hz | write | no", "`CONFIG SET`: takes name value pairs"),
        ("UNLINK a b | read | no", "`UNLINK` needs a `write` catalogue entry; this entry is `read`"),
        ("UNLINK a b | write | no", "ok"),
        ("UNLINK a b | dangerous | no", "ok"),
        ("SLOWLOG RESET | read | no", "`SLOWLOG RESET` needs a `write` catalogue entry; this entry is `read`"),
        ("XADD s * a 1 | dangerous | yes", "`XADD` is not on the allowlist of any class (this entry is `dangerous`)"),
        ("CONFIG FOO | write | no", "`CONFIG FOO` is not on the allowlist of any class (this entry is `write`)"),
    ]);
}

#[test]
fn finding_duplicate_count_and_duplicate_samples() {
    check_table(&[
        ("SCAN 0 COUNT 10 COUNT 100000000 | read | no", "`SCAN`: repeats `COUNT`; Redis would use the last one, so the guard refuses the command"),
        ("SCAN 0 count 10 MATCH * Count 10 | read | no", "`SCAN`: repeats `COUNT`; Redis would use the last one, so the guard refuses the command"),
        ("MEMORY USAGE k SAMPLES 5 SAMPLES 0 | read | no", "`MEMORY USAGE`: repeats `SAMPLES`; Redis would use the last one, so the guard refuses the command"),
        ("HSCAN h 0 COUNT 1 COUNT 9999999 | read | no", "`HSCAN`: repeats `COUNT`; Redis would use the last one, so the guard refuses the command"),
    ]);
}

/// How Redis reads SCAN's options: the last COUNT wins (default 10); a bad option is a syntax
/// error (`None`).
fn redis_scan_count(opts: &[String]) -> Option<i64> {
    let mut count = 10;
    let mut i = 0;
    while i < opts.len() {
        let o = opts[i].to_ascii_uppercase();
        let v = opts.get(i + 1)?;
        match o.as_str() {
            "COUNT" => count = redis_int(v)?,
            "MATCH" | "TYPE" => {}
            _ => return None,
        }
        i += 2;
    }
    (count >= 1).then_some(count)
}

/// How Redis reads MEMORY USAGE's options: the last SAMPLES wins (default 5, 0 = all).
fn redis_samples(opts: &[String]) -> Option<i64> {
    let mut n = 5;
    let mut i = 0;
    while i < opts.len() {
        if !opts[i].eq_ignore_ascii_case("SAMPLES") {
            return None;
        }
        n = redis_int(opts.get(i + 1)?)?;
        i += 2;
    }
    Some(n)
}

fn option_words() -> impl Strategy<Value = Vec<String>> {
    let word = prop_oneof![
        Just("COUNT".to_string()),
        Just("count".to_string()),
        Just("CoUnT".to_string()),
        Just("MATCH".to_string()),
        Just("TYPE".to_string()),
        Just("SAMPLES".to_string()),
        Just("samples".to_string()),
    ];
    let value = prop_oneof![
        (0u64..3000).prop_map(|n| n.to_string()),
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("100000000".to_string()),
        Just("*".to_string()),
        Just("010".to_string()),
    ];
    proptest::collection::vec((word, value), 0..6)
        .prop_map(|pairs| pairs.into_iter().flat_map(|(w, v)| [w, v]).collect())
}

proptest! {
    /// Random orders and repetitions of options never get a SCAN past the guard with a COUNT
    /// Redis would read as over the cap.
    #[test]
    fn scan_options_never_pass_over_the_cap(opts in option_words(), cap in 1u64..2000) {
        let guards = Guards { scan_count: cap, ..Guards::default() };
        let mut argv = vec!["SCAN".to_string(), "0".to_string()];
        argv.extend(opts.iter().cloned());
        if check(&argv, Safety::Read, &guards, false).is_ok() {
            let n = redis_scan_count(&opts);
            prop_assert!(n.is_none() || n.is_some_and(|n| n.unsigned_abs() <= cap),
                "{argv:?} passed with COUNT {n:?} over {cap}");
        }
    }

    /// The same for MEMORY USAGE SAMPLES (0, every element, never passes).
    #[test]
    fn memory_samples_never_pass_over_the_cap(opts in option_words(), cap in 1u64..20) {
        let guards = Guards { memory_samples: cap, ..Guards::default() };
        let mut argv = vec!["MEMORY".to_string(), "USAGE".to_string(), "k".to_string()];
        argv.extend(opts.iter().cloned());
        if check(&argv, Safety::Read, &guards, false).is_ok() {
            let n = redis_samples(&opts);
            prop_assert!(n.is_none() || n.is_some_and(|n| n >= 1 && n.unsigned_abs() <= cap),
                "{argv:?} passed with SAMPLES {n:?} over {cap}");
        }
    }

    /// Any command from a `read` entry that passes is on the read allowlist, in any letter case.
    #[test]
    fn read_entries_send_only_read_commands(
        first in "[A-Za-z_]{2,12}", sub in "[A-Za-z-]{0,10}", rest in proptest::collection::vec("[a-z0-9*]{1,5}", 0..4)
    ) {
        let mut argv = vec![first.clone()];
        if !sub.is_empty() { argv.push(sub.clone()); }
        argv.extend(rest);
        if check(&argv, Safety::Read, &Guards::default(), true).is_ok() {
            let n = name(&argv).0;
            prop_assert!(READ.iter().any(|(k, _)| *k == n), "{argv:?} passed as {n}");
        }
    }
}
