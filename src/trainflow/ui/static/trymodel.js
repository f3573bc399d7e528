// "Try the model": draw a digit, the UI server preprocesses it like MNIST and asks the served model.

import { escapeHtml } from "./format.js";

const BRUSH = 20;

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
        <div class="try-side">
          <div class="prediction" id="prediction" data-class="">
            <div class="pred-digit" id="pred-digit">–</div>
            <div><div class="pred-label">Prediction</div><div class="pred-conf" id="pred-conf">draw a digit 0–9</div></div>
            <div class="seen"><canvas id="model-input" width="28" height="28" title="What the model saw: 28×28, centred like MNIST"></canvas>
              <div class="seen-label">model input</div></div>
          </div>
          <div class="scores" id="scores">${[...Array(10).keys()].map((d) => `
            <div class="score-row" data-digit="${d}"><span class="score-digit">${d}</span>
              <span class="score-track"><span class="score-bar" style="width:0%"></span></span><span class="score-value">–</span></div>`).join("")}
          </div>
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
  }

  update(view) {
    const note = this.root.querySelector("#model-note");
    this.available = Boolean(view.model);
    note.innerHTML = view.model
      ? `model <b>${escapeHtml(view.model["model-name"])}</b> v${escapeHtml(view.model["model-version"] ?? "?")}`
      : ["Pending", "Running"].includes(view.status) ? "no model served yet" : "this run serves no model";
    this.root.querySelector("#predict-button").disabled = !view.model;
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
    this.root.querySelector("#pred-conf").textContent = "draw a digit 0–9";
    this.root.querySelectorAll(".score-row").forEach((row) => {
      row.classList.remove("top");
      row.querySelector(".score-bar").style.width = "0%";
      row.querySelector(".score-value").textContent = "–";
    });
    this.root.querySelector("#model-input").getContext("2d").clearRect(0, 0, 28, 28);
    this.showError("");
  }

  async predict() {
    if (this.busy) return;
    this.busy = true;
    this.root.querySelector("#prediction").classList.add("busy");
    try {
      const response = await fetch(`/api/workflows/${encodeURIComponent(this.name)}/predict`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ image: this.canvas.toDataURL("image/png") }),
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
    this.root.querySelector("#pred-digit").textContent = String(best);
    const total = result.scores.reduce((a, b) => a + b, 0) || 1;
    const probabilities = result.scores.map((s) => s / total);
    this.root.querySelector("#pred-conf").textContent = `${(probabilities[best] * 100).toFixed(1)}% confident`;
    this.root.querySelectorAll(".score-row").forEach((row, digit) => {
      row.classList.toggle("top", digit === best);
      row.querySelector(".score-bar").style.width = `${(probabilities[digit] * 100).toFixed(1)}%`;
      row.querySelector(".score-value").textContent = `${(probabilities[digit] * 100).toFixed(1)}%`;
    });
    this.drawInput(result.input);
  }

  drawInput(pixels) {
    const ctx = this.root.querySelector("#model-input").getContext("2d");
    const image = ctx.createImageData(28, 28);
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
