//! One viewer session: the workflow, its refine node, the clicks so far (with undo/redo) and
//! the label map the page shows. Every computation goes through the engine, so the cache
//! keeps the image, the automatic result and the encoder features between clicks.

use super::clicks::{points_csv, Click};
use crate::cache::Lookup;
use crate::exec::{self, keys, Engine, RunOptions, RunReport};
use crate::workflow::Plan;
use serde::Serialize;
use serde_json::Value as Json;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use vistaflow_nodes::params::Params;
use vistaflow_nodes::value::{LabelMap, Value, Volume};
use vistaflow_nodes::viewer::{self, Body, LegendEntry};
use vistaflow_nodes::PortType;

/// The workflow as `vistaflow serve` uses it.
pub struct Workflow {
    pub plan: Arc<Plan>,
    /// Index of the vista3d_refine node the clicks go to.
    pub refine: usize,
}

impl Workflow {
    /// Finds the refine node: `--node`, else the workflow's only vista3d_refine.
    pub fn new(plan: Plan, node: Option<&str>) -> Result<Workflow, String> {
        let refines: Vec<usize> = (0..plan.nodes.len())
            .filter(|&i| plan.nodes[i].kind() == "vista3d_refine")
            .collect();
        let refine = match (node, refines.as_slice()) {
            (Some(id), _) => {
                let i = plan
                    .index_of(id)
                    .ok_or_else(|| format!("--node {id}: the workflow has no node `{id}`"))?;
                if plan.nodes[i].kind() != "vista3d_refine" {
                    return Err(format!(
                        "--node {id}: `{id}` is a {} node; the clicks go to a vista3d_refine node",
                        plan.nodes[i].kind()
                    ));
                }
                i
            }
            (None, [one]) => *one,
            (None, []) => {
                return Err(
                    "the workflow has no vista3d_refine node: `vistaflow serve` sends \
                            the page's clicks to one (see workflows/serve-demo.yaml)"
                        .into(),
                )
            }
            (None, many) => {
                let ids: Vec<&str> = many.iter().map(|&i| plan.nodes[i].id.as_str()).collect();
                return Err(format!(
                    "the workflow has {} vista3d_refine nodes ({}): choose one with --node",
                    ids.len(),
                    ids.join(", ")
                ));
            }
        };
        for n in plan.upstream_of(&[refine]).nodes {
            if !n.cache {
                return Err(format!(
                    "node `{}` has `cache: false`; the viewer reads the refine node's inputs \
                     and result from the cache: remove it",
                    n.id
                ));
            }
        }
        Ok(Workflow {
            plan: Arc::new(plan),
            refine,
        })
    }

    fn edge(&self, port: &str) -> Option<(usize, String)> {
        self.plan.nodes[self.refine]
            .inputs
            .iter()
            .find(|e| e.port == port)
            .map(|e| (e.from, e.from_port.clone()))
    }

    /// The plan with the refine node's clicks replaced by `clicks`.
    pub fn with_clicks(&self, clicks: &[Click]) -> Result<Plan, String> {
        let mut set = Params::new();
        set.insert(
            "points".into(),
            Json::Array(clicks.iter().map(Click::as_point).collect()),
        );
        set.insert("points_file".into(), Json::Null);
        self.plan.with_params(self.refine, set)
    }
}

/// What the page is told (`GET /api/state`).
#[derive(Clone, Debug, Serialize)]
pub struct State {
    pub workflow: String,
    pub node: String,
    /// "starting", "computing", "ready" or "failed" (the first run failed: nothing to show).
    pub status: &'static str,
    /// What is computing, for the progress line.
    pub doing: String,
    pub seconds: f64,
    /// The last error, for the page to show (a click that failed is taken back).
    pub error: Option<String>,
    /// Bumped each time labels.nii changes; the page reloads the overlay when it does.
    pub version: u64,
    pub clicks: Vec<Click>,
    pub can_undo: bool,
    pub can_redo: bool,
    pub legend: Vec<LegendEntry>,
    /// Files the last save wrote.
    pub saved: Vec<String>,
    /// Seconds the last computation took (click to labels.nii written).
    pub last_seconds: f64,
    /// Bumped by every change of the clicks: the page drops an answer older than one it has.
    pub changes: u64,
}

