//! Proportional seat allocation with floors: how many hosts of each group are done after a wave.

/// Splits `total` hosts over groups of `sizes`, in proportion to size, giving each group at
/// least `lower[g]` (what it already did) and at most `sizes[g]`.
///
/// Groups whose floor is above their proportional share keep their floor; the rest share
/// what is left in proportion (repeated until stable). Each of those gets the floor or the
/// ceiling of its exact quota: floors first, then one more by largest remainder, ties to the
/// smaller group, then to the earlier one. All arithmetic is exact.
pub fn apportion(total: usize, sizes: &[usize], lower: &[usize]) -> Vec<usize> {
    let n = sizes.len();
    let lower: Vec<usize> = (0..n)
        .map(|g| lower.get(g).copied().unwrap_or(0).min(sizes[g]))
        .collect();
    let cap: usize = sizes.iter().sum();
    let floor_sum: usize = lower.iter().sum();
    let total = total.clamp(floor_sum, cap);
    let mut fixed = vec![false; n];
    loop {
        let seats: usize = total
            - (0..n)
                .filter(|g| fixed[*g])
                .map(|g| lower[g])
                .sum::<usize>();
        let den: usize = (0..n).filter(|g| !fixed[*g]).map(|g| sizes[g]).sum();
        if den == 0 {
            return lower;
        }
        // Fix every free group whose exact quota is at or below its floor.
        let mut changed = false;
        for g in 0..n {
            if !fixed[g]
                && (seats as u128) * (sizes[g] as u128) <= (lower[g] as u128) * (den as u128)
            {
                fixed[g] = true;
                changed = true;
            }
        }
        if changed {
            continue;
        }
        let mut out = lower.clone();
        let mut rems: Vec<(u128, usize, usize)> = Vec::new();
        let mut given = 0usize;
        for g in 0..n {
            if fixed[g] {
                continue;
            }
            let num = (seats as u128) * (sizes[g] as u128);
            let q = (num / den as u128) as usize;
            out[g] = q;
            given += q;
            rems.push((num % den as u128, sizes[g], g));
        }
        rems.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        for (_, _, g) in rems.into_iter().take(seats - given) {
            out[g] += 1;
        }
        return out;
    }
}

#[cfg(test)]
mod tests {
    use super::apportion;

    #[test]
    fn proportional_with_floors() {
        assert_eq!(apportion(10, &[50, 30, 20], &[0, 0, 0]), vec![5, 3, 2]);
        // A tiny group already past its share keeps its floor; the rest share what is left.
        assert_eq!(apportion(11, &[3, 1000], &[2, 2]), vec![2, 9]);
        // Equal remainders (2/4 each): the smaller group gets the seat.
        assert_eq!(apportion(2, &[3, 1], &[0, 0]), vec![1, 1]);
        assert_eq!(apportion(1, &[5, 5], &[0, 0]), vec![1, 0]);
        assert_eq!(apportion(103, &[3, 100], &[1, 1]), vec![3, 100]);
        assert_eq!(apportion(0, &[], &[]), Vec::<usize>::new());
    }
}
