//! The training loop, the model card and writing the model.

use super::checkpoint::{self, Checkpoints, Saved};
use super::data::{self, Case};
use super::init::is_buffer;
use super::loss::{dice_ce, hard_dice};
use super::optim::{copy_by_name, learning_rate, AdamW, Ema};
use super::prompts::{self, PromptOptions};
use super::rng::Rng;
use super::{Part, TrainParams};
use crate::node::{Ctx, NodeError};
use crate::value::{Cell, ModelFile, Table, Volume};
use crate::vista3d::classes::table;
use crate::vista3d::net::{Branches, Config, Vista3d};
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Steps per log row.
const LOG_EVERY: i64 = 10;

/// What a finished run reports.
pub struct RunResult {
    pub log: Vec<Json>,
    /// Seconds of training in this process.
    pub seconds: f64,
    /// Seconds of training in all processes (earlier ones up to their last log row).
    pub seconds_total: f64,
    pub steps_timed: i64,
    pub resumed_from: i64,
    /// Mean hard Dice of the class head per class over the last tenth of the steps (of the
    /// weights as trained, not their average).
    pub train_dice: BTreeMap<i64, f64>,
}

impl RunResult {
    pub fn log_table(&self) -> Table {
        let cols = ["step", "loss", "auto", "point", "lr", "seconds"];
        let mut t = Table::new(cols.iter().map(|c| c.to_string()).collect());
        for r in &self.log {
            t.rows.push(
                cols.iter()
                    .map(|c| match (c, &r[c]) {
                        (&"step", v) => Cell::Int(v.as_i64().unwrap_or(0)),
                        (_, v) => Cell::Float(v.as_f64().unwrap_or(f64::NAN)),
                    })
                    .collect(),
            );
        }
        t
    }
}

/// The variables the optimiser updates: not buffers, not in a frozen part.
fn trainable(net: &Vista3d, freeze: &[Part]) -> BTreeMap<String, Tensor> {
    net.vs
        .variables()
        .into_iter()
        .filter(|(k, _)| !is_buffer(k) && !is_frozen(k, freeze))
        .collect()
}

fn is_frozen(name: &str, freeze: &[Part]) -> bool {
    let part = name.split('.').next().unwrap_or(name);
    freeze.iter().any(|f| f.as_str() == part)
}

