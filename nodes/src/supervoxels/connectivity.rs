//! Connectivity enforcement: SLIC clusters are not guaranteed connected (a cluster claims
//! voxels by distance, not by adjacency), but a supervoxel used as a pseudo-label should be
//! one piece. As scikit-image's `_enforce_label_connectivity_cython` (min_size_factor 0.5,
//! max_size_factor 3): 6-connected pieces of each cluster are found in raster order, a piece
//! stops growing at `max_size` voxels (the rest becomes further pieces), and pieces smaller
//! than `min_size` are merged into a neighbouring piece. Unlike scikit-image, a small piece
//! goes to its largest neighbour (not to whichever piece its first voxel touched), and a
//! small piece with no neighbour at all (an island of body) stays a supervoxel rather than
//! becoming background, so every body voxel keeps an id.

/// The six face neighbours of voxel `idx`.
fn neighbours(idx: usize, shape: [usize; 3]) -> impl Iterator<Item = usize> {
    let [nk, nj, ni] = shape;
    let plane = nj * ni;
    let (k, j, i) = (idx / plane, (idx / ni) % nj, idx % ni);
    [
        (k > 0).then(|| idx - plane),
        (k + 1 < nk).then(|| idx + plane),
        (j > 0).then(|| idx - ni),
        (j + 1 < nj).then(|| idx + ni),
        (i > 0).then(|| idx - 1),
        (i + 1 < ni).then(|| idx + 1),
    ]
    .into_iter()
    .flatten()
}

/// Union-find root with path halving.
fn find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let p = parent[parent[x as usize] as usize];
        parent[x as usize] = p;
        x = p;
    }
    x
}

/// Ids 1..N (raster order of each supervoxel's first voxel), 0 outside `mask`.
/// `labels`: cluster per voxel, `-1` for body voxels no cluster reached (always merged into
/// a neighbour when they have one).
pub fn enforce(
    labels: &[i32],
    mask: &[bool],
    shape: [usize; 3],
    min_size: usize,
    max_size: usize,
) -> Vec<i32> {
    const NONE: u32 = u32::MAX;
    let n = labels.len();
    let mut piece = vec![NONE; n];
    // Voxels grouped by piece (in BFS order), with each piece's start in `order`.
    let mut order: Vec<u32> = Vec::with_capacity(n);
    let mut starts: Vec<usize> = Vec::new();
    let mut unreached: Vec<bool> = Vec::new();
    for seed in 0..n {
        if !mask[seed] || piece[seed] != NONE {
            continue;
        }
        let id = starts.len() as u32;
        let l = labels[seed];
        let start = order.len();
        starts.push(start);
        unreached.push(l < 0);
        piece[seed] = id;
        order.push(seed as u32);
        let mut head = start;
        while head < order.len() && order.len() - start < max_size.max(1) {
            let v = order[head] as usize;
            head += 1;
            for u in neighbours(v, shape) {
                if mask[u] && piece[u] == NONE && labels[u] == l && order.len() - start < max_size {
                    piece[u] = id;
                    order.push(u as u32);
                }
            }
        }
    }
    let n_pieces = starts.len();
    starts.push(order.len());
    let mut parent: Vec<u32> = (0..n_pieces as u32).collect();
    let mut size: Vec<usize> = (0..n_pieces).map(|p| starts[p + 1] - starts[p]).collect();
    {
        for p in 0..n_pieces {
            if size[find(&mut parent, p as u32) as usize] >= min_size && !unreached[p] {
                continue;
            }
            let me = find(&mut parent, p as u32);
            // The largest neighbouring supervoxel (ties: the earliest).
            let mut best: Option<(usize, u32)> = None;
            for &v in &order[starts[p]..starts[p + 1]] {
                for u in neighbours(v as usize, shape) {
                    if piece[u] == NONE {
                        continue;
                    }
                    let r = find(&mut parent, piece[u]);
                    if r == me {
                        continue;
                    }
                    let cand = (size[r as usize], r);
                    if best.is_none_or(|(bs, br)| cand.0 > bs || (cand.0 == bs && r < br)) {
                        best = Some(cand);
                    }
                }
            }
            if let Some((_, r)) = best {
                parent[me as usize] = r;
                size[r as usize] += size[me as usize];
            }
        }
    }
    let mut new_id = vec![0i32; n_pieces];
    let mut next = 0i32;
    let mut out = vec![0i32; n];
    for v in 0..n {
        if piece[v] == NONE {
            continue;
        }
        let r = find(&mut parent, piece[v]) as usize;
        if new_id[r] == 0 {
            next += 1;
            new_id[r] = next;
        }
        out[v] = new_id[r];
    }
    out
}

/// Without connectivity enforcement: one id per cluster, 1..N in raster order of its first
/// voxel (a cluster may then be in pieces); body voxels no cluster reached share one more id.
pub fn renumber(labels: &[i32], mask: &[bool]) -> Vec<i32> {
    let n = labels.iter().copied().max().unwrap_or(-1).max(-1) + 2;
    // new_id[l + 1]: -1 (unreached) at index 0.
    let mut new_id = vec![0i32; n as usize];
    let mut next = 0;
    labels
        .iter()
        .zip(mask)
        .map(|(&l, &m)| {
            if !m {
                return 0;
            }
            let slot = &mut new_id[(l.max(-1) + 1) as usize];
            if *slot == 0 {
                next += 1;
                *slot = next;
            }
            *slot
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_merges_and_renumbers() {
        // One row of 10 voxels: cluster 5 in two pieces, a 1-voxel piece of cluster 7, air.
        let labels = [5, 5, 5, 7, 5, 5, 5, 5, -1, 3];
        let mask = [true, true, true, true, true, true, true, true, true, false];
        let out = enforce(&labels, &mask, [1, 1, 10], 2, 100);
        // 7 (1 voxel) merges into the larger neighbour (the right piece of 5, 4 voxels);
        // the unreached voxel merges too; air stays 0.
        assert_eq!(out, vec![1, 1, 1, 2, 2, 2, 2, 2, 2, 0]);
        let out = renumber(&labels, &mask);
        assert_eq!(out, vec![1, 1, 1, 2, 1, 1, 1, 1, 3, 0]);
        // max_size splits a long piece.
        let out = enforce(&[1; 6], &[true; 6], [1, 1, 6], 1, 4);
        assert_eq!(out, vec![1, 1, 1, 1, 2, 2]);
    }
}
