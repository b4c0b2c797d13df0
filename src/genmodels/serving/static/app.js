// The gallery: plain JavaScript against the service's JSON API, no build step, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
const RANGE = 3; // the latent explorer spans [-RANGE, RANGE] on each axis
let models = [];
let limits = { max_n: 64 };
let inputImage = null; // data URL of the image to reconstruct, translate or upscale

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
      select.insertAdjacentHTML("beforeend", `<option value="${c}">class ${c}</option>`);
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

function drawPlane() {
  const canvas = $("latent-canvas");
  const ctx = canvas.getContext("2d");
  const w = canvas.width;
  const h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#e2e2e2";
  for (let v = -RANGE; v <= RANGE; v++) {
    const x = ((v + RANGE) / (2 * RANGE)) * w;
    const y = ((v + RANGE) / (2 * RANGE)) * h;
    ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, h); ctx.stroke();
    ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(w, y); ctx.stroke();
  }
  ctx.strokeStyle = "#999";
  ctx.beginPath(); ctx.moveTo(w / 2, 0); ctx.lineTo(w / 2, h); ctx.stroke();
  ctx.beginPath(); ctx.moveTo(0, h / 2); ctx.lineTo(w, h / 2); ctx.stroke();
  const px = ((explorer.z[0] + RANGE) / (2 * RANGE)) * w;
  const py = ((RANGE - explorer.z[1]) / (2 * RANGE)) * h; // z2 grows upwards
  ctx.fillStyle = "#2b59c3";
  ctx.beginPath(); ctx.arc(px, py, 6, 0, 2 * Math.PI); ctx.fill();
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
  explorer.z = [(fx * 2 - 1) * RANGE, (1 - fy * 2) * RANGE];
  $("latent-z").textContent =
    `z = (${explorer.z[0].toFixed(2)}, ${explorer.z[1].toFixed(2)})`;
  drawPlane();
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
  $("explorer-model").addEventListener("change", decodePoint);
  drawPlane();
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

function setInput(dataUrl, info) {
  inputImage = dataUrl;
  const img = $("image-input");
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
    reader.onload = () => setInput(reader.result, `a sample of ${source.name}`);
    reader.readAsDataURL(blob);
  } catch (err) {
    showError(err.message);
  }
}

async function runImage() {
  const name = $("image-model").value;
  const action = $("image-action").value;
  if (!inputImage || !name || !action) return;
  const body = { image: inputImage, invert: $("image-invert").checked };
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

  // a VAE's prior is N(0, I), so [-3, 3]^2 covers its plane; an autoencoder's codes have no
  // such range, so it is left out
  const planes = can("decode").filter((m) => m.latent_dim === 2 && m.generative);
  fillSelect($("explorer-model"), planes, (m) => `${m.name} (${m.family})`);
  $("explorer-section").hidden = !planes.length;

  const imageModels = models.filter((m) => ACTIONS.some((a) => m.endpoints.includes(a)));
  fillSelect($("image-model"), imageModels, (m) => `${m.name} (${m.family})`);
  $("image-section").hidden = !imageModels.length;
  onImageModel();

  $("generate-model").addEventListener("change", onGenerateModel);
  $("generate-btn").addEventListener("click", generate);
  scaleToFit($("generate-img"), 480);
  scaleToFit($("image-output"), 168);
  $("image-model").addEventListener("change", onImageModel);
  $("image-action").addEventListener("change", onImageAction);
  $("image-file").addEventListener("change", (e) => {
    if (e.target.files.length) readFile(e.target.files[0]);
  });
  $("image-sample").addEventListener("click", useSample);
  $("image-run").addEventListener("click", runImage);
  if (planes.length) {
    setupExplorer();
    decodePoint();
  }
  document.body.dataset.ready = "1";
}

start();
