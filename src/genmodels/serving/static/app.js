// The gallery: plain JavaScript against the service's JSON API, no build step, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
const PRIOR_RANGE = 3; // a VAE's explorer spans [-3, 3] on each axis of its N(0, I) prior
let models = [];
let limits = { max_n: 64 };
let inputImage = null; // data URL of the image to reconstruct, translate or upscale
let inputIsSample = false; // a generated sample (brought to an upscaler's input size first)

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

// POST JSON, get a PNG back as an object URL; a 4xx/5xx becomes an Error with its detail.
async function postForImage(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "image/png" },
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail || detail;
    } catch (_) {
      /* not JSON: keep the status text */
    }
    throw new Error(`${response.status}: ${detail}`);
  }
  const blob = await response.blob();
  return { url: URL.createObjectURL(blob), blob, headers: response.headers };
}

// Grids are shown at a whole multiple of their size (crisp pixels), at most `fit` wide.
function scaleToFit(img, fit) {
  img.onload = () => {
    const scale = Math.max(1, Math.floor(fit / img.naturalWidth));
    img.style.width = `${img.naturalWidth * scale}px`;
  };
}

function setImage(img, url) {
  if (img.dataset.url) URL.revokeObjectURL(img.dataset.url);
  img.dataset.url = url;
  img.src = url;
  img.hidden = false;
}

function fillSelect(select, items, label) {
  select.innerHTML = "";
  for (const item of items) {
    const option = document.createElement("option");
    option.value = item.name;
    option.textContent = label ? label(item) : item.name;
    select.appendChild(option);
  }
}

const byName = (name) => models.find((m) => m.name === name);
// the data's own class name (Fashion-MNIST's, a folder's subfolder) where /models gives it
const className = (model, c) => (model.class_names && model.class_names[c]) || `class ${c}`;
const can = (endpoint) => models.filter((m) => m.endpoints.includes(endpoint));

// ------------------------------------------------------------------ health

function renderHealth(health) {
  const box = $("health");
  box.innerHTML = "";
  const names = Object.keys(health.models);
  if (!names.length) {
    box.textContent = "no models found: export some with `dvc repro export@<instance>`";
    return;
  }
  for (const name of names) {
    const status = health.models[name].status;
    const span = document.createElement("span");
    span.className = status === "ok" ? "ok" : "bad";
    span.textContent = `${name}: ${status}`;
    const errors = Object.values(health.models[name].graphs)
      .map((g) => g.error)
      .filter(Boolean);
    if (errors.length) span.title = errors.join("\n");
    box.appendChild(span);
    box.appendChild(document.createTextNode("  \u00b7  "));
  }
  box.removeChild(box.lastChild);
}

// ------------------------------------------------------------------ generate

function onGenerateModel() {
  const model = byName($("generate-model").value);
  const picker = $("class-picker");
  const select = $("generate-class");
  picker.hidden = !(model && model.num_classes);
  if (model && model.num_classes) {
    select.innerHTML = '<option value="">all classes</option>';
    for (let c = 0; c < model.num_classes; c++) {
      const option = document.createElement("option");
      option.value = String(c);
      option.textContent = className(model, c);
      select.appendChild(option);
    }
  }
}

async function generate() {
  const model = byName($("generate-model").value);
  if (!model) return;
  const n = Math.max(1, Math.min(Number($("generate-n").value) || 1, limits.max_n));
  const body = { n };
  const seed = $("generate-seed").value;
  if (seed !== "") body.seed = Number(seed);
  const chosen = $("generate-class").value;
  if (model.num_classes && chosen !== "") body.labels = Array(n).fill(Number(chosen));
  $("generate-btn").disabled = true;
  try {
    const { url, headers } = await postForImage(`/generate/${model.name}`, body);
    setImage($("generate-img"), url);
    $("generate-info").textContent =
      `${n} from ${model.name} (version ${headers.get("X-Model-Version")}), ` +
      `seed ${headers.get("X-Seed")}`;
    showError("");
  } catch (err) {
    showError(err.message);
  } finally {
    $("generate-btn").disabled = false;
  }
}

// ------------------------------------------------------------------ latent explorer

const explorer = { z: [0, 0], busy: false, pending: false, dragging: false };

// [[low, high], [low, high]]: a VAE's prior, or where an autoencoder's codes of real images lie
function planeRange(model) {
  if (model && model.latent_range && model.latent_range.length === 2) return model.latent_range;
  return [[-PRIOR_RANGE, PRIOR_RANGE], [-PRIOR_RANGE, PRIOR_RANGE]];
}

const currentRange = () => planeRange(byName($("explorer-model").value));

