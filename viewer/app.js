// vistaflow's viewer page: NiiVue shows the refine node's image with the label map over it;
// a click in a slice goes to the server, which runs the workflow's vista3d_refine node through
// the engine and answers with a new label map. The server owns the clicks (undo/redo too);
// the page shows them. window.vistaflow exposes the state for the browser test.
"use strict";

const $ = (id) => document.getElementById(id);
const ui = {
  nv: null,
  state: null,
  version: 0, // of the label map shown
  loading: false,
  hidden: new Set(), // class ids not shown
  classOpacity: {}, // id -> 0..1
  down: null, // the pointerdown of a possible click
  location: null,
  locationAt: 0,
  clickAt: 0, // when the last click was sent (ms), until its overlay is shown
  lastLatencyMs: null, // click to overlay shown
  lastTiming: null, // of that: {answered, computed, drawn} ms after the click
  webgl: null,
  markedClicks: "", // the clicks drawn as markers (their JSON)
  classes: null, // VISTA3D's classes a click can take (from the server)
  classesKey: null, // the zero-shot ids the class list was built with
};
window.vistaflow = ui;

async function api(method, path, body) {
  const r = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  let data = null;
  try {
    data = await r.json();
  } catch (_) {
    data = { error: `${path}: HTTP ${r.status}` };
  }
  if (!r.ok) throw new Error((data && data.error) || `${path}: HTTP ${r.status}`);
  return data;
}

function showError(msg) {
  const el = $("error");
  el.hidden = !msg;
  el.textContent = msg || "";
}

// ---- volumes -------------------------------------------------------------------------

function applyWindow() {
  const [lo, hi] = $("window").value.split(",").map(Number);
  const img = ui.nv.volumes[0];
  if (!img) return;
  img.cal_min = lo;
  img.cal_max = hi;
  ui.nv.updateGLVolume();
}

function labelColormap() {
  const legend = (ui.state && ui.state.legend) || [];
  const cm = { R: [0], G: [0], B: [0], A: [0], I: [0], labels: [""] };
  for (const c of legend) {
    cm.R.push(c.rgb[0]);
    cm.G.push(c.rgb[1]);
    cm.B.push(c.rgb[2]);
    const a = ui.hidden.has(c.id) ? 0 : ui.classOpacity[c.id] ?? 1;
    cm.A.push(Math.round(255 * a));
    cm.I.push(c.id);
    cm.labels.push(c.name);
  }
  return cm;
}

function applyLabels() {
  const lab = ui.nv.volumes[1];
  if (!lab) return;
  lab.setColormapLabel(labelColormap());
  ui.nv.setOpacity(1, Number($("opacity").value));
  ui.nv.updateGLVolume();
}

async function loadLabels(version) {
  ui.loading = true;
  try {
    const img = await niivue.NVImage.loadFromUrl({
      url: `/api/labels.nii?v=${version}`,
      name: "labels.nii",
    });
    const lab = ui.nv.volumes[1];
    if (lab && lab.img && lab.img.length === img.img.length && lab.img.constructor === img.img.constructor) {
      // The same grid: only the voxels change, and only the overlay's layer is redrawn
      // (replacing the volume would rebuild the CT's textures and its 3D render too).
      lab.img = img.img;
      lab.setColormapLabel(labelColormap());
      lab.opacity = Number($("opacity").value);
      ui.nv.refreshLayers(lab, 1);
      ui.nv.drawScene();
    } else {
      if (lab) ui.nv.removeVolume(lab);
      ui.nv.addVolume(img);
      applyLabels();
    }
    ui.version = version;
    if (ui.clickAt) {
      ui.lastLatencyMs = performance.now() - ui.clickAt;
      ui.lastTiming = { ...ui.timing, drawn: ui.lastLatencyMs };
      ui.clickAt = 0;
    }
  } finally {
    ui.loading = false;
  }
}

async function loadImage() {
  await ui.nv.loadVolumes([{ url: "/api/image.nii", name: "image.nii", colormap: "gray" }]);
  applyWindow();
}

// ---- clicks --------------------------------------------------------------------------

