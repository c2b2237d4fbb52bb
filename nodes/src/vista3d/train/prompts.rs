//! Prompts for one training patch, as MONAI's `sample_prompt_pairs`
//! (monai/apps/vista3d/sampler.py): the classes of the pair's label set present in the patch
//! (at most `max_foreprompt`) and absent ones (at most `max_backprompt`, their targets empty),
//! and for each present class `num_p` positive and `num_n` negative clicks drawn uniformly
//! from the class and from everything else, `num_p = min(max_point, |N(0, max_point/2)| + 1)`,
//! `num_n = min(max_point, |N(0, max_point/2)|)`, shared by all classes of the patch; special
//! classes (tumours, vessels) get point labels 3/2 instead of 1/0. One more click per class
//! comes from the current error (see [`error_click`]).

use super::rng::Rng;
use crate::vista3d::refine::special_classes;

#[derive(Clone, Copy, Debug)]
pub struct PromptOptions {
    pub max_foreprompt: usize,
    pub max_backprompt: usize,
    pub max_point: usize,
    /// A patch without any class of the label set still trains the class head on absent
    /// prompts (MONAI's sampler draws another patch instead).
    pub background: bool,
}

/// Prompts of a patch: `classes[..n_fore]` are present, the rest absent.
#[derive(Debug)]
pub struct Prompts {
    pub classes: Vec<i64>,
    pub n_fore: usize,
    /// Per present class: clicks [x, y, z] in patch voxels and their labels (-1: padding).
    pub points: Vec<Vec<[i64; 3]>>,
    pub point_labels: Vec<Vec<i64>>,
}

/// (negative, positive) point labels of a class.
pub fn point_labels_of(id: i64) -> (i64, i64) {
    if special_classes().contains(&(id as u32)) {
        (2, 3)
    } else {
        (0, 1)
    }
}

/// Samples prompts from `labels` ([X, Y, Z] ids, flattened row-major with `shape`). A patch
/// that holds no class of the label set gives `None` (MONAI draws another patch then), or
/// with `opts.background` absent prompts only (`n_fore` 0, no clicks).
pub fn sample(
    labels: &[i64],
    shape: [i64; 3],
    label_set: &[i64],
    opts: &PromptOptions,
    rng: &mut Rng,
) -> Option<Prompts> {
    let mut present: Vec<i64> = label_set
        .iter()
        .copied()
        .filter(|&id| labels.contains(&id))
        .collect();
    if present.is_empty() && !opts.background {
        return None;
    }
    let mut absent: Vec<i64> = label_set
        .iter()
        .copied()
        .filter(|id| !present.contains(id))
        .collect();
    if absent.len() > opts.max_backprompt {
        rng.shuffle(&mut absent);
        absent.truncate(opts.max_backprompt);
    }
    if present.is_empty() {
        return (!absent.is_empty()).then(|| Prompts {
            classes: absent,
            n_fore: 0,
            points: vec![],
            point_labels: vec![],
        });
    }
    if present.len() > opts.max_foreprompt {
        rng.shuffle(&mut present);
        present.truncate(opts.max_foreprompt);
    }
    let sigma = (opts.max_point / 2) as f64;
    let num_p = opts
        .max_point
        .min((rng.normal() * sigma).abs() as usize + 1);
    let num_n = opts.max_point.min((rng.normal() * sigma).abs() as usize);
    let at = |i: usize| {
        let i = i as i64;
        [
            i / (shape[1] * shape[2]),
            (i / shape[2]) % shape[1],
            i % shape[2],
        ]
    };
    let mut points = Vec::new();
    let mut point_labels = Vec::new();
    for &id in &present {
        let (neg, pos) = point_labels_of(id);
        let inside: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == id).collect();
        let n_out = labels.len() - inside.len();
        let mut pts = Vec::new();
        let mut lab = Vec::new();
        for _ in 0..num_p.min(inside.len()) {
            pts.push(at(inside[rng.below(inside.len())]));
            lab.push(pos);
        }
        for _ in 0..num_n.min(n_out) {
            // A uniform voxel outside the class: rejection sampling (the class is a minority
            // of almost every patch).
            let i = loop {
                let i = rng.below(labels.len());
                if labels[i] != id {
                    break i;
                }
            };
            pts.push(at(i));
            lab.push(neg);
        }
        while pts.len() < num_p + num_n {
            pts.push([0, 0, 0]);
            lab.push(-1);
        }
        points.push(pts);
        point_labels.push(lab);
    }
    let n_fore = present.len();
    present.extend(absent);
    Some(Prompts {
        classes: present,
        n_fore,
        points,
        point_labels,
    })
}