function drawPlane() {
  const canvas = $("latent-canvas");
  const ctx = canvas.getContext("2d");
  const w = canvas.width;
  const h = canvas.height;
  const [[x0, x1], [y0, y1]] = currentRange();
  const toX = (v) => ((v - x0) / (x1 - x0)) * w;
  const toY = (v) => ((y1 - v) / (y1 - y0)) * h; // z2 grows upwards
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#e2e2e2";
  for (let i = 0; i <= 6; i++) {
    const x = (i / 6) * w;
    const y = (i / 6) * h;
    ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, h); ctx.stroke();
    ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(w, y); ctx.stroke();
  }
  ctx.strokeStyle = "#999"; // the axes, where the plane holds the origin
  if (x0 < 0 && x1 > 0) { ctx.beginPath(); ctx.moveTo(toX(0), 0); ctx.lineTo(toX(0), h); ctx.stroke(); }
  if (y0 < 0 && y1 > 0) { ctx.beginPath(); ctx.moveTo(0, toY(0)); ctx.lineTo(w, toY(0)); ctx.stroke(); }
  ctx.fillStyle = "#2b59c3";
  ctx.beginPath(); ctx.arc(toX(explorer.z[0]), toY(explorer.z[1]), 6, 0, 2 * Math.PI); ctx.fill();
}

function showPoint() {
  const [[x0, x1], [y0, y1]] = currentRange();
  $("latent-z").textContent = `z = (${explorer.z[0].toFixed(2)}, ${explorer.z[1].toFixed(2)})`;
  $("latent-range").textContent =
    `[${x0.toFixed(2)}, ${x1.toFixed(2)}] \u00d7 [${y0.toFixed(2)}, ${y1.toFixed(2)}]`;
  drawPlane();
}

// a new model starts at the centre of its plane
function onExplorerModel() {
  const [[x0, x1], [y0, y1]] = currentRange();
  explorer.z = [(x0 + x1) / 2, (y0 + y1) / 2];
  showPoint();
  decodePoint();
}

// One request in flight at a time; the newest point wins when the previous one returns.
async function decodePoint() {
  if (explorer.busy) {
    explorer.pending = true;
    return;
  }
  const name = $("explorer-model").value;
  if (!name) return;
  explorer.busy = true;
  const z = explorer.z.slice();
  try {
    const { url } = await postForImage(`/decode/${name}`, { z: [z] });
    const img = $("latent-img");
    setImage(img, url);
    img.dataset.updates = String(Number(img.dataset.updates) + 1);
    img.dataset.z = z.map((v) => v.toFixed(2)).join(",");
    showError("");
  } catch (err) {
    showError(err.message);
  } finally {
    explorer.busy = false;
    if (explorer.pending) {
      explorer.pending = false;
      decodePoint();
    }
  }
}

function movePoint(event) {
  const canvas = $("latent-canvas");
  const rect = canvas.getBoundingClientRect();
  const fx = Math.min(Math.max((event.clientX - rect.left) / rect.width, 0), 1);
  const fy = Math.min(Math.max((event.clientY - rect.top) / rect.height, 0), 1);
  const [[x0, x1], [y0, y1]] = currentRange();
  explorer.z = [x0 + fx * (x1 - x0), y1 - fy * (y1 - y0)];
  showPoint();
  decodePoint();
}

function setupExplorer() {
  const canvas = $("latent-canvas");
  canvas.addEventListener("pointerdown", (e) => {
    explorer.dragging = true;
    canvas.setPointerCapture(e.pointerId);
    movePoint(e);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (explorer.dragging) movePoint(e);
  });
  const stopDrag = () => { explorer.dragging = false; };
  canvas.addEventListener("pointerup", stopDrag);
  canvas.addEventListener("pointercancel", stopDrag);
  $("explorer-model").addEventListener("change", onExplorerModel);
}

// ------------------------------------------------------------------ images in

const ACTIONS = ["reconstruct", "translate", "upscale"];

function onImageModel() {
  const model = byName($("image-model").value);
  const actions = model ? ACTIONS.filter((a) => model.endpoints.includes(a)) : [];
  fillSelect($("image-action"), actions.map((name) => ({ name })));
  onImageAction();
}

function onImageAction() {
  const model = byName($("image-model").value);
  const translate = $("image-action").value === "translate";
  $("direction-picker").hidden = !translate;
  if (translate && model) {
    const domains = model.domains || {};
    const names = { ab: `${domains.a || "A"} \u2192 ${domains.b || "B"}`,
                    ba: `${domains.b || "B"} \u2192 ${domains.a || "A"}` };
    fillSelect($("image-direction"), model.directions.map((d) => ({ name: d })),
               (item) => names[item.name]);
  }
}

function setInput(dataUrl, info, sample = false) {
  inputImage = dataUrl;
  inputIsSample = sample;
  const img = $("image-input");
  $("image-output").hidden = true; // the previous output belongs to the previous input
  img.src = dataUrl;
  img.hidden = false;
  $("image-run").disabled = false;
  $("image-info").textContent = info;
}