// Each click as a small square in NiiVue's drawing layer (green positive, red negative; the
// drawing's own colours 2 and 1), so the views show where the clicks are.
function drawClicks(clicks) {
  const key = JSON.stringify(clicks.map((c) => [c.ras_mm, c.positive]));
  const nv = ui.nv;
  if (key === ui.markedClicks || !nv.volumes.length) return;
  ui.markedClicks = key;
  nv.createEmptyDrawing();
  for (const c of clicks) {
    const v = nv.frac2vox(nv.mm2frac(c.ras_mm));
    const pen = c.positive ? 2 : 1;
    // A 3 x 3 square in the click's axial slice (a plus would hide under the crosshair).
    for (let dx = -1; dx <= 1; dx++) {
      for (let dy = -1; dy <= 1; dy++) nv.drawPt(v[0] + dx, v[1] + dy, v[2], pen);
    }
  }
  nv.refreshDrawing(true);
}

function onLocation(data) {
  ui.location = data;
  ui.locationAt = performance.now();
  $("location").textContent = data.string || "";
}

function setupClicks(canvas) {
  // Capture phase: seen before NiiVue's own handlers move the crosshair.
  canvas.addEventListener(
    "pointerdown",
    (e) => {
      ui.down = { x: e.clientX, y: e.clientY, shift: e.shiftKey, button: e.button, t: performance.now() };
    },
    true,
  );
  canvas.addEventListener(
    "pointerup",
    (e) => {
      const d = ui.down;
      ui.down = null;
      if (!d || d.button !== 0 || !$("clicking").checked) return;
      if (Math.hypot(e.clientX - d.x, e.clientY - d.y) > 4) return; // a drag, not a click
      // After NiiVue has placed the crosshair for this click.
      setTimeout(() => {
        if (ui.location && ui.locationAt >= d.t) addClick(ui.location.mm, !d.shift);
      }, 0);
    },
    true,
  );
}

async function addClick(mm, positive) {
  const cls = Number($("class").value);
  showError("");
  ui.clickAt = performance.now();
  try {
    render(await api("POST", "/api/click", { ras_mm: [mm[0], mm[1], mm[2]], positive, class: cls }));
    ui.timing = { answered: performance.now() - ui.clickAt };
    schedule(0);
  } catch (e) {
    ui.clickAt = 0;
    showError(e.message);
  }
}

async function post(path) {
  showError("");
  try {
    render(await api("POST", path));
    schedule(0);
  } catch (e) {
    showError(e.message);
  }
}

async function save() {
  showError("");
  $("save").disabled = true;
  try {
    const r = await api("POST", "/api/save");
    $("saved").textContent = "saved: " + r.saved.join(", ");
  } catch (e) {
    showError(e.message);
  } finally {
    $("save").disabled = false;
  }
}

// ---- state ---------------------------------------------------------------------------

function render(s) {
  if (ui.state && s.changes < ui.state.changes) return; // an answer overtaken by a click
  ui.state = s;
  $("workflow").textContent = `${s.workflow} - clicks go to node \`${s.node}\``;
  const st = $("status");
  st.className = "status " + s.status;
  st.textContent = s.status === "ready" && s.last_seconds ? `ready (last: ${s.last_seconds.toFixed(2)} s)` : s.status;
  const busy = s.status === "computing" || s.status === "starting" || s.doing;
  $("busy").hidden = !busy;
  $("busy-text").textContent = `${s.doing || s.status} ${s.seconds.toFixed(1)} s`;
  if (s.error) showError(s.error);
  $("undo").disabled = !s.can_undo;
  $("redo").disabled = !s.can_redo;
  const ol = $("clicks");
  ol.replaceChildren(
    ...s.clicks.map((c) => {
      const li = document.createElement("li");
      li.className = c.positive ? "pos" : "neg";
      li.textContent = `${c.positive ? "+" : "-"} ${c.class_name} at voxel [${c.voxel.join(", ")}]`;
      return li;
    }),
  );
  renderLegend(s.legend);
  if (ui.classes) fillClasses();
  if (s.saved.length) $("saved").textContent = "saved: " + s.saved.join(", ");
}

