//! Packing a stage's hosts into bins (parts of a wave, or batches) under limits.

use std::collections::HashMap;

/// Packs `order` into as few bins as the limits need: at most `max_total` hosts per bin, and
/// for each scope `(ids, caps)` at most `caps[ids[h]]` hosts of one scope value per bin.
/// Hosts are dealt round-robin, so each bin is a spread sample of `order`, and a bin is added
/// only when no existing bin has room. Every host is placed exactly once.
pub fn pack(order: &[usize], scopes: &[(&[u32], &[usize])], max_total: usize) -> Vec<Vec<usize>> {
    if order.is_empty() {
        return Vec::new();
    }
    let max_total = max_total.max(1);
    let mut bins_needed = order.len().div_ceil(max_total);
    for (ids, caps) in scopes {
        let mut counts: HashMap<u32, usize> = HashMap::new();
        for &h in order {
            if let Some(id) = ids.get(h) {
                *counts.entry(*id).or_default() += 1;
            }
        }
        for (id, c) in counts {
            let cap = caps.get(id as usize).copied().unwrap_or(usize::MAX).max(1);
            bins_needed = bins_needed.max(c.div_ceil(cap));
        }
    }
    let mut bins: Vec<Vec<usize>> = vec![Vec::new(); bins_needed];
    let mut used: Vec<HashMap<(u32, usize), usize>> = vec![HashMap::new(); scopes.len()];
    let fits =
        |bins: &Vec<Vec<usize>>, used: &Vec<HashMap<(u32, usize), usize>>, h: usize, b: usize| {
            bins.get(b).is_some_and(|x| x.len() < max_total)
                && scopes.iter().zip(used).all(|((ids, caps), u)| {
                    let id = ids.get(h).copied().unwrap_or(0);
                    let cap = caps.get(id as usize).copied().unwrap_or(usize::MAX).max(1);
                    u.get(&(id, b)).copied().unwrap_or(0) < cap
                })
        };
    let mut cursor = 0usize;
    for &h in order {
        let len = bins.len();
        let b = (0..len)
            .map(|t| (cursor + t) % len)
            .find(|&b| fits(&bins, &used, h, b))
            .unwrap_or_else(|| {
                bins.push(Vec::new());
                len
            });
        if let Some(bin) = bins.get_mut(b) {
            bin.push(h);
        }
        for ((ids, _), u) in scopes.iter().zip(used.iter_mut()) {
            let id = ids.get(h).copied().unwrap_or(0);
            *u.entry((id, b)).or_default() += 1;
        }
        cursor = (b + 1) % bins.len();
    }
    bins.retain(|b| !b.is_empty());
    bins
}

/// Packs `units` (each a group's canaries) whole into as few bins as the scope limits need:
/// a unit goes to the first bin with room for all of its hosts, largest units first, and only
/// a unit that fits no empty bin is split host by host. Each bin keeps `order`'s order.
/// Finding: packing canaries host by host spread one group's six canaries over three parts of
/// the canary stage (2, 0 and 4), each part gated on its own, so a group sized to detect its
/// thresholds with six was judged on two and stayed inconclusive.
pub fn pack_units(
    order: &[usize],
    units: &[&[usize]],
    scopes: &[(&[u32], &[usize])],
) -> Vec<Vec<usize>> {
    let mut bins: Vec<Vec<usize>> = Vec::new();
    let mut used: Vec<Used> = Vec::new();
    // Whether `unit` fits whole beside what a bin already holds.
    let fits = |held: &Used, unit: &[usize]| {
        tally(scopes, unit).iter().all(|(&(si, id), n)| {
            let limit = scopes
                .get(si)
                .and_then(|(_, caps)| caps.get(id as usize).copied())
                .unwrap_or(usize::MAX)
                .max(1);
            held.get(&(si, id)).copied().unwrap_or(0) + n <= limit
        })
    };
    let mut sorted: Vec<&[usize]> = units.iter().copied().filter(|u| !u.is_empty()).collect();
    sorted.sort_by_key(|u| std::cmp::Reverse(u.len()));
    for unit in sorted {
        let room = used.iter().position(|u| fits(u, unit));
        let parts = match room {
            Some(b) => vec![(b, unit.to_vec())],
            None if fits(&Used::new(), unit) => vec![(bins.len(), unit.to_vec())],
            // Larger than any bin can hold: its hosts go where they fit, as `pack` does.
            None => pack(unit, scopes, usize::MAX)
                .into_iter()
                .enumerate()
                .map(|(i, p)| (bins.len() + i, p))
                .collect(),
        };
        for (b, hosts) in parts {
            if b == bins.len() {
                bins.push(Vec::new());
                used.push(Used::new());
            }
            for (k, n) in tally(scopes, &hosts) {
                if let Some(u) = used.get_mut(b) {
                    *u.entry(k).or_default() += n;
                }
            }
            if let Some(bin) = bins.get_mut(b) {
                bin.extend(hosts);
            }
        }
    }
    let rank: HashMap<usize, usize> = order.iter().enumerate().map(|(i, h)| (*h, i)).collect();
    for b in &mut bins {
        b.sort_by_key(|h| rank.get(h).copied().unwrap_or(usize::MAX));
    }
    bins.retain(|b| !b.is_empty());
    bins
}

