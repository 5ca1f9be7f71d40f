//! The host order: a stable keyed hash, groups spread over racks and datacenters, and the
//! cumulative wave targets.

use crate::model::Host;
use std::collections::BTreeMap;

/// A stable 64-bit hash of `seed` and `text` (FNV-1a, then the splitmix64 finaliser), so the
/// order is the same on every machine and Rust version.
pub fn keyed_hash(seed: u64, text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.to_le_bytes().iter().chain(text.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    splitmix64_finish(h)
}

/// The splitmix64 output function, shared by every deterministic generator in the engine.
pub(crate) fn splitmix64_finish(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The splitmix64 increment.
pub(crate) const SPLITMIX64_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// Round-robin over lists: one from each in turn until all are empty.
pub(super) fn interleave(lists: Vec<Vec<usize>>) -> Vec<usize> {
    let total = lists.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(total);
    let mut iters: Vec<std::vec::IntoIter<usize>> = lists.into_iter().map(Vec::into_iter).collect();
    while out.len() < total {
        for it in iters.iter_mut() {
            if let Some(x) = it.next() {
                out.push(x);
            }
        }
    }
    out
}

/// A group's hosts in rollout order: seeded-random, spread across datacenters and, within
/// each, across racks, so early stages touch many failure domains a little. Datacenter and
/// rack order are keyed by the group too, so different groups start in different racks.
pub(super) fn spread_order(
    group: &str,
    members: &[usize],
    hosts: &[Host],
    seed: u64,
) -> Vec<usize> {
    let mut by_dc: BTreeMap<&str, BTreeMap<&str, Vec<usize>>> = BTreeMap::new();
    for &i in members {
        let h = &hosts[i];
        by_dc
            .entry(h.datacenter.as_str())
            .or_default()
            .entry(h.rack.as_str())
            .or_default()
            .push(i);
    }
    let key = |i: &usize| (keyed_hash(seed, &hosts[*i].name), *i);
    let mut dcs: Vec<(u64, Vec<usize>)> = by_dc
        .into_iter()
        .map(|(dc, racks)| {
            let mut racks: Vec<(u64, Vec<usize>)> = racks
                .into_iter()
                .map(|(rack, mut v)| {
                    v.sort_by_cached_key(key);
                    (keyed_hash(seed, &format!("{group}|{dc}/{rack}")), v)
                })
                .collect();
            racks.sort_by_key(|r| r.0);
            (
                keyed_hash(seed, &format!("{group}|{dc}")),
                interleave(racks.into_iter().map(|r| r.1).collect()),
            )
        })
        .collect();
    dcs.sort_by_key(|d| d.0);
    interleave(dcs.into_iter().map(|d| d.1).collect())
}

/// Orders a stage's hosts so that every group is spread evenly through it: the `j`-th of a
/// group's `m` hosts sits at `(2j+1)/2m` of the way through.
pub(super) fn blend(slices: &[(usize, &[usize])]) -> Vec<usize> {
    let mut keyed: Vec<(u64, u64, usize, usize)> = Vec::new();
    for (g, s) in slices {
        let m = s.len() as u64;
        for (j, &h) in s.iter().enumerate() {
            keyed.push((2 * j as u64 + 1, 2 * m, *g, h));
        }
    }
    keyed.sort_by(|a, b| {
        (u128::from(a.0) * u128::from(b.1))
            .cmp(&(u128::from(b.0) * u128::from(a.1)))
            .then(a.2.cmp(&b.2))
    });
    keyed.into_iter().map(|k| k.3).collect()
}

/// Cumulative host counts after each wave, by the documented rounding rule.
pub fn cumulative_targets(waves: &[f64], eligible: usize, canaries: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(waves.len());
    let mut prev = canaries.min(eligible);
    for (i, p) in waves.iter().enumerate() {
        let c = if i + 1 == waves.len() {
            eligible
        } else {
            let want = ((p / 100.0) * eligible as f64 - 1e-9).ceil().max(0.0) as usize;
            want.max(prev + 1).min(eligible)
        };
        out.push(c);
        prev = c;
    }
    out
}