function renderLegend(legend) {
  const body = $("legend").tBodies[0];
  body.replaceChildren(
    ...legend.map((c) => {
      const tr = document.createElement("tr");
      const vis = document.createElement("input");
      vis.type = "checkbox";
      vis.checked = !ui.hidden.has(c.id);
      vis.onchange = () => {
        if (vis.checked) ui.hidden.delete(c.id);
        else ui.hidden.add(c.id);
        applyLabels();
      };
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = `rgb(${c.rgb.join(",")})`;
      const op = document.createElement("input");
      op.type = "range";
      op.min = 0;
      op.max = 1;
      op.step = 0.1;
      op.value = ui.classOpacity[c.id] ?? 1;
      op.oninput = () => {
        ui.classOpacity[c.id] = Number(op.value);
        applyLabels();
      };
      const cells = [[vis], [sw, ` ${c.name}`], [c.ml.toFixed(1)], [op]];
      for (const parts of cells) {
        const td = document.createElement("td");
        td.append(...parts);
        tr.append(td);
      }
      return tr;
    }),
  );
}

// The class list: each zero-shot structure already made (ids above 132, from the legend and
// the clicks), one new one (the next free id), then VISTA3D's classes. Rebuilt when those
// change, keeping the choice.
function fillClasses() {
  const sel = $("class");
  const opt = (value, text) => {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = text;
    return o;
  };
  const made = new Set([
    ...((ui.state && ui.state.legend) || []).map((c) => c.id),
    ...((ui.state && ui.state.clicks) || []).map((c) => c.class),
  ].filter((id) => id > 132));
  let next = 133;
  while (made.has(next)) next++;
  const key = JSON.stringify([...made].sort());
  if (key === ui.classesKey) return;
  ui.classesKey = key;
  const chosen = sel.value;
  sel.replaceChildren(
    ...[...made].sort((a, b) => a - b).map((id) => opt(id, `new structure ${id}`)),
    opt(next, `new structure (zero-shot, ${next})`),
    ...ui.classes.map((c) => opt(c.id, `${c.name} (${c.id})`)),
  );
  sel.value = chosen && [...sel.options].some((o) => o.value === chosen) ? chosen : "1";
}

let pollTimer = null;
let polling = false;

function isBusy() {
  return !!(ui.state && (ui.state.status !== "ready" || ui.state.doing));
}

// The next look at the state after `delay` ms (replacing one already planned).
function schedule(delay) {
  clearTimeout(pollTimer);
  pollTimer = setTimeout(poll, delay);
}

async function poll() {
  if (polling) return;
  polling = true;
  try {
    // While something computes, one request that the server answers when it is done (no
    // polling competing with the network for the cores); otherwise a look each second.
    const s = await api("GET", isBusy() ? "/api/state?wait=1" : "/api/state");
    if (ui.clickAt && ui.timing && s.version !== ui.version) ui.timing.computed = performance.now() - ui.clickAt;
    render(s);
    if (s.status === "failed") {
      showError("the workflow's first run failed: " + (s.error || "see the terminal"));
    } else if (s.version > 0 && !ui.loading) {
      if (!ui.nv.volumes.length) await loadImage();
      if (s.version !== ui.version) await loadLabels(s.version);
      drawClicks(s.clicks);
    }
  } catch (e) {
    showError("the server does not answer: " + e.message);
  } finally {
    polling = false;
    schedule(isBusy() ? 0 : 1000);
  }
}

async function main() {
  const nv = new niivue.Niivue({
    backColor: [0.07, 0.07, 0.07, 1],
    show3Dcrosshair: true,
    dragAndDropEnabled: false,
    crosshairColor: [0.2, 0.8, 1, 1],
    isRadiologicalConvention: true, // the patient's left on the screen's right, as in PACS
  });
  ui.nv = nv;
  nv.onLocationChange = onLocation;
  await nv.attachTo("gl");
  const gl = nv.gl;
  ui.webgl = gl ? { version: gl.getParameter(gl.VERSION), renderer: gl.getParameter(gl.RENDERER) } : null;
  nv.setSliceType(nv.sliceTypeMultiplanar);
  nv.opts.multiplanarShowRender = 1; // always show the 3D render beside the slices
  setupClicks($("gl"));
  $("window").onchange = applyWindow;
  $("opacity").oninput = applyLabels;
  $("layout").onchange = () => {
    const v = $("layout").value;
    nv.setSliceType(v === "multi" ? nv.sliceTypeMultiplanar : Number(v));
  };
  $("undo").onclick = () => post("/api/undo");
  $("redo").onclick = () => post("/api/redo");
  $("clear").onclick = () => post("/api/clear");
  $("save").onclick = save;
  ui.classes = await api("GET", "/api/classes");
  fillClasses();
  poll();
}

main().catch((e) => showError("the viewer could not start: " + e.message));