/// Hosts per (scope, scope value).
type Used = HashMap<(usize, u32), usize>;

fn tally(scopes: &[(&[u32], &[usize])], hosts: &[usize]) -> Used {
    let mut t = Used::new();
    for (si, (ids, _)) in scopes.iter().enumerate() {
        for &h in hosts {
            *t.entry((si, ids.get(h).copied().unwrap_or(0))).or_default() += 1;
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::{pack, pack_units};

    #[test]
    fn finding_a_groups_canaries_were_spread_over_the_parts_of_the_canary_stage() {
        // Two datacenters (0 and 1), at most 4 hosts of each per part; three groups of
        // canaries: six hosts over both datacenters, and two of two hosts.
        let dc = [0u32, 1, 0, 1, 0, 1, 0, 0, 1, 1];
        let caps = [4usize, 4];
        let (a, b, c) = ([0usize, 1, 2, 3, 4, 5], [6usize, 7], [8usize, 9]);
        let order: Vec<usize> = (0..10).collect();
        let bins = pack_units(&order, &[&a, &b, &c], &[(&dc, &caps)]);
        assert_eq!(bins, vec![vec![0, 1, 2, 3, 4, 5], vec![6, 7, 8, 9]]);
        // Host by host, the six were split.
        let host_by_host = pack(&order, &[(&dc, &caps)], usize::MAX);
        assert!(host_by_host
            .iter()
            .all(|p| !a.iter().all(|h| p.contains(h))));
        // A unit larger than a part's limits is split as `pack` splits it.
        let big = [0usize, 2, 4, 6, 7];
        let bins = pack_units(&order, &[&big], &[(&dc, &caps)]);
        assert_eq!(bins.concat().len(), 5);
        assert!(bins.len() == 2 && bins.iter().all(|p| p.len() <= 4));
    }

    #[test]
    fn respects_total_and_scope_caps() {
        // Six hosts in two racks (0,0,0,1,1,1); one per rack per bin, two per bin.
        let racks = [0u32, 0, 0, 1, 1, 1];
        let caps = [1usize, 1];
        let bins = pack(&[0, 1, 2, 3, 4, 5], &[(&racks, &caps)], 2);
        assert_eq!(bins.len(), 3);
        for b in &bins {
            assert!(b.len() <= 2);
            assert!(b.iter().filter(|h| racks[**h] == 0).count() <= 1);
        }
        let mut all: Vec<usize> = bins.concat();
        all.sort();
        assert_eq!(all, vec![0, 1, 2, 3, 4, 5]);
        assert!(pack(&[], &[], 3).is_empty());
        assert_eq!(pack(&[4, 2], &[], usize::MAX), vec![vec![4, 2]]);
    }
}