struct Inner {
    state: State,
    since: Option<Instant>,
    /// Click lists before each change, and undone ones.
    undo: Vec<Vec<Click>>,
    redo: Vec<Vec<Click>>,
    /// Bumped by every change of `state.clicks`; a result is shown only if still current.
    generation: u64,
    /// The clicks of the label map shown.
    shown: Vec<Click>,
}

/// A session; shared by the HTTP handlers and the worker that computes.
pub struct Session {
    pub wf: Workflow,
    engine: Engine,
    opts: RunOptions,
    /// The session folder: image.nii, labels.nii, clicks.csv.
    pub dir: PathBuf,
    inner: Mutex<Inner>,
    wake: tokio::sync::Notify,
    /// Told whenever the session stops computing (a page waiting in `wait_idle`).
    idle: tokio::sync::Notify,
    /// One engine run at a time (clicks and saves).
    running: tokio::sync::Mutex<()>,
    /// Set by the first run.
    view: Mutex<Option<View>>,
}

/// What the first run gives: the refine node's image, its body contour (for the clicks) and
/// the label map without clicks (the prior, or background).
struct View {
    image: Volume,
    body: Body,
    unclicked: LabelMap,
}

fn failed_run(r: &RunReport) -> Option<String> {
    r.first_failure()
        .map(|(id, kind, cause)| format!("node `{id}` ({kind}): {cause}"))
}

