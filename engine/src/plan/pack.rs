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

#[cfg(test)]
mod tests {
    use super::pack;

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
