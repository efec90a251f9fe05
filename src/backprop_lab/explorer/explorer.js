// backprop-lab explorer: every cell of a run or grid learning, epoch by epoch.
// Everything it shows comes from the JSON block #bplab-data (see backprop_lab/explorer/).
// Values from the run (names, labels, notes) are set as text, never as markup.
"use strict";
(() => {
  const PAYLOAD = JSON.parse(document.getElementById("bplab-data").textContent);
  const ORANGE = [245, 147, 34];
  const BLUE = [8, 119, 189];
  const WHITE = [255, 255, 255];
  const UNIT_COLOURS = ["#7b3294", "#008837", "#c2a5cf", "#d95f02", "#1b9e77", "#e7298a", "#66a61e", "#a6761d"];
  const MAX_COMPARED = 4;

  // ------------------------------------------------------------------------------------------
  // Arrays: base64 of zlib-compressed, byte-shuffled little-endian floats (see data.py).

  function base64Bytes(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  async function inflate(bytes) {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  async function decodeArray(spec) {
    if (!spec) return null;
    const size = spec.dtype === "f8" ? 8 : 4;
    const planes = await inflate(base64Bytes(spec.zlib));
    const count = planes.length / size;
    const bytes = new Uint8Array(planes.length);
    for (let plane = 0; plane < size; plane++) {
      const offset = plane * count;
      for (let i = 0; i < count; i++) bytes[i * size + plane] = planes[offset + i];
    }
    if (spec.delta) {
      // Each number's bits were stored as the difference from the previous one along the last axis.
      const bits = new Uint32Array(bytes.buffer);
      const last = spec.shape[spec.shape.length - 1];
      for (let row = 0; row < bits.length; row += last) {
        for (let k = 1; k < last; k++) bits[row + k] = bits[row + k] + bits[row + k - 1];
      }
    }
    return size === 8 ? new Float64Array(bytes.buffer) : new Float32Array(bytes.buffer);
  }

  // ------------------------------------------------------------------------------------------
  // The forward pass: the engine's activations (backprop_lab/core/activations.py), in float64.

  const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
  const ACTIVATIONS = {
    threshold: (z, theta) => (z > theta ? 1 : 0),
    sigmoid: (z) => 1 / (1 + Math.exp(-z)),
    tanh: (z) => Math.tanh(z),
    relu: (z) => (z > 0 ? z : 0),
    linear: (z) => z,
    leaky_relu: (z) => (z >= 0 ? z : 0.01 * z),
    elu: (z) => (z > 0 ? z : Math.expm1(z)),
    softplus: (z) => Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z))),
    // JAX's default gelu is the tanh approximation.
    gelu: (z) => 0.5 * z * (1 + Math.tanh(SQRT_2_OVER_PI * (z + 0.044715 * z * z * z))),
    swish: (z) => z / (1 + Math.exp(-z)),
    hard_sigmoid: (z) => Math.min(1, Math.max(0, z / 6 + 0.5)),
  };
  // Layer-wise activations map a whole layer's net inputs to its outputs: softmax turns them
  // into class probabilities, e^(z_k - max z) / sum_j e^(z_j - max z), as jax.nn.softmax does.
  const LAYERWISE = {
    softmax: (z) => {
      const top = Math.max(...z);
      const out = z.map((value) => Math.exp(value - top));
      const total = out.reduce((a, b) => a + b, 0);
      return out.map((value) => value / total);
    },
  };
  // Activations whose output lies in [0, 1]: drawn as is; the others are squashed to fit.
  const UNIT_RANGE = new Set(["threshold", "sigmoid", "hard_sigmoid", "softmax"]);

  function activation(name) {
    const f = ACTIVATIONS[name] || LAYERWISE[name];
    if (!f) throw new Error("unknown activation " + name);
    return f;
  }

  // The parameters of one cell at one snapshot, or null when the page has none for it.
  function network(job, cell, snapshot) {
    const row = job.paramRow[cell];
    if (row < 0 || !job.params || snapshot < 0 || snapshot >= job.snapshotCount) return null;
    const count = job.snapshotCount;
    const base = row * job.parameterCount * count;
    const read = (p) => job.params[base + p * count + snapshot];
    const layers = [];
    let p = 0;
    for (let l = 0; l + 1 < job.layers.length; l++) {
      const inputs = job.layers[l];
      const units = job.layers[l + 1];
      const weights = new Float64Array(units * inputs);
      for (let i = 0; i < weights.length; i++) weights[i] = read(p++);
      let biases = null;
      if (job.use_bias) {
        biases = new Float64Array(units);
        for (let j = 0; j < units; j++) biases[j] = read(p++);
      }
      layers.push({ inputs, units, weights, biases });
    }
    return {
      layers,
      hidden: activation(job.hidden_activation),
      output: activation(job.output_activation),
      outputLayerwise: job.output_activation in LAYERWISE,
      theta: job.theta,
    };
  }

  // Every layer's outputs for one input (z = W x + b, then the layer's activation: unit by
  // unit, or on the whole layer for softmax).
  function trace(net, input) {
    const outputs = [];
    let signal = input;
    net.layers.forEach((layer, index) => {
      const last = index === net.layers.length - 1;
      const act = last ? net.output : net.hidden;
      const z = new Float64Array(layer.units);
      for (let j = 0; j < layer.units; j++) {
        let sum = 0;
        const row = j * layer.inputs;
        for (let i = 0; i < layer.inputs; i++) sum += layer.weights[row + i] * signal[i];
        if (layer.biases) sum += layer.biases[j];
        z[j] = sum;
      }
      const out = last && net.outputLayerwise ? act(z) : z.map((value) => act(value, net.theta));
      outputs.push(out);
      signal = out;
    });
    return outputs;
  }

  // ------------------------------------------------------------------------------------------
  // Classes (softmax networks): the confusion matrix of the page's evaluation samples.

  function argmax(values) {
    let best = 0;
    for (let k = 1; k < values.length; k++) if (values[k] > values[best]) best = k;
    return best;
  }

  // counts[true][predicted] and each class's accuracy (NaN for a class with no samples).
  function confusion(job, net) {
    const classes = job.classes;
    const k = classes.names.length;
    const features = job.layers[0];
    const counts = Array.from({ length: k }, () => new Array(k).fill(0));
    const input = new Float64Array(features);
    classes.labels.forEach((label, n) => {
      for (let i = 0; i < features; i++) input[i] = classes.x[n * features + i];
      counts[label][argmax(forward(net, input))] += 1;
    });
    const accuracy = counts.map((row, c) => {
      const total = row.reduce((a, b) => a + b, 0);
      return total ? row[c] / total : NaN;
    });
    const right = counts.reduce((sum, row, c) => sum + row[c], 0);
    return { counts, accuracy, overall: right / classes.labels.length };
  }

  function forward(net, input) {
    const outputs = trace(net, input);
    return outputs[outputs.length - 1];
  }

  // ------------------------------------------------------------------------------------------
  // State

  const state = { job: 0, cell: 0, mode: "single", compared: [], step: 0, output: 0, timer: null };
  let jobs = [];
  const ui = {};

  function snapshotAt(job, epoch) {
    let found = 0;
    job.snapshot_epochs.forEach((e, k) => {
      if (e <= epoch) found = k;
    });
    return found;
  }

  // What is shown: one cell, or the compared cells, each as {job, cell}.
  function shown() {
    if (state.mode === "compare" && state.compared.length) return state.compared;
    return [{ job: state.job, cell: state.cell }];
  }

  // The epochs the slider walks through: every snapshot epoch of the shown cells' jobs.
  function timeline() {
    const epochs = new Set();
    shown().forEach((item) => jobs[item.job].snapshot_epochs.forEach((e) => epochs.add(e)));
    if (!epochs.size) shown().forEach((item) => epochs.add(jobs[item.job].epochs));
    return Array.from(epochs).sort((a, b) => a - b);
  }

  function currentEpoch() {
    const epochs = timeline();
    return epochs[Math.min(state.step, epochs.length - 1)];
  }

  // Keep the epoch when the timeline changes (another cell, another job, comparing).
  function keepEpoch(change) {
    const epoch = currentEpoch();
    change();
    const epochs = timeline();
    let step = 0;
    epochs.forEach((e, k) => {
      if (e <= epoch) step = k;
    });
    state.step = step;
  }

  // ------------------------------------------------------------------------------------------
  // Small DOM helpers (text only)

  function element(tag, attributes, ...children) {
    const node = document.createElement(tag);
    Object.entries(attributes || {}).forEach(([key, value]) => {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    });
    children.forEach((child) => node.append(child));
    return node;
  }

  function canvas(width, height, className) {
    const node = element("canvas", { class: className, width: String(width), height: String(height) });
    return node;
  }

  function fmt(value, digits = 4) {
    if (value === null || value === undefined || !Number.isFinite(value)) return "—";
    if (value !== 0 && (Math.abs(value) < 1e-3 || Math.abs(value) >= 1e5)) return value.toExponential(2);
    return value.toFixed(digits);
  }

  function fmtRate(rate) {
    return rate === null ? "—" : Number(rate.toPrecision(3)).toString();
  }

  function percent(value) {
    return value === null || !Number.isFinite(value) ? "—" : Math.round(100 * value) + "%";
  }

  function cellName(job, cell) {
    const seeds = job.seeds.length;
    const rate = job.learning_rates[Math.floor(cell / seeds)];
    return "lr " + fmtRate(rate) + ", seed " + job.seeds[cell % seeds];
  }

  function verdict(job, cell) {
    if (job.diverged_epoch[cell]) return "diverged at epoch " + job.diverged_epoch[cell];
    return job.solved[cell] ? "solved" : "not solved";
  }

  // ------------------------------------------------------------------------------------------
  // Colours

  function mix(a, b, t) {
    return [0, 1, 2].map((i) => Math.round(a[i] + (b[i] - a[i]) * t));
  }

  // A unit's output in [0, 1]: orange (0), white (1/2), blue (1), as in TensorFlow Playground.
  function outputColour(t) {
    if (!Number.isFinite(t)) return [200, 200, 200];
    const v = Math.min(1, Math.max(0, t));
    return v < 0.5 ? mix(ORANGE, WHITE, v * 2) : mix(WHITE, BLUE, (v - 0.5) * 2);
  }

  const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  function lossColour(t) {
    const v = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
    const i = Math.min(VIRIDIS.length - 2, Math.floor(v));
    return mix(VIRIDIS[i], VIRIDIS[i + 1], v - i);
  }

  function css(rgb) {
    return "rgb(" + rgb.join(",") + ")";
  }

  // ------------------------------------------------------------------------------------------
  // The cells overview: learning rates (rows) x seeds (columns), coloured by final loss.

  function lossScale(job) {
    const logs = job.final_loss.filter((v) => v !== null && v > 0).map(Math.log10);
    if (!logs.length) return { low: -4, high: 0 };
    const low = Math.min(...logs);
    const high = Math.max(...logs);
    return { low, high: high > low ? high : low + 1 };
  }

  function cellGeometry(job) {
    const seeds = job.seeds.length;
    const rates = job.learning_rates.length;
    const size = Math.max(4, Math.min(26, Math.floor(300 / seeds), Math.floor(360 / rates)));
    return { size, left: 52, top: 4, seeds, rates };
  }

  function drawCells() {
    const job = jobs[state.job];
    const g = cellGeometry(job);
    const node = ui.cells;
    node.width = g.left + g.seeds * g.size + 4;
    node.height = g.top + g.rates * g.size + 4;
    const context = node.getContext("2d");
    context.clearRect(0, 0, node.width, node.height);
    const scale = lossScale(job);
    context.font = "10px system-ui, sans-serif";
    context.textAlign = "right";
    context.textBaseline = "middle";
    const labelEvery = Math.max(1, Math.ceil(11 / g.size));
    for (let r = 0; r < g.rates; r++) {
      if (r % labelEvery === 0 || r === g.rates - 1) {
        context.fillStyle = "#444";
        context.fillText(fmtRate(job.learning_rates[r]), g.left - 4, g.top + (r + 0.5) * g.size);
      }
      for (let s = 0; s < g.seeds; s++) {
        const cell = r * g.seeds + s;
        const x = g.left + s * g.size;
        const y = g.top + r * g.size;
        const loss = job.final_loss[cell];
        if (job.diverged_epoch[cell] || loss === null) {
          context.fillStyle = "#111";
          context.fillRect(x, y, g.size - 1, g.size - 1);
          context.strokeStyle = "#e33";
          context.lineWidth = 1;
          context.beginPath();
          context.moveTo(x + 1, y + 1);
          context.lineTo(x + g.size - 2, y + g.size - 2);
          context.stroke();
        } else {
          const t = loss > 0 ? (Math.log10(loss) - scale.low) / (scale.high - scale.low) : 0;
          context.fillStyle = css(lossColour(1 - t));
          context.fillRect(x, y, g.size - 1, g.size - 1);
        }
        if (job.solved[cell] && g.size >= 6) {
          context.fillStyle = "#111";
          context.beginPath();
          context.arc(x + g.size / 2 - 0.5, y + g.size / 2 - 0.5, Math.max(1, g.size / 7), 0, 2 * Math.PI);
          context.fill();
        }
        if (job.paramRow[cell] < 0) {
          context.fillStyle = "rgba(255,255,255,0.55)";
          context.fillRect(x, y, g.size - 1, g.size - 1);
        }
      }
    }
    const outline = (cell, colour, width, label) => {
      const x = g.left + (cell % g.seeds) * g.size;
      const y = g.top + Math.floor(cell / g.seeds) * g.size;
      context.strokeStyle = colour;
      context.lineWidth = width;
      context.strokeRect(x - 0.5, y - 0.5, g.size, g.size);
      if (label && g.size >= 10) {
        context.fillStyle = colour;
        context.textAlign = "center";
        context.fillText(label, x + g.size / 2, y + g.size / 2);
        context.textAlign = "right";
      }
    };
    if (state.mode === "compare") {
      state.compared.forEach((item, index) => {
        if (item.job === state.job) outline(item.cell, "#e33", 2, String(index + 1));
      });
    } else {
      outline(state.cell, "#e33", 2, "");
    }
    ui.legendLow.textContent = "final loss " + fmt(Math.pow(10, scale.low));
    ui.legendHigh.textContent = fmt(Math.pow(10, scale.high));
  }

  function cellAt(event) {
    const job = jobs[state.job];
    const g = cellGeometry(job);
    const box = ui.cells.getBoundingClientRect();
    const x = (event.clientX - box.left) * (ui.cells.width / box.width) - g.left;
    const y = (event.clientY - box.top) * (ui.cells.height / box.height) - g.top;
    const s = Math.floor(x / g.size);
    const r = Math.floor(y / g.size);
    if (s < 0 || r < 0 || s >= g.seeds || r >= g.rates) return -1;
    return r * g.seeds + s;
  }

  function describeCell(jobIndex, cell) {
    const job = jobs[jobIndex];
    const accuracy = job.final_accuracy[cell];
    return (
      cellName(job, cell) + ": final loss " + fmt(job.final_loss[cell]) + ", accuracy " + percent(accuracy) + ", " +
      verdict(job, cell) + (job.paramRow[cell] < 0 ? " (curves only in this page)" : "")
    );
  }

  // ------------------------------------------------------------------------------------------
  // The input plane (2-D inputs): the output recomputed from the snapshot's weights.

  function planeBox(job) {
    if (job.planeBox) return job.planeBox;
    let low = [Infinity, Infinity];
    let high = [-Infinity, -Infinity];
    ["train", "test"].forEach((split) => {
      const points = job.points[split];
      if (!points) return;
      for (let i = 0; i < points.n; i++) {
        for (let d = 0; d < 2; d++) {
          low[d] = Math.min(low[d], points.x[2 * i + d]);
          high[d] = Math.max(high[d], points.x[2 * i + d]);
        }
      }
    });
    if (!Number.isFinite(low[0])) {
      low = [-1, -1];
      high = [1, 1];
    }
    // As plots.decision_boundary: the data's extent and half a unit more; square, so that
    // lines keep their angles.
    const centre = [(low[0] + high[0]) / 2, (low[1] + high[1]) / 2];
    const half = Math.max(high[0] - low[0], high[1] - low[1]) / 2 + 0.5;
    job.planeBox = { x0: centre[0] - half, x1: centre[0] + half, y0: centre[1] - half, y1: centre[1] + half };
    return job.planeBox;
  }

  // Values of unit `unit` of layer `layer` (-1: the inputs) on a res x res grid of the plane.
  function unitMaps(job, net, res) {
    const box = planeBox(job);
    const maps = net.layers.map((layer) => Array.from({ length: layer.units }, () => new Float64Array(res * res)));
    const input = new Float64Array(2);
    for (let row = 0; row < res; row++) {
      input[1] = box.y1 - ((row + 0.5) / res) * (box.y1 - box.y0);
      for (let col = 0; col < res; col++) {
        input[0] = box.x0 + ((col + 0.5) / res) * (box.x1 - box.x0);
        const outputs = trace(net, input);
        for (let l = 0; l < outputs.length; l++) {
          for (let j = 0; j < outputs[l].length; j++) maps[l][j][row * res + col] = outputs[l][j];
        }
      }
    }
    return maps;
  }

  function mapImage(values, res, squash) {
    const image = new ImageData(res, res);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      const rgb = outputColour(squash ? 0.5 + 0.5 * Math.tanh(v) : v);
      image.data.set([rgb[0], rgb[1], rgb[2], 255], 4 * i);
    }
    return image;
  }

  function paintImage(context, image, x, y, width, height) {
    const buffer = document.createElement("canvas");
    buffer.width = image.width;
    buffer.height = image.height;
    buffer.getContext("2d").putImageData(image, 0, 0);
    context.imageSmoothingEnabled = true;
    context.drawImage(buffer, x, y, width, height);
  }

  function drawPlane(node, job, net, res) {
    const context = node.getContext("2d");
    const size = node.width;
    context.clearRect(0, 0, size, size);
    const box = planeBox(job);
    const toX = (x) => ((x - box.x0) / (box.x1 - box.x0)) * size;
    const toY = (y) => ((box.y1 - y) / (box.y1 - box.y0)) * size;
    if (net) {
      const maps = unitMaps(job, net, res);
      const output = maps[maps.length - 1][Math.min(state.output, maps[maps.length - 1].length - 1)];
      const image = mapImage(output, res, !UNIT_RANGE.has(job.output_activation));
      paintImage(context, image, 0, 0, size, size);
      drawBoundary(context, output, res, size);
      drawUnitLines(context, job, net, toX, toY, box);
    } else {
      context.fillStyle = "#eee";
      context.fillRect(0, 0, size, size);
      context.fillStyle = "#666";
      context.font = "12px system-ui, sans-serif";
      context.textAlign = "center";
      context.fillText("no snapshot of this cell in this page", size / 2, size / 2);
    }
    // Training points ringed in white, test points in black; few points are drawn larger.
    ["train", "test"].forEach((split) => {
      const points = job.points[split];
      if (!points) return;
      const radius = points.n <= 50 ? 5.5 : 3.5;
      for (let i = 0; i < points.n; i++) {
        const target = points.y[i * points.targets + Math.min(state.output, points.targets - 1)];
        const x = toX(points.x[2 * i]);
        const y = toY(points.x[2 * i + 1]);
        context.beginPath();
        context.arc(x, y, radius, 0, 2 * Math.PI);
        context.fillStyle = css(target >= 0.5 ? BLUE : ORANGE);
        context.fill();
        context.lineWidth = 1.5;
        context.strokeStyle = split === "train" ? "#fff" : "#000";
        context.stroke();
        if (split === "train") {
          context.beginPath();
          context.arc(x, y, radius + 1.2, 0, 2 * Math.PI);
          context.lineWidth = 0.8;
          context.strokeStyle = "rgba(0,0,0,0.55)";
          context.stroke();
        }
      }
    });
  }

  // The decision boundary, where the output crosses 1/2, by marching squares over the grid of
  // values (sampled at the centres of a res x res grid).
  function drawBoundary(context, values, res, size) {
    const at = (row, col) => values[row * res + col] - 0.5;
    const px = (col) => ((col + 0.5) / res) * size;
    context.save();
    context.strokeStyle = "#222";
    context.lineWidth = 2;
    context.beginPath();
    for (let row = 0; row + 1 < res; row++) {
      for (let col = 0; col + 1 < res; col++) {
        const corners = [[row, col], [row, col + 1], [row + 1, col + 1], [row + 1, col]];
        const crossings = [];
        for (let e = 0; e < 4; e++) {
          const [r0, c0] = corners[e];
          const [r1, c1] = corners[(e + 1) % 4];
          const a = at(r0, c0);
          const b = at(r1, c1);
          if (!Number.isFinite(a) || !Number.isFinite(b) || a > 0 === b > 0) continue;
          const t = a / (a - b);
          crossings.push([px(c0 + (c1 - c0) * t), px(r0 + (r1 - r0) * t)]);
        }
        for (let k = 0; k + 1 < crossings.length; k += 2) {
          context.moveTo(crossings[k][0], crossings[k][1]);
          context.lineTo(crossings[k + 1][0], crossings[k + 1][1]);
        }
      }
    }
    context.stroke();
    context.restore();
  }

  // Each first-layer unit's line w1*x1 + w2*x2 + b = theta (0 for smooth units: sigmoid(0) = 1/2).
  function drawUnitLines(context, job, net, toX, toY, box) {
    if (net.layers.length < 2) return;
    const first = net.layers[0];
    const level = job.hidden_activation === "threshold" ? job.theta : 0;
    context.save();
    context.setLineDash([5, 4]);
    context.lineWidth = 1.5;
    for (let j = 0; j < first.units && j < UNIT_COLOURS.length * 2; j++) {
      const w1 = first.weights[2 * j];
      const w2 = first.weights[2 * j + 1];
      const b = first.biases ? first.biases[j] : 0;
      if (!Number.isFinite(w1 + w2 + b)) continue;
      let points;
      if (Math.abs(w2) >= Math.abs(w1) && Math.abs(w2) > 1e-12) {
        points = [box.x0, box.x1].map((x) => [x, (level - b - w1 * x) / w2]);
      } else if (Math.abs(w1) > 1e-12) {
        points = [box.y0, box.y1].map((y) => [(level - b - w2 * y) / w1, y]);
      } else continue;
      context.strokeStyle = UNIT_COLOURS[j % UNIT_COLOURS.length];
      context.beginPath();
      context.moveTo(toX(points[0][0]), toY(points[0][1]));
      context.lineTo(toX(points[1][0]), toY(points[1][1]));
      context.stroke();
    }
    context.restore();
  }

  // ------------------------------------------------------------------------------------------
  // The network diagram: each weight by sign (blue +, orange -) and size; for 2-D inputs each
  // unit is its own small map of the plane, as Playground's neuron thumbnails.

  function drawDiagram(node, job, net) {
    const context = node.getContext("2d");
    const width = node.width;
    const height = node.height;
    context.clearRect(0, 0, width, height);
    const sizes = job.layers;
    const most = Math.max(...sizes);
    // Units at most 34 pixels, 4 apart; a wide layer packs them closer to fit the height.
    const pitch = Math.min(38, (height - 16) / most);
    const node_ = Math.max(2, Math.min(34, pitch >= 8 ? pitch - 4 : pitch - 1));
    const columnX = (l) => 8 + (l * (width - 16 - node_)) / (sizes.length - 1);
    const rowY = (l, j) => (height - sizes[l] * pitch) / 2 + j * pitch + (pitch - node_) / 2;
    if (!net) {
      context.fillStyle = "#666";
      context.font = "12px system-ui, sans-serif";
      context.fillText("no snapshot of this cell in this page", 8, height / 2);
      return;
    }
    let largest = 1e-12;
    net.layers.forEach((layer) => layer.weights.forEach((w) => (largest = Math.max(largest, Math.abs(w) || 0))));
    net.layers.forEach((layer, l) => {
      for (let j = 0; j < layer.units; j++) {
        for (let i = 0; i < layer.inputs; i++) {
          const w = layer.weights[j * layer.inputs + i];
          const strength = Number.isFinite(w) ? Math.abs(w) / largest : 0;
          context.strokeStyle = css(w >= 0 ? BLUE : ORANGE);
          context.globalAlpha = 0.25 + 0.75 * strength;
          context.lineWidth = 0.5 + 5 * strength;
          context.beginPath();
          context.moveTo(columnX(l) + node_, rowY(l, i) + node_ / 2);
          context.lineTo(columnX(l + 1), rowY(l + 1, j) + node_ / 2);
          context.stroke();
        }
      }
    });
    context.globalAlpha = 1;
    const plane = job.points !== null && sizes[0] === 2;
    const res = 20;
    const maps = plane ? unitMaps(job, net, res) : null;
    for (let l = 0; l < sizes.length; l++) {
      for (let j = 0; j < sizes[l]; j++) {
        const x = columnX(l);
        const y = rowY(l, j);
        if (plane && node_ >= 10) {
          let values;
          let squash = true;
          if (l === 0) {
            values = new Float64Array(res * res);
            const box = planeBox(job);
            for (let row = 0; row < res; row++) {
              for (let col = 0; col < res; col++) {
                const value = j === 0 ? box.x0 + ((col + 0.5) / res) * (box.x1 - box.x0) : box.y1 - ((row + 0.5) / res) * (box.y1 - box.y0);
                values[row * res + col] = value;
              }
            }
          } else {
            values = maps[l - 1][j];
            const name = l === sizes.length - 1 ? job.output_activation : job.hidden_activation;
            squash = !UNIT_RANGE.has(name);
          }
          paintImage(context, mapImage(values, res, squash), x, y, node_, node_);
        } else {
          context.fillStyle = "#f4f4f4";
          context.fillRect(x, y, node_, node_);
        }
        // The bias: the frame's colour (sign) and thickness (size).
        const layer = l > 0 ? net.layers[l - 1] : null;
        const bias = layer && layer.biases ? layer.biases[j] : 0;
        context.lineWidth = layer && layer.biases ? 1 + Math.min(3, (3 * Math.abs(bias)) / largest) : 1;
        context.strokeStyle = layer && layer.biases ? css(bias >= 0 ? BLUE : ORANGE) : "#555";
        context.strokeRect(x, y, node_, node_);
      }
    }
  }

  // ------------------------------------------------------------------------------------------
  // Curves: loss (top) and accuracy (bottom) against epochs, with a marker at the epoch shown.

  function drawCurves(node, job, cell, epoch) {
    const context = node.getContext("2d");
    const width = node.width;
    const height = node.height;
    context.clearRect(0, 0, width, height);
    const left = 50;
    const right = width - 10;
    const epochs = job.curve_epochs;
    const logX = job.epochs > 50;
    const xOf = (e) => {
      const last = logX ? Math.log10(1 + job.epochs) : job.epochs;
      const value = logX ? Math.log10(1 + e) : e;
      return left + ((right - left) * value) / (last || 1);
    };
    const points = epochs.length;
    const series = (name) => (job.curves[name] ? job.curves[name].subarray(cell * points, (cell + 1) * points) : null);
    const panels = [
      { names: ["loss", "test_loss"], top: 6, bottom: Math.round(height * 0.6) - 12, label: "loss" },
      { names: ["accuracy", "test_accuracy"], top: Math.round(height * 0.6), bottom: height - 20, label: "accuracy", fixed: [0, 1] },
    ];
    context.font = "10px system-ui, sans-serif";
    panels.forEach((panel) => {
      const values = panel.names.map(series);
      const finite = [];
      values.forEach((v) => v && v.forEach((x) => Number.isFinite(x) && finite.push(x)));
      if (!finite.length) return;
      let low = panel.fixed ? panel.fixed[0] : Math.min(...finite);
      let high = panel.fixed ? panel.fixed[1] : Math.max(...finite);
      const logY = !panel.fixed && low > 0;
      if (logY) {
        low = Math.log10(low);
        high = Math.log10(high);
      }
      if (high - low < 1e-12) {
        high += 0.5;
        low -= 0.5;
      }
      const yOf = (v) => {
        const value = logY ? Math.log10(v) : v;
        return panel.bottom - ((panel.bottom - panel.top) * (value - low)) / (high - low);
      };
      context.strokeStyle = "#ddd";
      context.lineWidth = 1;
      context.strokeRect(left, panel.top, right - left, panel.bottom - panel.top);
      context.fillStyle = "#444";
      context.textAlign = "right";
      context.textBaseline = "middle";
      const label = (v) => (logY ? fmt(Math.pow(10, v), 3) : fmt(v, 2));
      context.fillText(label(high), left - 4, panel.top + 5);
      context.fillText(label(low), left - 4, panel.bottom - 5);
      context.save();
      context.translate(10, (panel.top + panel.bottom) / 2);
      context.rotate(-Math.PI / 2);
      context.textAlign = "center";
      context.fillText(panel.label, 0, 0);
      context.restore();
      values.forEach((v, index) => {
        if (!v) return;
        context.strokeStyle = panel.label === "loss" ? "#1f4e9c" : "#2b8a3e";
        context.setLineDash(index ? [4, 3] : []);
        context.lineWidth = 1.5;
        context.beginPath();
        let drawing = false;
        for (let k = 0; k < points; k++) {
          const value = v[k];
          if (!Number.isFinite(value) || (logY && value <= 0)) {
            drawing = false;
            continue;
          }
          const x = xOf(epochs[k]);
          const y = yOf(value);
          if (drawing) context.lineTo(x, y);
          else context.moveTo(x, y);
          drawing = true;
        }
        context.stroke();
        context.setLineDash([]);
        const at = epochs.indexOf(epoch);
        if (at >= 0 && Number.isFinite(v[at]) && (!logY || v[at] > 0)) {
          context.fillStyle = "#d62728";
          context.beginPath();
          context.arc(xOf(epoch), yOf(v[at]), 3.5, 0, 2 * Math.PI);
          context.fill();
        }
      });
    });
    context.strokeStyle = "#d62728";
    context.lineWidth = 1.5;
    context.beginPath();
    context.moveTo(xOf(epoch), 4);
    context.lineTo(xOf(epoch), height - 18);
    context.stroke();
    context.fillStyle = "#444";
    context.textAlign = "center";
    context.textBaseline = "alphabetic";
    const ticks = logX ? [0, 10, 100, 1000, 10000, 100000, 1000000] : [0, Math.round(job.epochs / 2)];
    const shownTicks = Array.from(new Set(ticks.filter((e) => e < job.epochs * 0.7).concat([job.epochs])));
    shownTicks.forEach((e) => {
      context.textAlign = e === job.epochs ? "right" : e === 0 ? "left" : "center";
      context.fillText(String(e), e === job.epochs ? right : xOf(e), height - 6);
    });
    context.textAlign = "left";
    context.fillText("epoch", 4, height - 6);
  }

  // ------------------------------------------------------------------------------------------
  // Panels: one per shown cell.

  function curveValue(job, cell, name, epoch) {
    const values = job.curves[name];
    const at = job.curve_epochs.indexOf(epoch);
    if (!values || at < 0) return null;
    const value = values[cell * job.curve_epochs.length + at];
    return Number.isFinite(value) ? value : null;
  }

  function buildPanels() {
    ui.views.textContent = "";
    ui.panels = shown().map((item, index) => {
      const job = jobs[item.job];
      const compact = state.mode === "compare";
      const plane = job.points !== null && job.layers[0] === 2;
      const panel = element("section", { class: "panel" + (compact ? " compact" : "") });
      const title = element("h3", { text: (compact ? index + 1 + ". " : "") + (jobs.length > 1 ? job.label + " · " : "") + cellName(job, item.cell) });
      const status = element("p", { class: "status" });
      const row = element("div", { class: "row" });
      const size = compact ? 200 : 300;
      const planeCanvas = plane ? canvas(size, size, "plane") : null;
      if (planeCanvas) row.append(planeCanvas);
      const diagram = canvas(compact ? 200 : 320, size, "diagram");
      row.append(diagram);
      const classesCanvas = job.classes ? canvas(size, size, "classes") : null;
      if (classesCanvas) row.append(classesCanvas);
      const curves = canvas(compact ? 410 : 630, compact ? 150 : 190, "curves");
      panel.append(title, status, row, curves);
      ui.views.append(panel);
      return { item, status, plane: planeCanvas, diagram, classes: classesCanvas, curves, epoch: null, snapshot: null };
    });
  }

  function drawPanels() {
    const epoch = currentEpoch();
    ui.panels.forEach((panel) => {
      const job = jobs[panel.item.job];
      const cell = panel.item.cell;
      const snapshot = snapshotAt(job, epoch);
      const shownEpoch = job.snapshot_epochs.length ? job.snapshot_epochs[snapshot] : job.epochs;
      const net = network(job, cell, snapshot);
      panel.epoch = shownEpoch;
      panel.snapshot = snapshot;
      const loss = curveValue(job, cell, "loss", shownEpoch);
      const accuracy = curveValue(job, cell, "accuracy", shownEpoch);
      const testLoss = curveValue(job, cell, "test_loss", shownEpoch);
      panel.status.textContent =
        "epoch " + shownEpoch + ": loss " + fmt(loss) + (testLoss !== null ? " (test " + fmt(testLoss) + ")" : "") +
        ", accuracy " + percent(accuracy) + " · " + verdict(job, cell);
      if (panel.plane) drawPlane(panel.plane, job, net, state.mode === "compare" ? 56 : 72);
      drawDiagram(panel.diagram, job, net);
      if (panel.classes) drawClasses(panel.classes, job, net);
      drawCurves(panel.curves, job, cell, shownEpoch);
    });
  }

  // The confusion matrix (true classes down, predicted across, shaded by each row's share)
  // and, under it, each class's accuracy, recomputed from the snapshot's weights.
  function drawClasses(node, job, net) {
    const context = node.getContext("2d");
    const size = node.width;
    context.clearRect(0, 0, size, node.height);
    context.font = "10px system-ui, sans-serif";
    context.fillStyle = "#444";
    if (!net) {
      context.fillText("no snapshot of this cell in this page", 8, size / 2);
      return;
    }
    const found = confusion(job, net);
    const names = job.classes.names;
    const k = names.length;
    const left = 34;
    const top = 16;
    const barsHeight = 46;
    const cellSize = Math.max(2, Math.min((size - left - 4) / k, (node.height - top - barsHeight - 30) / k));
    context.textAlign = "left";
    context.textBaseline = "alphabetic";
    context.fillText(job.classes.split + " split: accuracy " + percent(found.overall) + " (rows: true class)", 0, 10);
    for (let r = 0; r < k; r++) {
      const total = found.counts[r].reduce((a, b) => a + b, 0) || 1;
      for (let c = 0; c < k; c++) {
        const share = found.counts[r][c] / total;
        context.fillStyle = css(mix(WHITE, r === c ? BLUE : ORANGE, Math.min(1, share * (r === c ? 1 : 3))));
        context.fillRect(left + c * cellSize, top + r * cellSize, cellSize - 1, cellSize - 1);
        if (cellSize >= 16 && found.counts[r][c]) {
          context.fillStyle = share > 0.6 ? "#fff" : "#222";
          context.textAlign = "center";
          context.textBaseline = "middle";
          context.fillText(String(found.counts[r][c]), left + (c + 0.5) * cellSize, top + (r + 0.5) * cellSize);
        }
      }
      context.fillStyle = "#444";
      context.textAlign = "right";
      context.textBaseline = "middle";
      context.fillText(names[r].slice(0, 5), left - 3, top + (r + 0.5) * cellSize);
    }
    const barsTop = top + k * cellSize + 8;
    context.textAlign = "left";
    context.textBaseline = "alphabetic";
    context.fillText("accuracy per class", 0, barsTop + 8);
    found.accuracy.forEach((value, c) => {
      const height = Number.isFinite(value) ? value * barsHeight : 0;
      context.fillStyle = "#2b8a3e";
      context.fillRect(left + c * cellSize, barsTop + 12 + barsHeight - height, Math.max(1, cellSize - 1), height);
      if (cellSize >= 10) {
        context.fillStyle = "#444";
        context.textAlign = "center";
        context.fillText(names[c].slice(0, 3), left + (c + 0.5) * cellSize, barsTop + barsHeight + 24);
      }
    });
  }

  // ------------------------------------------------------------------------------------------
  // Controls

  function syncControls() {
    const epochs = timeline();
    state.step = Math.max(0, Math.min(state.step, epochs.length - 1));
    ui.slider.max = String(epochs.length - 1);
    ui.slider.value = String(state.step);
    ui.epoch.textContent = "epoch " + epochs[state.step] + " of " + Math.max(...shown().map((item) => jobs[item.job].epochs));
    ui.play.textContent = state.timer ? "❚❚ Pause" : "▶ Play";
    ui.modeSingle.classList.toggle("active", state.mode === "single");
    ui.modeCompare.classList.toggle("active", state.mode === "compare");
    ui.jobSelect.value = String(state.job);
    const outputs = Math.max(...shown().map((item) => jobs[item.job].layers.at(-1)));
    ui.outputBox.hidden = outputs < 2;
    ui.compareList.textContent = "";
    state.compared.forEach((item, index) => {
      const job = jobs[item.job];
      const chip = element("button", { class: "chip", type: "button", text: index + 1 + ". " + (jobs.length > 1 ? job.label + " · " : "") + cellName(job, item.cell) + " ×" });
      chip.addEventListener("click", () => {
        keepEpoch(() => state.compared.splice(index, 1));
        render(true);
      });
      ui.compareList.append(chip);
    });
    ui.compareHint.textContent =
      state.mode === "compare"
        ? state.compared.length
          ? "Click cells to add or remove them (up to 4), from any job."
          : "Click 2–4 cells, from any job, or use a button below."
        : "Click a cell to open it.";
    const job = jobs[state.job];
    ui.jobNotes.textContent = "";
    job.notes.forEach((note) => ui.jobNotes.append(element("li", { text: note })));
  }

  function render(rebuild) {
    if (rebuild) buildPanels();
    syncControls();
    drawCells();
    drawPanels();
  }

  function selectJob(index) {
    if (!(index >= 0 && index < jobs.length)) throw new Error("no job " + index);
    keepEpoch(() => {
      state.job = index;
      state.cell = defaultCell(jobs[index]);
    });
    render(true);
  }

  function selectCell(cell) {
    const job = jobs[state.job];
    if (!(cell >= 0 && cell < job.cells)) throw new Error("no cell " + cell);
    keepEpoch(() => {
      state.mode = "single";
      state.cell = cell;
    });
    render(true);
  }

  function toggleCompared(jobIndex, cell) {
    keepEpoch(() => {
      const at = state.compared.findIndex((item) => item.job === jobIndex && item.cell === cell);
      if (at >= 0) state.compared.splice(at, 1);
      else {
        if (state.compared.length >= MAX_COMPARED) state.compared.shift();
        state.compared.push({ job: jobIndex, cell });
      }
    });
    render(true);
  }

  function compare(items) {
    const chosen = items.slice(0, MAX_COMPARED).map(([job, cell]) => {
      if (!(job >= 0 && job < jobs.length && cell >= 0 && cell < jobs[job].cells)) throw new Error("no cell " + cell + " in job " + job);
      return { job, cell };
    });
    keepEpoch(() => {
      state.mode = "compare";
      state.compared = chosen;
    });
    render(true);
  }

  function setStep(step) {
    const epochs = timeline();
    state.step = Math.max(0, Math.min(epochs.length - 1, Math.round(step)));
    syncControls();
    drawPanels();
  }

  function play() {
    if (state.timer) return;
    if (state.step >= timeline().length - 1) state.step = 0;
    state.timer = setInterval(() => {
      if (state.step >= timeline().length - 1) pause();
      else setStep(state.step + 1);
    }, 150);
    syncControls();
  }

  function pause() {
    if (state.timer) clearInterval(state.timer);
    state.timer = null;
    syncControls();
  }

  // The cell a job opens on: the first solved seed at its best learning rate.
  function defaultCell(job) {
    const best = bestRate(job);
    const seeds = job.seeds.length;
    for (let s = 0; s < seeds; s++) if (job.solved[best * seeds + s] && job.paramRow[best * seeds + s] >= 0) return best * seeds + s;
    for (let c = 0; c < job.cells; c++) if (job.paramRow[c] >= 0) return c;
    return 0;
  }

  function bestRate(job) {
    const seeds = job.seeds.length;
    let best = 0;
    let bestScore = -1;
    for (let r = 0; r < job.learning_rates.length; r++) {
      let solved = 0;
      for (let s = 0; s < seeds; s++) solved += job.solved[r * seeds + s];
      if (solved > bestScore) {
        best = r;
        bestScore = solved;
      }
    }
    return best;
  }

  // One seed at the smallest, the best and the largest learning rate.
  function compareRates() {
    const job = jobs[state.job];
    const seeds = job.seeds.length;
    const cell = state.mode === "compare" && state.compared.length ? state.compared[0].cell : state.cell;
    const seed = cell % seeds;
    const rows = [0, bestRate(job), job.learning_rates.length - 1].filter((r, i, all) => all.indexOf(r) === i);
    compare(rows.map((r) => [state.job, r * seeds + seed]));
  }

  // The same cell (learning rate and seed) in every job: arms side by side.
  function compareJobs() {
    const item = state.mode === "compare" && state.compared.length ? state.compared[0] : { job: state.job, cell: state.cell };
    const origin = jobs[item.job];
    const rate = origin.learning_rates[Math.floor(item.cell / origin.seeds.length)];
    const seed = origin.seeds[item.cell % origin.seeds.length];
    const items = [];
    jobs.forEach((job, index) => {
      const r = job.learning_rates.indexOf(rate);
      const s = job.seeds.indexOf(seed);
      if (r >= 0 && s >= 0) items.push([index, r * job.seeds.length + s]);
      else items.push([index, defaultCell(job)]);
    });
    const first = items.findIndex(([job]) => job === item.job);
    const ordered = items.slice(first).concat(items.slice(0, first));
    compare(ordered);
  }

  function buildPage() {
    document.title = PAYLOAD.title + " — backprop-lab explorer";
    const header = element("header", {},
      element("h1", { id: "title", text: PAYLOAD.title }),
      element("p", { class: "subtitle", text: PAYLOAD.subtitle }));
    const notes = element("ul", { class: "notes" });
    PAYLOAD.notes.forEach((note) => notes.append(element("li", { text: note })));
    header.append(notes);

    ui.jobSelect = element("select", { id: "job", "aria-label": "job" });
    jobs.forEach((job, index) => ui.jobSelect.append(element("option", { value: String(index), text: job.label })));
    ui.jobSelect.addEventListener("change", () => selectJob(Number(ui.jobSelect.value)));
    const jobBox = element("label", { class: "job-box" }, "Job ", ui.jobSelect);
    jobBox.hidden = jobs.length < 2;
    ui.play = element("button", { id: "play", type: "button" });
    ui.play.addEventListener("click", () => (state.timer ? pause() : play()));
    ui.slider = element("input", { id: "epoch-slider", type: "range", min: "0", max: "0", value: "0", "aria-label": "epoch" });
    ui.slider.addEventListener("input", () => setStep(Number(ui.slider.value)));
    ui.epoch = element("span", { id: "epoch", class: "epoch" });
    ui.output = element("select", { id: "output", "aria-label": "output unit" });
    const outputs = Math.max(...jobs.map((job) => job.layers.at(-1)));
    for (let o = 0; o < outputs; o++) ui.output.append(element("option", { value: String(o), text: "o" + (o + 1) }));
    ui.output.addEventListener("change", () => {
      state.output = Number(ui.output.value);
      drawPanels();
    });
    ui.outputBox = element("label", { class: "output-box" }, "plane shows ", ui.output);
    const toolbar = element("div", { class: "toolbar" }, jobBox, ui.play, ui.slider, ui.epoch, ui.outputBox);

    ui.cells = element("canvas", { id: "cells", width: "100", height: "100" });
    ui.cells.addEventListener("mousemove", (event) => {
      const cell = cellAt(event);
      ui.hover.textContent = cell >= 0 ? describeCell(state.job, cell) : "";
    });
    ui.cells.addEventListener("click", (event) => {
      const cell = cellAt(event);
      if (cell < 0) return;
      if (state.mode === "compare") toggleCompared(state.job, cell);
      else selectCell(cell);
    });
    ui.legendLow = element("span");
    ui.legendHigh = element("span");
    const legend = element("div", { class: "legend" },
      ui.legendLow, element("span", { class: "bar" }), ui.legendHigh,
      element("span", { class: "key", text: "● solved  ■ diverged" }));
    ui.hover = element("p", { class: "hover" });
    ui.modeSingle = element("button", { type: "button", class: "mode", id: "mode-single", text: "One cell" });
    ui.modeCompare = element("button", { type: "button", class: "mode", id: "mode-compare", text: "Compare" });
    ui.modeSingle.addEventListener("click", () => {
      keepEpoch(() => (state.mode = "single"));
      render(true);
    });
    ui.modeCompare.addEventListener("click", () => {
      keepEpoch(() => (state.mode = "compare"));
      render(true);
    });
    const ratesButton = element("button", { type: "button", id: "compare-rates", text: "This seed at 3 rates" });
    ratesButton.addEventListener("click", compareRates);
    const jobsButton = element("button", { type: "button", id: "compare-jobs", text: "This cell in every job" });
    jobsButton.addEventListener("click", compareJobs);
    jobsButton.hidden = jobs.length < 2;
    ui.compareHint = element("p", { class: "hint" });
    ui.compareList = element("div", { class: "chips" });
    ui.jobNotes = element("ul", { class: "notes" });
    const aside = element("aside", { class: "cells-panel" },
      element("h2", { text: "Cells" }),
      element("p", { class: "hint", text: "Rows: learning rate. Columns: seed. Colour: final loss." }),
      ui.cells, legend, ui.hover,
      element("div", { class: "modes" }, ui.modeSingle, ui.modeCompare),
      ui.compareHint, element("div", { class: "buttons" }, ratesButton, jobsButton), ui.compareList, ui.jobNotes);
    ui.views = element("main", { class: "views" });
    document.body.append(header, toolbar, element("div", { class: "layout" }, aside, ui.views));
  }

  async function prepare() {
    jobs = await Promise.all(
      PAYLOAD.jobs.map(async (raw) => {
        const job = Object.assign({}, raw);
        job.cells = raw.learning_rates.length * raw.seeds.length;
        job.snapshotCount = raw.snapshot_epochs.length;
        job.parameterCount = 0;
        for (let l = 0; l + 1 < raw.layers.length; l++) {
          job.parameterCount += raw.layers[l] * raw.layers[l + 1] + (raw.use_bias ? raw.layers[l + 1] : 0);
        }
        job.params = await decodeArray(raw.params);
        job.paramRow = new Int32Array(job.cells).fill(-1);
        raw.param_cells.forEach((cell, row) => (job.paramRow[cell] = row));
        job.curves = {};
        for (const [name, spec] of Object.entries(raw.curves)) job.curves[name] = await decodeArray(spec);
        if (raw.classes) {
          job.classes = Object.assign({}, raw.classes, { x: await decodeArray(raw.classes.x) });
        }
        job.points = null;
        if (raw.data) {
          job.points = {};
          for (const split of ["train", "test"]) {
            const points = raw.data[split];
            if (!points) continue;
            const x = await decodeArray(points.x);
            const y = await decodeArray(points.y);
            job.points[split] = { x, y, n: points.x.shape[0], targets: points.y.shape[1] };
          }
        }
        return job;
      }),
    );
  }

  function failed(error) {
    const message = element("p", { class: "error", text: "The explorer could not start: " + error.message });
    document.body.prepend(message);
    throw error;
  }

  const ready = prepare()
    .then(() => {
      buildPage();
      if (!jobs.length) throw new Error("this page holds no jobs");
      state.cell = defaultCell(jobs[0]);
      state.step = timeline().length - 1;
      render(true);
    })
    .catch(failed);

  // A small hook for tests and for the curious (from the browser's console).
  window.bplab = Object.freeze({
    ready,
    info: () => jobs.map((job) => ({
      name: job.name, label: job.label, cells: job.cells, layers: job.layers.slice(),
      snapshot_epochs: job.snapshot_epochs.slice(), param_cells: job.param_cells.slice(), plane: job.points !== null && job.layers[0] === 2,
      classes: job.classes ? job.classes.names.slice() : null,
    })),
    // The outputs the page computes for `points` ([[x1, x2, ...], ...]) with the parameters of
    // cell `cell` of job `jobIndex` at its snapshot number `snapshot`.
    forward: (cell, snapshot, points, jobIndex = state.job) => {
      const net = network(jobs[jobIndex], cell, snapshot);
      if (!net) throw new Error("no snapshot " + snapshot + " of cell " + cell);
      return points.map((point) => Array.from(forward(net, Float64Array.from(point))));
    },
    // The confusion matrix and per-class accuracy the page draws for that cell and snapshot.
    confusion: (cell, snapshot, jobIndex = state.job) => {
      const job = jobs[jobIndex];
      const net = network(job, cell, snapshot);
      if (!net || !job.classes) throw new Error("no classes or no snapshot " + snapshot + " of cell " + cell);
      return confusion(job, net);
    },
    selectJob,
    selectCell,
    setStep,
    setEpoch: setStep,
    compare,
    single: () => {
      keepEpoch(() => (state.mode = "single"));
      render(true);
    },
    play,
    pause,
    state: () => ({
      job: state.job, cell: state.cell, mode: state.mode, step: state.step, epoch: currentEpoch(),
      steps: timeline().length, playing: state.timer !== null,
      compared: state.compared.map((item) => [item.job, item.cell]),
      panels: (ui.panels || []).map((panel) => ({ job: panel.item.job, cell: panel.item.cell, epoch: panel.epoch, snapshot: panel.snapshot })),
    }),
  });
})();