pub fn train(
    net: &Vista3d,
    cases: &[Case],
    p: &TrainParams,
    identity: &str,
    ckpt: &Checkpoints,
    ctx: &Ctx,
) -> Result<RunResult, NodeError> {
    for (k, t) in net.vs.variables() {
        if is_buffer(&k) || is_frozen(&k, &p.freeze) {
            // Frozen parts also build no autograd graph: a frozen encoder costs a forward only.
            let _ = t.shallow_clone().set_requires_grad(false);
        }
    }
    let mut opt = AdamW::new(trainable(net, &p.freeze), p.weight_decay);
    let mut ema = (p.ema > 0.0).then(|| Ema::new(trainable(net, &p.freeze), p.ema));
    let (start, mut log) = resume(net, &mut opt, ema.as_mut(), identity, ckpt, p.steps, ctx)?;
    let no_ema = BTreeMap::new();
    let opts = PromptOptions {
        max_foreprompt: p.max_foreprompt as usize,
        max_backprompt: p.max_backprompt as usize,
        max_point: p.max_point as usize,
        background: p.background_patches,
    };
    let t0 = Instant::now();
    // A resumed run's clock goes on from the checkpoint's last log row.
    let earlier = log
        .last()
        .and_then(|r| r["seconds"].as_f64())
        .unwrap_or(0.0);
    let mut block = [0.0f64; 3];
    let mut block_n = [0usize; 3];
    let mut dice_sum: BTreeMap<i64, (f64, usize)> = BTreeMap::new();
    let dice_from = p.steps - (p.steps / 10).max(1);
    for step in start..p.steps {
        ctx.check_cancelled()?;
        let dice = (step >= dice_from).then_some(&mut dice_sum);
        let (loss, l_auto, l_point) = one_step(net, cases, p, &opts, step, dice, ctx.device)?;
        let lr = learning_rate(p.lr, step, p.warmup, p.steps, p.schedule);
        opt.minimise(&loss, lr);
        if let Some(e) = ema.as_mut() {
            e.update();
        }
        let lv = loss.double_value(&[]);
        if !lv.is_finite() {
            return Err(NodeError::Invalid(format!(
                "the loss is {lv} at step {step}: lower `lr` (now {})",
                p.lr
            )));
        }
        block[0] += lv;
        add(&mut block[1], &mut block_n[1], l_auto);
        add(&mut block[2], &mut block_n[2], l_point);
        block_n[0] += 1;
        let done = step + 1;
        if done % LOG_EVERY == 0 || done == p.steps {
            let mean = |k: usize| json!(block[k] / block_n[k] as f64);
            log.push(json!({
                "step": done, "loss": mean(0), "auto": mean(1), "point": mean(2),
                "lr": lr, "seconds": earlier + t0.elapsed().as_secs_f64(),
            }));
            block = [0.0; 3];
            block_n = [0; 3];
        }
        if done % p.checkpoint_every == 0 && done < p.steps {
            ckpt.save(
                identity,
                done,
                &log,
                Saved {
                    weights: &net.vs.variables().into_iter().collect(),
                    exp_avg: &opt.exp_avg,
                    exp_avg_sq: &opt.exp_avg_sq,
                    ema: ema.as_ref().map_or(&no_ema, |e| &e.avg),
                },
            )?;
        }
        let shown = log.last().and_then(|r| r["loss"].as_f64()).unwrap_or(lv);
        ctx.progress(
            done as u64,
            p.steps as u64,
            &format!("steps (loss {shown:.3})"),
        );
    }
    if let Some(e) = &ema {
        e.apply();
    }
    Ok(RunResult {
        log,
        seconds: t0.elapsed().as_secs_f64(),
        seconds_total: earlier + t0.elapsed().as_secs_f64(),
        steps_timed: p.steps - start,
        resumed_from: start,
        train_dice: dice_sum
            .into_iter()
            .map(|(k, (s, n))| (k, s / n as f64))
            .collect(),
    })
}

/// Loads this run's checkpoint into the network and the optimiser, if there is one: the step
/// to start from and the log so far.
fn resume(
    net: &Vista3d,
    opt: &mut AdamW,
    ema: Option<&mut Ema>,
    identity: &str,
    ckpt: &Checkpoints,
    steps: i64,
    ctx: &Ctx,
) -> Result<(i64, Vec<Json>), NodeError> {
    let Some(r) = ckpt.load(identity)? else {
        return Ok((0, Vec::new()));
    };
    copy_by_name(&net.vs.variables(), &r.weights);
    opt.restore(r.step, &r.exp_avg, &r.exp_avg_sq);
    if let Some(e) = ema {
        e.restore(&r.ema);
    }
    ctx.warn(&format!(
        "resuming from the checkpoint at step {} of {steps} ({})",
        r.step,
        ckpt.dir.display()
    ));
    Ok((r.step, r.log))
}

