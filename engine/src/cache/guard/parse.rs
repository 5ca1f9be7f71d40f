//! The parsers: each rule reads a command's arguments as Redis reads them (options once
//! each, numbers as `string2ll` reads them), with the cost caps and the live checks it needs.

use super::*;

pub(super) fn upper(s: &str) -> String {
    s.to_ascii_uppercase()
}

pub(super) const CONTAINERS: [&str; 12] = [
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

pub(super) fn lookup(table: &[(&str, RuleRef)], n: &str) -> Option<Rule> {
    table.iter().find(|(k, _)| *k == n).map(|(_, r)| r.0)
}

pub(super) fn danger(n: &str) -> Option<&'static str> {
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

pub(super) struct Ctx<'a> {
    pub(super) command: String,
    pub(super) class: Safety,
    pub(super) guards: &'a Guards,
    pub(super) confirmed: bool,
    pub(super) needs: Vec<Need>,
}

impl Ctx<'_> {
    pub(super) fn syntax(&self, why: impl Into<String>) -> GuardError {
        GuardError::Syntax {
            command: self.command.clone(),
            why: why.into(),
        }
    }
    pub(super) fn cost(&self, why: impl Into<String>) -> GuardError {
        GuardError::Cost {
            command: self.command.clone(),
            why: why.into(),
        }
    }
    /// The command needs a confirmed `dangerous` entry, for `why`.
    pub(super) fn dangerous(&self, why: impl Into<String>) -> Result<(), GuardError> {
        match (self.class, self.confirmed) {
            (Safety::Dangerous, true) => Ok(()),
            (Safety::Dangerous, false) => Err(GuardError::Unconfirmed {
                command: self.command.clone(),
                why: why.into(),
            }),
            (c, _) => Err(GuardError::Dangerous {
                command: self.command.clone(),
                why: why.into(),
                class: c.as_str(),
            }),
        }
    }
}

/// Options after the fixed arguments: each option word once, with its value. `flags` take no
/// value; `valued` take one. Anything else, or a repeat, is refused.
pub(super) fn options<'a>(
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
pub(super) fn capped(
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

pub(super) fn count_at_most(c: &Ctx<'_>, what: &str, v: &str, cap: u64) -> Result<u64, GuardError> {
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

pub(super) fn check_rule(c: &mut Ctx<'_>, rule: Rule, args: &[String]) -> Result<(), GuardError> {
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
pub(super) fn range_need(c: &mut Ctx<'_>, probe: &str, key: &str, start: i64, stop: i64) {
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
pub(super) fn within(c: &mut Ctx<'_>, k: &str, v: &str, bound: Bound) -> Result<(), String> {
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
