//! Helpers for cache command scripts: building per-key commands and ranking replies in one
//! native call each, so a round over a thousand keys costs no thousand script iterations.

use rhai::plugin::*;

#[export_module]
pub mod cache_fns {
    use crate::err;
    use rhai::{Array, Dynamic, EvalAltResult, Map, INT};

    /// One command per key: `prefix`, the key, then `suffix`.
    ///
    /// ```rhai
    /// let cmds = per_key(["MEMORY", "USAGE"], ["a", "b"], ["SAMPLES", "5"]);
    /// assert_eq(cmds, [["MEMORY", "USAGE", "a", "SAMPLES", "5"], ["MEMORY", "USAGE", "b", "SAMPLES", "5"]]);
    /// ```
    pub fn per_key(prefix: Array, keys: Array, suffix: Array) -> Array {
        keys.into_iter()
            .map(|k| {
                let mut c = Array::with_capacity(prefix.len() + 1 + suffix.len());
                c.extend(prefix.iter().cloned());
                c.push(k);
                c.extend(suffix.iter().cloned());
                Dynamic::from_array(c)
            })
            .collect()
    }

    /// Rows `#{ key, <field>: reply }` for each key whose reply (at `offset + i` in
    /// `replies`) is a number; other replies (a missing key, an error) are skipped.
    ///
    /// ```rhai
    /// let rows = key_rows(["a", "b", "c"], ["cursor", 10, (), 30], 1, "bytes");
    /// assert_eq(rows, [#{ key: "a", bytes: 10 }, #{ key: "c", bytes: 30 }]);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn key_rows(
        keys: Array,
        replies: Array,
        offset: INT,
        field: &str,
    ) -> Result<Array, Box<EvalAltResult>> {
        let offset =
            usize::try_from(offset).map_err(|_| err(format!("offset `{offset}` is negative")))?;
        let mut out = Array::new();
        for (i, k) in keys.into_iter().enumerate() {
            let Some(v) = replies.get(offset + i) else {
                break;
            };
            if v.is_int() || v.is_float() {
                let mut m = Map::new();
                m.insert("key".into(), k);
                m.insert(field.into(), v.clone());
                out.push(Dynamic::from_map(m));
            }
        }
        Ok(out)
    }

    /// The `n` rows with the largest numeric `field`, largest first (ties keep their order);
    /// rows without it are dropped.
    ///
    /// ```rhai
    /// let rows = [#{ k: "a", n: 3 }, #{ k: "b", n: 9 }, #{ k: "c" }, #{ k: "d", n: 5 }];
    /// assert_eq(top_by(rows, "n", 2), [#{ k: "b", n: 9 }, #{ k: "d", n: 5 }]);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn top_by(rows: Array, field: &str, n: INT) -> Result<Array, Box<EvalAltResult>> {
        ranked(rows, field, n, true)
    }

    /// The `n` rows with the smallest numeric `field`, smallest first (ties keep their
    /// order); rows without it are dropped.
    ///
    /// ```rhai
    /// let rows = [#{ k: "a", n: 3 }, #{ k: "b", n: 9 }, #{ k: "d", n: 1 }];
    /// assert_eq(bottom_by(rows, "n", 2), [#{ k: "d", n: 1 }, #{ k: "a", n: 3 }]);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn bottom_by(rows: Array, field: &str, n: INT) -> Result<Array, Box<EvalAltResult>> {
        ranked(rows, field, n, false)
    }
}

fn ranked(
    rows: rhai::Array,
    field: &str,
    n: rhai::INT,
    largest: bool,
) -> Result<rhai::Array, Box<rhai::EvalAltResult>> {
    use rhai::{Dynamic, Map};
    {
        let n = usize::try_from(n).map_err(|_| crate::err(format!("`n` is `{n}`, below 0")))?;
        let mut keyed: Vec<(f64, Dynamic)> = rows
            .into_iter()
            .filter_map(|r| {
                let v = r.read_lock::<Map>()?.get(field).and_then(|v| {
                    v.as_int()
                        .map(|i| i as f64)
                        .ok()
                        .or_else(|| v.as_float().ok())
                })?;
                Some((v, r))
            })
            .collect();
        if largest {
            keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
        } else {
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        keyed.truncate(n);
        Ok(keyed.into_iter().map(|(_, r)| r).collect())
    }
}