/// One click per present class from the current error of a prediction (`pred` and the
/// class's `target`, both flattened): a positive click in the larger of the missed region and
/// a negative one in the false positives, as an annotator correcting the mask would; a padding
/// click when the prediction is already right.
pub fn error_click(
    pred: &[bool],
    target: &[bool],
    shape: [i64; 3],
    id: i64,
    rng: &mut Rng,
) -> ([i64; 3], i64) {
    let missed: Vec<usize> = (0..pred.len()).filter(|&i| target[i] && !pred[i]).collect();
    let extra: Vec<usize> = (0..pred.len()).filter(|&i| pred[i] && !target[i]).collect();
    let (neg, pos) = point_labels_of(id);
    let (pool, label) = if missed.len() >= extra.len() {
        (missed, pos)
    } else {
        (extra, neg)
    };
    if pool.is_empty() {
        return ([0, 0, 0], -1);
    }
    let i = pool[rng.below(pool.len())] as i64;
    (
        [
            i / (shape[1] * shape[2]),
            (i / shape[2]) % shape[1],
            i % shape[2],
        ],
        label,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_follow_the_label_set() {
        // 4 x 4 x 4 patch: class 1 in the first half along x, class 3 one voxel, 7 absent.
        let shape = [4, 4, 4];
        let mut labels = vec![0i64; 64];
        for (i, l) in labels.iter_mut().enumerate().take(32) {
            *l = if i == 5 { 3 } else { 1 };
        }
        labels[40] = 9; // not in the label set: never prompted
        let opts = PromptOptions {
            max_foreprompt: 4,
            max_backprompt: 1,
            max_point: 5,
            background: false,
        };
        for seed in 0..50 {
            let mut rng = Rng::new(seed, 0);
            let p = sample(&labels, shape, &[1, 3, 7], &opts, &mut rng).unwrap();
            assert_eq!(p.n_fore, 2);
            assert_eq!(p.classes.len(), 3);
            assert_eq!(p.classes[2], 7);
            for (k, id) in p.classes[..2].iter().enumerate() {
                assert!(p.point_labels[k].contains(&1), "a positive click");
                for (pt, &l) in p.points[k].iter().zip(&p.point_labels[k]) {
                    let v = labels[(pt[0] * 16 + pt[1] * 4 + pt[2]) as usize];
                    match l {
                        1 => assert_eq!(v, *id),
                        0 => assert_ne!(v, *id),
                        _ => assert_eq!(*pt, [0, 0, 0]),
                    }
                }
            }
        }
        let mut rng = Rng::new(0, 0);
        assert!(sample(&[0; 64], shape, &[1], &opts, &mut rng).is_none());
        // With background patches: the absent classes (at most max_backprompt), no clicks.
        let opts = PromptOptions {
            background: true,
            max_backprompt: 2,
            ..opts
        };
        let p = sample(&[0; 64], shape, &[1, 3, 7], &opts, &mut rng).unwrap();
        assert_eq!((p.n_fore, p.classes.len(), p.points.len()), (0, 2, 0));
        assert!(p.classes.iter().all(|c| [1, 3, 7].contains(c)) && p.classes[0] != p.classes[1]);
    }

    #[test]
    fn error_click_corrects_the_larger_error() {
        let shape = [1, 1, 8];
        let target = [true, true, true, true, false, false, false, false];
        let pred = [true, false, false, false, false, false, true, false];
        let mut rng = Rng::new(1, 1);
        let (at, l) = error_click(&pred, &target, shape, 1, &mut rng);
        assert_eq!(l, 1);
        assert!((1..4).contains(&at[2]));
        let pred = [true, true, true, true, true, true, true, false];
        let (at, l) = error_click(&pred, &target, shape, 1, &mut rng);
        assert_eq!((l, (4..7).contains(&at[2])), (0, true));
        assert_eq!(error_click(&target, &target, shape, 1, &mut rng).1, -1);
    }
}