impl Session {
    pub fn new(wf: Workflow, engine: Engine, opts: RunOptions, dir: PathBuf) -> Session {
        let state = State {
            workflow: wf.plan.name.clone(),
            node: wf.plan.nodes[wf.refine].id.clone(),
            status: "starting",
            doing: "starting".into(),
            seconds: 0.0,
            error: None,
            version: 0,
            clicks: vec![],
            can_undo: false,
            can_redo: false,
            legend: vec![],
            saved: vec![],
            last_seconds: 0.0,
            changes: 0,
        };
        Session {
            wf,
            engine,
            opts,
            dir,
            inner: Mutex::new(Inner {
                state,
                since: Some(Instant::now()),
                undo: vec![],
                redo: vec![],
                generation: 0,
                shown: vec![],
            }),
            wake: tokio::sync::Notify::new(),
            idle: tokio::sync::Notify::new(),
            running: tokio::sync::Mutex::new(()),
            view: Mutex::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn view_lock(&self) -> MutexGuard<'_, Option<View>> {
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn state(&self) -> State {
        let g = self.lock();
        let mut s = g.state.clone();
        s.seconds = g.since.map_or(0.0, |t| t.elapsed().as_secs_f64());
        s.can_undo = !g.undo.is_empty();
        s.can_redo = !g.redo.is_empty();
        s.changes = g.generation;
        s
    }

    fn busy(s: &State) -> bool {
        s.status == "starting" || s.status == "computing" || !s.doing.is_empty()
    }

    /// The state once nothing is computing, or after `limit`: the page asks this after a
    /// click instead of polling, so the answer comes the moment the label map is ready and
    /// no request competes with the network for the cores meanwhile.
    pub async fn wait_idle(&self, limit: std::time::Duration) -> State {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let s = self.state();
            if !Self::busy(&s) {
                return s;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.state();
            }
        }
    }

    pub fn image_path(&self) -> PathBuf {
        self.dir.join("image.nii")
    }
    pub fn labels_path(&self) -> PathBuf {
        self.dir.join("labels.nii")
    }

    /// Runs `plan` through the engine (one run at a time); the report, or why it failed.
    async fn run(&self, plan: Plan) -> Result<RunReport, String> {
        let _one = self.running.lock().await;
        let report = exec::run(
            &self.engine,
            Arc::new(plan),
            &self.opts,
            CancellationToken::new(),
        )
        .await
        .map_err(|e| e.to_string())?;
        match failed_run(&report) {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Output `port` of node `id` of a finished run, from the cache.
    fn output(
        &self,
        report: &RunReport,
        id: &str,
        port: &str,
        ty: PortType,
    ) -> Result<Value, String> {
        let n = report
            .nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or_else(|| format!("node `{id}` was not part of the run"))?;
        match self.engine.store.get(&keys::output_id(&n.key, port), ty) {
            Ok(Lookup::Hit(v)) => Ok(v),
            Ok(_) => Err(format!("`{id}.{port}` is not in the cache")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The first run: the refine node's inputs (the image and, when connected, the prior
    /// label map), written for the page.
    pub async fn start(&self) -> Result<(), String> {
        let (img_from, img_port) = self
            .wf
            .edge("image")
            .ok_or("the refine node has no `image` input")?;
        let prior = self.wf.edge("labels");
        let mut targets = vec![img_from];
        targets.extend(prior.iter().map(|(i, _)| *i));
        self.set_doing("running the workflow up to the refine node's inputs");
        let report = self.run(self.wf.plan.upstream_of(&targets)).await?;
        let image = match self.output(
            &report,
            &self.wf.plan.nodes[img_from].id,
            &img_port,
            PortType::Image,
        )? {
            Value::Image(v) => v,
            _ => return Err("the refine node's image is not an image".into()),
        };
        let prior = match prior {
            None => None,
            Some((i, port)) => {
                match self.output(&report, &self.wf.plan.nodes[i].id, &port, PortType::Labels)? {
                    Value::Labels(l) => Some(l),
                    _ => return Err("the refine node's `labels` input is not a label map".into()),
                }
            }
        };
        let body = tokio::task::block_in_place(|| {
            std::fs::create_dir_all(&self.dir)
                .map_err(|e| format!("{}: {e}", self.dir.display()))?;
            viewer::write_nifti(&self.image_path(), &Value::Image(image.clone()))
                .map_err(|e| e.to_string())?;
            Body::of(&image)
        })?;
        let unclicked = match prior {
            Some(l) => l,
            None => empty_labels(&image)?,
        };
        self.show(&unclicked, 0.0)?;
        *self.view_lock() = Some(View {
            image,
            body,
            unclicked,
        });
        let mut g = self.lock();
        g.state.status = "ready";
        g.state.doing.clear();
        g.since = None;
        self.idle.notify_waiters();
        Ok(())
    }

    /// The first run failed: the page says why.
    pub fn start_failed(&self, why: String) {
        let mut g = self.lock();
        g.state.status = "failed";
        g.state.error = Some(why);
        g.state.doing.clear();
        g.since = None;
        self.idle.notify_waiters();
    }

    fn set_doing(&self, what: &str) {
        let mut g = self.lock();
        g.state.doing = what.to_string();
        g.since = Some(Instant::now());
    }

    /// Writes `labels` for the page and bumps the version.
    fn show(&self, labels: &LabelMap, seconds: f64) -> Result<(), String> {
        // Blocking work (a file of up to tens of MB): the runtime moves the HTTP side away.
        let legend = tokio::task::block_in_place(|| {
            viewer::write_nifti(&self.labels_path(), &Value::Labels(labels.clone()))
                .map_err(|e| e.to_string())?;
            viewer::legend(labels)
        })?;
        let mut g = self.lock();
        g.state.version += 1;
        g.state.legend = legend;
        g.state.last_seconds = seconds;
        Ok(())
    }

    /// Places a click from the page (RAS mm) on the image's grid, or says why it cannot be.
    pub fn place(&self, ras: [f64; 3], positive: bool, class: u32) -> Result<Click, String> {
        match self.view_lock().as_ref() {
            Some(v) => Click::place(&v.image, &v.body, ras, positive, class),
            None => Err("the image is still loading".into()),
        }
    }

    /// Changes the clicks (a new click, undo, redo, clear) and wakes the worker.
    pub fn change(
        &self,
        f: impl FnOnce(
            &mut Vec<Click>,
            &mut Vec<Vec<Click>>,
            &mut Vec<Vec<Click>>,
        ) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut g = self.lock();
        if g.state.status == "starting" || g.state.status == "failed" {
            return Err("the workflow's first run has not finished".into());
        }
        let Inner {
            state, undo, redo, ..
        } = &mut *g;
        f(&mut state.clicks, undo, redo)?;
        g.generation += 1;
        g.state.error = None;
        g.state.status = "computing";
        g.state.doing = format!(
            "{} clicks: running `{}`",
            g.state.clicks.len(),
            g.state.node
        );
        g.since = Some(Instant::now());
        drop(g);
        self.write_clicks_csv();
        self.wake.notify_one();
        Ok(())
    }

    fn write_clicks_csv(&self) {
        let csv = points_csv(&self.lock().state.clicks);
        // The page offers the same text; this copy is for the user's shell.
        let _ = vistaflow_nodes::io::atomic::write_text(&self.dir.join("clicks.csv"), &csv);
    }

    /// Computes the label map of the current clicks whenever they change, until the end.
    pub async fn worker(self: Arc<Self>) {
        loop {
            self.wake.notified().await;
            loop {
                let (generation, clicks) = {
                    let g = self.lock();
                    (g.generation, g.state.clicks.clone())
                };
                let started = Instant::now();
                let result = self.compute(&clicks).await;
                let mut g = self.lock();
                if g.generation != generation {
                    continue; // changed meanwhile: compute the newer clicks
                }
                match result {
                    Ok(()) => {
                        g.shown = clicks;
                        g.state.last_seconds = started.elapsed().as_secs_f64();
                    }
                    Err(e) => {
                        // The change that failed is taken back, so the clicks stay those shown.
                        g.state.error = Some(e);
                        g.state.clicks = g.shown.clone();
                        g.undo.pop();
                        g.redo.clear();
                    }
                }
                g.state.status = "ready";
                g.state.doing.clear();
                g.since = None;
                self.idle.notify_waiters();
                drop(g);
                self.write_clicks_csv();
                break;
            }
        }
    }

    /// The refine node's result for `clicks` (the prior when there are none), shown.
    async fn compute(&self, clicks: &[Click]) -> Result<(), String> {
        let started = Instant::now();
        if clicks.is_empty() {
            let labels = match self.view_lock().as_ref() {
                Some(v) => v.unclicked.clone(),
                None => return Err("the image is still loading".into()),
            };
            return self.show(&labels, started.elapsed().as_secs_f64());
        }
        let plan = self.wf.with_clicks(clicks)?;
        let sub = plan.upstream_of(&[self.wf.refine]);
        let report = self.run(sub).await?;
        let id = self.wf.plan.nodes[self.wf.refine].id.clone();
        match self.output(&report, &id, "labels", PortType::Labels)? {
            Value::Labels(l) => self.show(&l, started.elapsed().as_secs_f64()),
            _ => Err("the refine node's result is not a label map".into()),
        }
    }

    /// Runs the whole workflow with the clicks (its exports write their files; a report
    /// export records every click in the refine node's params); the files written.
    pub async fn save(&self) -> Result<Vec<String>, String> {
        let clicks = {
            let g = self.lock();
            if g.state.status != "ready" {
                return Err("wait until the last click has been computed".into());
            }
            g.state.clicks.clone()
        };
        if clicks.is_empty() {
            return Err(
                "there are no clicks to save yet: the automatic result is what the \
                        workflow's plain run writes"
                    .into(),
            );
        }
        let plan = self.wf.with_clicks(&clicks)?;
        let written: Vec<String> = plan
            .nodes
            .iter()
            .flat_map(|n| n.written_paths())
            .map(|(_, p)| p.display().to_string())
            .collect();
        self.set_doing("saving: running the workflow's exports");
        let result = self.run(plan).await;
        let mut g = self.lock();
        g.state.doing.clear();
        g.since = None;
        self.idle.notify_waiters();
        match result {
            Ok(_) => {
                g.state.saved = written.clone();
                g.state.error = None;
                Ok(written)
            }
            Err(e) => {
                let e = format!("save failed: {e}");
                g.state.error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// The clicks as the `points_file` CSV.
    pub fn clicks_csv(&self) -> String {
        points_csv(&self.lock().state.clicks)
    }
}

/// An all-background label map on `image`'s grid (a refine node without a prior).
fn empty_labels(image: &Volume) -> Result<LabelMap, String> {
    let data = tch::Tensor::zeros(image.data().size(), (tch::Kind::Uint8, tch::Device::Cpu));
    let vol = Volume::new(data, *image.geometry())?;
    LabelMap::new(vol, Default::default())
}