/// The forward pass and loss of step `step` (its draws from `Rng::new(seed, step)`): the
/// total loss to minimise, and the class head's and point head's losses (NaN when the step
/// does not train that head). With `dice`, adds the class head's hard Dice per present class.
// On tch `a += b` is an in-place add_, which autograd must not see on the loss.
#[expect(
    clippy::assign_op_pattern,
    reason = "on tch `a += b` is an in-place add_, which autograd must not see on the loss"
)]
fn one_step(
    net: &Vista3d,
    cases: &[Case],
    p: &TrainParams,
    opts: &PromptOptions,
    step: i64,
    dice: Option<&mut BTreeMap<i64, (f64, usize)>>,
    dev: Device,
) -> Result<(Tensor, f64, f64), NodeError> {
    let mut rng = Rng::new(p.seed as u64, step as u64);
    let (patch, flat, pr) = draw(cases, p, opts, &mut rng)?;
    let mut heads = heads_of_step(p, &mut rng);
    if pr.n_fore == 0 {
        // A background patch: nothing to click on.
        heads = Branches {
            point: false,
            class: true,
        };
    }
    let image = patch.image.to_device(dev);
    let (dec_point, dec_class) = net.image_encoder.forward(&image, heads);
    let targets = Tensor::stack(
        &pr.classes
            .iter()
            .map(|&id| patch.labels.eq(id))
            .collect::<Vec<_>>(),
        0,
    )
    .unsqueeze(1)
    .to_kind(Kind::Float)
    .to_device(dev);
    let fore = targets.narrow(0, 0, pr.n_fore as i64);
    let mut loss = Tensor::zeros([], (Kind::Float, dev));
    let (mut l_auto_v, mut l_point_v) = (f64::NAN, f64::NAN);
    let mut logits = None;
    if let Some(dec) = dec_class {
        let ids = Tensor::from_slice(&pr.classes).to_device(dev);
        let l = net.class_head.forward(&dec, &ids);
        let l_auto = dice_ce(&l, &targets);
        l_auto_v = l_auto.double_value(&[]);
        loss = loss + l_auto;
        if let Some(sum) = dice {
            let d = hard_dice(&l.narrow(0, 0, pr.n_fore as i64), &fore);
            for (k, v) in d.iter().enumerate() {
                let e = sum.entry(pr.classes[k]).or_default();
                e.0 += v;
                e.1 += 1;
            }
        }
        logits = Some(l);
    }
    if let Some(features) = dec_point {
        let (coords, labels) = clicks(&pr, logits.as_ref(), &flat, p, &mut rng)?;
        let class_t = Tensor::from_slice(&pr.classes[..pr.n_fore])
            .view([-1, 1])
            .to_device(dev);
        let pl = net.point_head.forward(
            &features,
            &coords.to_device(dev),
            &labels.to_device(dev),
            Some(&class_t),
        );
        let l_point = dice_ce(&pl, &fore);
        l_point_v = l_point.double_value(&[]);
        loss = loss + l_point;
    }
    Ok((loss, l_auto_v, l_point_v))
}

fn add(sum: &mut f64, n: &mut usize, v: f64) {
    if v.is_finite() {
        *sum += v;
        *n += 1;
    }
}

/// Which heads a step trains, as MONAI's `drop_label_prob` / `drop_point_prob`: with clicks,
/// some steps train only the point head (no label prompt) and some only the class head.
fn heads_of_step(p: &TrainParams, rng: &mut Rng) -> Branches {
    let r = rng.uniform();
    if !p.click_training {
        return Branches {
            point: false,
            class: true,
        };
    }
    if r < p.drop_label_prob {
        Branches {
            point: true,
            class: false,
        }
    } else if rng.chance(p.drop_point_prob) {
        Branches {
            point: false,
            class: true,
        }
    } else {
        Branches {
            point: true,
            class: true,
        }
    }
}

/// A patch with at least one class of its pair's label set, and its prompts.
fn draw(
    cases: &[Case],
    p: &TrainParams,
    opts: &PromptOptions,
    rng: &mut Rng,
) -> Result<(data::Patch, Vec<i64>, prompts::Prompts), NodeError> {
    for _ in 0..100 {
        let patch = data::sample(cases, p.pair_weights.as_deref(), p.patch, &p.augment, rng);
        let flat: Vec<i64> = Vec::try_from(&patch.labels.contiguous().view([-1]))?;
        if let Some(pr) = prompts::sample(&flat, p.patch, &patch.label_set, opts, rng) {
            return Ok((patch, flat, pr));
        }
    }
    Err(NodeError::Invalid(
        "100 random patches in a row held no mapped class: check `classes` against the label \
         ids of the data, or raise augment.foreground"
            .into(),
    ))
}