function readFile(file) {
  const reader = new FileReader();
  reader.onload = () => setInput(reader.result, `${file.name}, ${file.size} bytes`);
  reader.onerror = () => showError(`cannot read ${file.name}`);
  reader.readAsDataURL(file);
}

// A model that samples from its prior (`generative` in /models) first: an autoencoder is not one.

async function useSample() {
  const generators = can("generate");
  const source = generators.find((m) => m.generative) || generators[0];
  if (!source) {
    showError("no model can generate a sample here: upload an image instead");
    return;
  }
  try {
    const { blob } = await postForImage(`/generate/${source.name}`, { n: 1 });
    const reader = new FileReader();
    reader.onload = () => setInput(reader.result, `a sample of ${source.name}`, true);
    reader.readAsDataURL(blob);
  } catch (err) {
    showError(err.message);
  }
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("cannot decode the input image"));
    img.src = url;
  });
}

// An upscaler learned to enlarge images of its training size / scale: a generated sample (at
// the training size) is brought down to that first, as its low-resolution inputs were made.
async function upscalerInput(model) {
  const [height, width] = model.size || [];
  const scale = model.scale || 1;
  if (!inputIsSample || !height || scale <= 1) return inputImage;
  const source = await loadImage(inputImage);
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(width / scale));
  canvas.height = Math.max(1, Math.round(height / scale));
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(source, 0, 0, canvas.width, canvas.height);
  const small = canvas.toDataURL("image/png");
  $("image-input").src = small;
  $("image-info").textContent += `, brought down to ${canvas.width} x ${canvas.height}`;
  return small;
}

// Input and output at the same pixels per image pixel, the output at most 504 px wide: an
// upscaled output shows larger than its input.
function showPair() {
  const input = $("image-input");
  const output = $("image-output");
  if (!input.naturalWidth) return;
  const out = output.hidden ? 0 : output.naturalWidth;
  const zoom = Math.max(1, Math.floor(Math.min(168 / input.naturalWidth,
                                               out ? 504 / out : Infinity)));
  input.style.width = `${input.naturalWidth * zoom}px`;
  if (out) output.style.width = `${out * zoom}px`;
}

async function runImage() {
  const name = $("image-model").value;
  const action = $("image-action").value;
  if (!inputImage || !name || !action) return;
  const image = action === "upscale" ? await upscalerInput(byName(name)) : inputImage;
  const body = { image, invert: $("image-invert").checked };
  if (action === "translate") body.direction = $("image-direction").value;
  $("image-run").disabled = true;
  try {
    const { url } = await postForImage(`/${action}/${name}`, body);
    setImage($("image-output"), url);
    showError("");
  } catch (err) {
    showError(err.message);
  } finally {
    $("image-run").disabled = false;
  }
}

// ------------------------------------------------------------------ start

async function start() {
  try {
    const [listing, health] = await Promise.all([
      fetch("/models").then((r) => r.json()),
      fetch("/health").then((r) => r.json()),
    ]);
    models = listing.models;
    limits = listing.limits;
    $("generate-n").max = String(limits.max_n);
    renderHealth(health);
  } catch (err) {
    showError(`cannot reach the service: ${err.message}`);
    return;
  }
  const generators = can("generate");
  fillSelect($("generate-model"), generators, (m) => `${m.name} (${m.family})`);
  const sampler = generators.find((m) => m.generative);
  if (sampler) $("generate-model").value = sampler.name;
  $("generate-section").hidden = !generators.length;
  onGenerateModel();

  // a VAE's prior is N(0, I), so [-3, 3]^2 covers its plane; an autoencoder's plane is where
  // its codes of real images lie (latent_range, recorded at export)
  const planes = can("decode").filter(
    (m) => m.latent_dim === 2 && (m.generative || m.latent_range));
  fillSelect($("explorer-model"), planes, (m) => `${m.name} (${m.family})`);
  $("explorer-section").hidden = !planes.length;

  const imageModels = models.filter((m) => ACTIONS.some((a) => m.endpoints.includes(a)));
  fillSelect($("image-model"), imageModels, (m) => `${m.name} (${m.family})`);
  $("image-section").hidden = !imageModels.length;
  onImageModel();

  $("generate-model").addEventListener("change", onGenerateModel);
  $("generate-btn").addEventListener("click", generate);
  scaleToFit($("generate-img"), 480);
  $("image-output").onload = showPair;
  $("image-input").onload = showPair;
  $("image-model").addEventListener("change", onImageModel);
  $("image-action").addEventListener("change", onImageAction);
  $("image-file").addEventListener("change", (e) => {
    if (e.target.files.length) readFile(e.target.files[0]);
  });
  $("image-sample").addEventListener("click", useSample);
  $("image-run").addEventListener("click", runImage);
  if (planes.length) {
    setupExplorer();
    onExplorerModel();
  }
  document.body.dataset.ready = "1";
}

start();
