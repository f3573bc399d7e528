// "Try the model": draw a digit (one-channel image models), upload an image (colour models) or fill in the
// features (tabular models); the UI server prepares the model's input and asks the served model.

import { escapeHtml } from "./format.js";

const BRUSH = 20;

function scoreRows(names) {
  return names.map((name, d) => `
    <div class="score-row" data-digit="${d}"><span class="score-digit" title="${escapeHtml(name)}">${escapeHtml(name)}</span>
      <span class="score-track"><span class="score-bar" style="width:0%"></span></span><span class="score-value">–</span></div>`).join("");
}

export class TryModel {
  constructor(root, workflowName) {
    this.name = workflowName;
    this.busy = false;
    this.drawn = false;
    root.innerHTML = `
      <div class="try">
        <div class="pad">
          <canvas id="digit-canvas" width="280" height="280" aria-label="drawing pad"></canvas>
          <div class="pad-hint" id="pad-hint">Draw a digit here</div>
        </div>
        <div class="pad upload" id="upload-pad" hidden>
          <label class="btn" for="upload-input">Choose an image…</label>
          <input id="upload-input" type="file" accept="image/png,image/jpeg" hidden>
          <img id="upload-preview" alt="the uploaded image" hidden>
        </div>
        <form class="pad features" id="feature-form" hidden></form>
        <div class="try-side">
          <div class="prediction" id="prediction" data-class="">
            <div class="pred-digit" id="pred-digit">–</div>
            <div><div class="pred-label">Prediction</div><div class="pred-conf" id="pred-conf">draw a digit 0–9</div></div>
            <div class="seen"><canvas id="model-input" width="28" height="28" title="What the model saw: 28×28, centred like MNIST"></canvas>
              <div class="seen-label">model input</div></div>
          </div>
          <div class="scores" id="scores">${scoreRows([...Array(10).keys()].map(String))}</div>
          <div class="buttons">
            <button class="btn primary" id="predict-button" type="button">Predict</button>
            <button class="btn" id="clear-button" type="button">Clear</button>
            <span class="model-note" id="model-note"></span>
          </div>
          <div class="try-error" id="try-error" hidden></div>
        </div>
      </div>`;
    this.canvas = root.querySelector("#digit-canvas");
    this.ctx = this.canvas.getContext("2d");
    this.root = root;
    this.clear();
    this.bindDrawing();
    root.querySelector("#predict-button").addEventListener("click", () => this.predict());
    root.querySelector("#clear-button").addEventListener("click", () => this.clear());
    root.querySelector("#upload-input").addEventListener("change", (e) => this.upload(e.target.files[0]));
    this.kind = "digit";
    this.classNames = [...Array(10).keys()].map(String);
  }

  // What the model takes, from its dataset: asked once, when the run serves a model.
  async loadInput() {
    if (this.inputLoaded) return;
    this.inputLoaded = true;
    try {
      const response = await fetch(`/api/workflows/${encodeURIComponent(this.name)}/model-input`);
      if (response.ok) this.setInput(await response.json());
    } catch (error) {
      this.inputLoaded = false;
    }
  }

  setInput(input) {
    const names = input.class_names.join("\n");
    if (input.kind === this.kind && names === this.classNames.join("\n")) return;  // as drawn: keep the pad
    this.kind = input.kind;
    this.classNames = input.class_names;
    const r = this.root;
    const scores = r.querySelector("#scores");
    scores.innerHTML = scoreRows(this.classNames);
    const longest = Math.max(1, ...this.classNames.map((n) => n.length));
    scores.style.setProperty("--name-width", `${Math.min(120, 8 * longest + 4)}px`);
    r.querySelector(".pad:not(.upload):not(.features)").hidden = input.kind !== "digit";
    r.querySelector("#upload-pad").hidden = input.kind !== "image";
    const form = r.querySelector("#feature-form");
    form.hidden = input.kind !== "table";
    if (input.kind === "table") {
      form.innerHTML = [...Array(input.input_shape[0]).keys()].map((i) => `
        <label class="feature">feature ${i}<input type="number" step="any" value="0" data-feature="${i}"></label>`).join("");
    }
    r.querySelector(".seen").hidden = input.kind !== "digit";
    this.clear();
  }

  upload(file) {
    if (!file) return;
    const reader = new FileReader();
    reader.onload = () => {
      this.uploaded = reader.result;
      const preview = this.root.querySelector("#upload-preview");
      preview.src = reader.result;
      preview.hidden = false;
      if (this.available) this.predict();
    };
    reader.readAsDataURL(file);
  }

