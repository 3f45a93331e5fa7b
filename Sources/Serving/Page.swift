/// The demo page: a form over POST /api/generate and the images it got, newest first, each with
/// its time. Query parameters fill the form (prompt, model, solver, steps, guidance, seed, count)
/// and `generate=1` submits it on load; `models=teacher,student` submits once per model with its
/// defaults (for links, the headless-browser check and the README's screenshot).
let demoPage = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>reflow serve</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1100px; }
  h1 { font-size: 20px; margin: 0 0 4px; }
  .sub { color: #666; margin: 0 0 16px; }
  form { display: flex; flex-wrap: wrap; gap: 10px 16px; align-items: end; padding: 12px; background: #f4f4f6; border-radius: 8px; }
  label { display: flex; flex-direction: column; font-size: 12px; color: #555; gap: 3px; }
  input, select, button { font: inherit; padding: 4px 6px; }
  #prompt { width: 260px; }
  input[type=number] { width: 70px; }
  button { padding: 6px 18px; background: #2b5fd9; color: #fff; border: 0; border-radius: 6px; cursor: pointer; }
  button:disabled { background: #999; }
  #words { font-size: 12px; color: #666; margin: 6px 0 0; }
  #error { color: #b00020; margin: 10px 0; min-height: 1em; }
  #results { display: flex; flex-wrap: wrap; gap: 14px; }
  .card { border: 1px solid #ddd; border-radius: 8px; padding: 8px; background: #fff; }
  .card img { image-rendering: pixelated; display: block; }
  .card .meta { font-size: 12px; color: #444; margin-top: 6px; max-width: 320px; }
  .card .time { font-weight: 600; color: #2b5fd9; }
</style>
</head>
<body>
<h1>reflow serve</h1>
<p class="sub">Rectified-flow checkpoints on this machine's CPU: type a prompt, pick a model and its settings.</p>
<form id="form">
  <label>Prompt <input id="prompt" name="prompt" value="the number 7" autocomplete="off"></label>
  <label>Model <select id="model" name="model"></select></label>
  <label>Solver <select id="solver" name="solver"></select></label>
  <label>Steps <input id="steps" name="steps" type="number" min="1" value="1"></label>
  <label>Guidance <input id="guidance" name="guidance" type="number" min="0" max="20" step="0.25" value="1"></label>
  <label>Seed <input id="seed" name="seed" type="number" min="0" value="0"></label>
  <label>Images <input id="count" name="count" type="number" min="1" value="4"></label>
  <button id="go" type="submit">Generate</button>
</form>
<p id="words"></p>
<div id="error"></div>
<div id="results"></div>
<script>
const $ = (id) => document.getElementById(id);
let models = [];
let made = 0;

function applyDefaults() {
  const m = models.find((x) => x.id === $("model").value);
  if (!m) return;
  $("solver").value = m.defaults.solver;
  $("steps").value = m.defaults.steps;
  $("guidance").value = m.defaults.guidance;
  $("words").textContent = "Words this model knows include: " + m.words.join(", ");
}

async function generate() {
  $("error").textContent = "";
  $("go").disabled = true;
  const body = {
    prompt: $("prompt").value, model: $("model").value, solver: $("solver").value,
    steps: Number($("steps").value), guidance: Number($("guidance").value),
    seed: Number($("seed").value), count: Number($("count").value),
  };
  try {
    const r = await fetch("/api/generate", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const j = await r.json();
    if (!r.ok) { $("error").textContent = "Error " + r.status + ": " + j.error; return; }
    made += 1;
    const card = document.createElement("div");
    card.className = "card";
    const img = document.createElement("img");
    img.id = "result-" + made;
    img.className = "result";
    img.src = j.image;
    img.width = Math.min(j.width * 2, 640);
    img.alt = j.settings.prompt;
    const s = j.settings;
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.innerHTML = "<span class=\"time\"></span><br><span class=\"what\"></span>";
    meta.querySelector(".time").textContent = j.ms.toFixed(1) + " ms to generate (" + j.total_ms.toFixed(1) + " ms in the server)";
    meta.querySelector(".what").textContent = "\u201c" + s.prompt + "\u201d \u00b7 " + s.model + " \u00b7 " + s.solver + " " + s.steps +
      " step" + (s.steps > 1 ? "s" : "") + " \u00b7 guidance " + s.guidance + " \u00b7 seed " + s.seed + " \u00b7 " + j.nfe + " network evaluation" + (j.nfe > 1 ? "s" : "");
    card.append(img, meta);
    $("results").prepend(card);
  } catch (e) {
    $("error").textContent = "Request failed: " + e;
  } finally {
    $("go").disabled = false;
  }
}

async function init() {
  const j = await (await fetch("/api/models")).json();
  models = j.models;
  for (const m of models) $("model").add(new Option(m.label, m.id));
  for (const s of j.solvers) $("solver").add(new Option(s, s));
  $("count").max = j.limits.max_count;
  $("steps").max = j.limits.max_steps;
  const q = new URLSearchParams(location.search);
  if (q.has("model")) $("model").value = q.get("model");
  applyDefaults();
  for (const k of ["prompt", "solver", "steps", "guidance", "seed", "count"]) if (q.has(k)) $(k).value = q.get(k);
  $("model").addEventListener("change", applyDefaults);
  $("form").addEventListener("submit", (e) => { e.preventDefault(); generate(); });
  if (q.get("generate") === "1") await generate();
  // models=a,b,...: one request per model with its defaults, in that order (a side-by-side view).
  for (const id of (q.get("models") || "").split(",").filter((x) => x)) {
    $("model").value = id;
    applyDefaults();
    await generate();
  }
}
init().catch((e) => { $("error").textContent = "Cannot reach the server: " + e; });
</script>
</body>
</html>
"""#