/// The click tensors of the present classes: the sampled clicks plus, with probability
/// `error_click`, one from the class head's current error (padding otherwise).
fn clicks(
    pr: &prompts::Prompts,
    logits: Option<&Tensor>,
    flat: &[i64],
    p: &TrainParams,
    rng: &mut Rng,
) -> Result<(Tensor, Tensor), NodeError> {
    let n = pr.points[0].len() + 1;
    let mut coords = Vec::with_capacity(pr.n_fore * n * 3);
    let mut labels = Vec::with_capacity(pr.n_fore * n);
    for k in 0..pr.n_fore {
        let (at, label) = if let Some(logits) = logits.filter(|_| rng.chance(p.error_click)) {
            let pred: Vec<bool> = Vec::try_from(
                &logits
                    .get(k as i64)
                    .detach()
                    .gt(0.0)
                    .to_device(Device::Cpu)
                    .contiguous()
                    .view([-1]),
            )?;
            let target: Vec<bool> = flat.iter().map(|&v| v == pr.classes[k]).collect();
            prompts::error_click(&pred, &target, p.patch, pr.classes[k], rng)
        } else {
            ([0, 0, 0], -1)
        };
        for (pt, &l) in pr.points[k]
            .iter()
            .chain([&at])
            .zip(pr.point_labels[k].iter().chain([&label]))
        {
            coords.extend(pt.map(|x| x as f32));
            labels.push(l);
        }
    }
    let b = pr.n_fore as i64;
    Ok((
        Tensor::from_slice(&coords).view([b, n as i64, 3]),
        Tensor::from_slice(&labels).view([b, n as i64]),
    ))
}

/// The model card: what the weights are, what they were trained on and how well.
pub fn card(
    net: &Vista3d,
    p: &TrainParams,
    cfg: &Config,
    cases: &[Case],
    data: Vec<Json>,
    run: &RunResult,
    first_image: &Volume,
) -> Json {
    let t = table();
    let mut ids: Vec<i64> = cases.iter().flat_map(|c| c.label_set.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    let classes: BTreeMap<String, String> = ids
        .iter()
        .map(|&i| {
            let name = t
                .classes
                .get(&(i as u32))
                .cloned()
                .unwrap_or_else(|| format!("zero-shot {i}"));
            (i.to_string(), name)
        })
        .collect();
    let name_of = |i: &i64| classes.get(&i.to_string()).cloned().unwrap_or_default();
    let last = &run.log[run
        .log
        .len()
        .saturating_sub(((p.steps / LOG_EVERY) / 10).max(1) as usize)..];
    let final_loss =
        last.iter().filter_map(|r| r["loss"].as_f64()).sum::<f64>() / last.len().max(1) as f64;
    json!({
        "format": "vistaflow.vista3d.model/1",
        "config": cfg,
        "classes": classes,
        "spacing_mm": first_image.geometry().spacing(),
        "patch": p.patch,
        "preprocess": "vista3d_auto's: foreground crop (HU > 0, margin 10), HU -963.8..1053.7 \
                       scaled to [0, 1], RAS",
        "training": {
            "params": serde_json::to_value(p).expect("params serialise"),
            "steps": p.steps,
            "seconds": run.seconds_total,
            // Of the last process alone: steps it ran over the time it took.
            "steps_per_second": run.steps_timed as f64 / run.seconds.max(1e-9),
            "resumed_from_step": run.resumed_from,
            "log": run.log,
            "threads": tch::get_num_threads(),
            "device": format!("{:?}", net.device()),
        },
        "data": data,
        "metrics": {
            "final_loss": final_loss,
            "train_patch_dice": run.train_dice.iter().map(|(k, v)| (name_of(k), json!(v))).collect::<BTreeMap<_, _>>(),
        },
        "software": {"vistaflow": env!("CARGO_PKG_VERSION")},
    })
}

/// Writes the weights (MONAI state-dict names, float32) and the card next to them.
pub fn write_model(net: &Vista3d, path: &Path, card: &Json) -> Result<ModelFile, NodeError> {
    let mut tensors: Vec<(String, Tensor)> = net
        .vs
        .variables()
        .into_iter()
        .map(|(k, t)| {
            (
                k,
                t.detach()
                    .to_device(Device::Cpu)
                    .to_kind(Kind::Float)
                    .contiguous(),
            )
        })
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    checkpoint::write_tensors(path, &tensors)?;
    let mut card = card.clone();
    let bytes =
        std::fs::read(path).map_err(|e| NodeError::file(path, format!("cannot read back: {e}")))?;
    let sha256 = format!("{:x}", Sha256::digest(&bytes));
    card["weights_sha256"] = json!(sha256);
    let text = serde_json::to_string_pretty(&card).expect("card serialises") + "\n";
    crate::io::atomic::write_text(&crate::vista3d::models::card_path(path), &text)?;
    Ok(ModelFile {
        path: path.to_path_buf(),
        sha256,
        card,
    })
}