  request() {
    if (this.kind === "table") {
      return { features: [...this.root.querySelectorAll("#feature-form input")].map((i) => Number(i.value)) };
    }
    if (this.kind === "image") return { image: this.uploaded || "" };
    return { image: this.canvas.toDataURL("image/png") };
  }

  update(view) {
    const note = this.root.querySelector("#model-note");
    this.available = Boolean(view.model);
    note.innerHTML = view.model
      ? `model <b>${escapeHtml(view.model.name)}</b> v${escapeHtml(view.model.version ?? "?")}`
      : ["Pending", "Running"].includes(view.status) ? "no model served yet" : "this run serves no model";
    this.root.querySelector("#predict-button").disabled = !view.model;
    if (view.model) this.loadInput();
  }

  bindDrawing() {
    const c = this.canvas;
    let last = null;
    const point = (e) => {
      const r = c.getBoundingClientRect();
      return [(e.clientX - r.left) * (c.width / r.width), (e.clientY - r.top) * (c.height / r.height)];
    };
    c.addEventListener("pointerdown", (e) => {
      c.setPointerCapture(e.pointerId);
      last = point(e);
      this.stroke(last, last);
      this.root.querySelector("#pad-hint").hidden = true;
      this.drawn = true;
    });
    c.addEventListener("pointermove", (e) => {
      if (!last) return;
      const next = point(e);
      this.stroke(last, next);
      last = next;
    });
    const end = () => {
      if (!last) return;
      last = null;
      if (this.available) this.predict();
    };
    c.addEventListener("pointerup", end);
    c.addEventListener("pointercancel", end);
  }

  stroke(from, to) {
    const ctx = this.ctx;
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = BRUSH;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(...from);
    ctx.lineTo(...to);
    ctx.stroke();
  }

  clear() {
    this.ctx.fillStyle = "#000";
    this.ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    this.drawn = false;
    this.root.querySelector("#pad-hint").hidden = false;
    this.root.querySelector("#prediction").dataset.class = "";
    this.root.querySelector("#pred-digit").textContent = "–";
    this.root.querySelector("#pred-conf").textContent = { digit: "draw a digit", image: "upload an image", table: "fill in the features" }[this.kind] || "";
    this.root.querySelectorAll(".score-row").forEach((row) => {
      row.classList.remove("top");
      row.querySelector(".score-bar").style.width = "0%";
      row.querySelector(".score-value").textContent = "–";
    });
    const seen = this.root.querySelector("#model-input");
    seen.getContext("2d").clearRect(0, 0, seen.width, seen.height);
    this.showError("");
  }

  async predict() {
    if (this.busy) return;
    this.busy = true;
    this.root.querySelector("#prediction").classList.add("busy");
    try {
      const response = await fetch(`/api/workflows/${encodeURIComponent(this.name)}/predict`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(this.request()),
      });
      const body = await response.json();
      if (!response.ok) throw new Error(body.error || `the server answered ${response.status}`);
      this.show(body);
    } catch (error) {
      this.showError(error.message);
    } finally {
      this.busy = false;
      this.root.querySelector("#prediction").classList.remove("busy");
    }
  }

  show(result) {
    this.showError("");
    const best = result.class;
    this.root.querySelector("#prediction").dataset.class = String(best);
    this.root.querySelector("#pred-digit").textContent = this.classNames[best] ?? String(best);
    const total = result.scores.reduce((a, b) => a + b, 0) || 1;
    const probabilities = result.scores.map((s) => s / total);
    this.root.querySelector("#pred-conf").textContent = `${(probabilities[best] * 100).toFixed(1)}% confident`;
    this.root.querySelectorAll(".score-row").forEach((row, digit) => {
      row.classList.toggle("top", digit === best);
      row.querySelector(".score-bar").style.width = `${(probabilities[digit] * 100).toFixed(1)}%`;
      row.querySelector(".score-value").textContent = `${(probabilities[digit] * 100).toFixed(1)}%`;
    });
    if (result.input) this.drawInput(result.input, result.input_side || 28);
  }

  drawInput(pixels, side) {
    const seen = this.root.querySelector("#model-input");
    seen.width = seen.height = side;
    const ctx = seen.getContext("2d");
    const image = ctx.createImageData(side, side);
    pixels.forEach((v, i) => {
      const g = Math.round(v * 255);
      image.data.set([g, g, g, 255], i * 4);
    });
    ctx.putImageData(image, 0, 0);
  }

  showError(message) {
    const box = this.root.querySelector("#try-error");
    box.hidden = !message;
    box.textContent = message;
  }
}
