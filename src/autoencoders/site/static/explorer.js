// Latent explorers of the autoencoders results site: a hand-written MLP forward pass
// (matmul + activation, float32) over decoder weights shipped as base64 in data/*.js
// files (script tags, so the pages work opened from disk), and the three views:
// "plane" (2-D latent space under the pointer), "sliders" (one per latent, test-image
// strip) and "frames" (precomputed traversal frames picked by the sliders).
(function () {
  "use strict";
  var AE = window.AE = window.AE || {};
  AE.data = AE.data || {};
  AE.explorers = {};
  AE.errors = AE.errors || [];
  window.addEventListener("error", function (e) { AE.errors.push(String(e.message)); });
  AE.register = function (id, data) { AE.data[id] = data; };

  var TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
               "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

  function bytesOf(b64) {
    var bin = atob(b64), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function halfToFloat(h) {
    var s = (h & 0x8000) ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
    if (e === 0) return s * Math.pow(2, -14) * (f / 1024);
    if (e === 31) return f ? NaN : s * Infinity;
    return s * Math.pow(2, e - 15) * (1 + f / 1024);
  }

  function floats(spec) {
    var bytes = bytesOf(spec.data);
    if (spec.dtype === "float32") return new Float32Array(bytes.buffer);
    var half = new Uint16Array(bytes.buffer), out = new Float32Array(half.length);
    for (var i = 0; i < half.length; i++) out[i] = halfToFloat(half[i]);
    return out;
  }

  var ACTS = {
    identity: function (x) { return x; },
    tanh: Math.tanh,
    relu: function (x) { return x > 0 ? x : 0; },
    sigmoid: function (x) { return 1 / (1 + Math.exp(-x)); },
    softplus: function (x) { return x > 20 ? x : Math.log1p(Math.exp(x)); },  // torch's threshold
    elu: function (x) { return x > 0 ? x : Math.expm1(x); }
  };

  // The decoder: layers of (W: out x in row-major, b, activation), then the output map.
  function Decoder(spec) {
    var all = floats(spec), at = 0;
    this.layers = spec.shapes.map(function (shape, i) {
      var n = shape[0] * shape[1];
      var layer = { out: shape[0], inp: shape[1], w: all.subarray(at, at + n),
                    b: all.subarray(at + n, at + n + shape[0]), act: ACTS[spec.activations[i]] };
      if (!layer.act) throw new Error("unknown activation " + spec.activations[i]);
      at += n + shape[0];
      return layer;
    });
  }
  Decoder.prototype.forward = function (input) {
    var x = Float32Array.from(input);
    this.layers.forEach(function (L) {
      var y = new Float32Array(L.out), w = L.w, inp = L.inp;
      for (var o = 0; o < L.out; o++) {
        var s = L.b[o], row = o * inp;
        for (var i = 0; i < inp; i++) s += w[row + i] * x[i];
        y[o] = L.act(s);
      }
      x = y;
    });
    for (var i = 0; i < x.length; i++) x[i] = 1 / (1 + Math.exp(-x[i]));  // sigmoid: means
    return x;
  };

  // stick fractions v (K - 1) -> scale * pi (K), as site/explorer.py:sticks_to_input
  function sticksToInput(v, scale) {
    var pi = new Float32Array(v.length + 1), rest = 1;
    for (var k = 0; k < v.length; k++) { pi[k] = v[k] * rest * scale; rest *= 1 - v[k]; }
    pi[v.length] = rest * scale;
    return pi;
  }

  function drawImage(canvas, img, shape) {
    var c = shape[0], h = shape[1], w = shape[2], ctx = canvas.getContext("2d");
    var data = ctx.createImageData(w, h), px = data.data, n = h * w;
    for (var p = 0; p < n; p++) {
      for (var ch = 0; ch < 3; ch++) {
        var v = img[(c === 1 ? 0 : ch) * n + p];
        px[4 * p + ch] = Math.round(Math.min(1, Math.max(0, v)) * 255);
      }
      px[4 * p + 3] = 255;
    }
    ctx.putImageData(data, 0, 0);
  }

  function el(tag, attrs, parent) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") e.textContent = attrs[k]; else e.setAttribute(k, attrs[k]);
    });
    if (parent) parent.appendChild(e);
    return e;
  }

  function Explorer(root, data) {
    var self = this;
    this.root = root;
    this.data = data;
    this.shape = data.image;
    this.z = Float32Array.from(data.base);
    this.decoder = data.decoder ? new Decoder(data.decoder) : null;
    var view = el("div", { "class": "ex-view" }, root);
    var out = el("div", { "class": "ex-output" }, view);
    this.canvas = el("canvas", { "class": "ex-decoded", width: this.shape[2],
                                 height: this.shape[1], "aria-label": "decoded image" }, out);
    this.readout = el("div", { "class": "ex-readout" }, out);
    if (data.kind === "plane") this.buildPlane(view);
    else this.buildSliders(view);
    if (data.strip) this.buildStrip(root);
    if (data.kind === "frames") {
      this.sheet = new Image();
      this.sheet.onload = function () { self.showFrame(0, self.nearestStep(self.z[self.sliders[0].index])); };
      this.sheet.src = "data:image/png;base64," + data.frames.png;
    } else {
      this.render();
    }
  }

  Explorer.prototype.input = function (z) {
    return this.data.latent === "sticks" ? sticksToInput(z, this.data.input_scale) : z;
  };
  Explorer.prototype.decode = function (z) { return this.decoder.forward(this.input(z)); };
  Explorer.prototype.render = function () {
    drawImage(this.canvas, this.decode(this.z), this.shape);
    this.updateReadout();
    if (this.plane) this.drawPlane();
    this.syncSliders();
  };
  Explorer.prototype.setLatent = function (values) {
    for (var i = 0; i < values.length; i++) this.z[i] = values[i];
    this.render();
  };
  Explorer.prototype.pixels = function () {  // the canvas's grey/RGB bytes, for tests
    var c = this.shape[0], h = this.shape[1], w = this.shape[2];
    var px = this.canvas.getContext("2d").getImageData(0, 0, w, h).data, out = [];
    for (var ch = 0; ch < c; ch++) for (var p = 0; p < h * w; p++) out.push(px[4 * p + ch]);
    return out;
  };
  Explorer.prototype.updateReadout = function () {
    var shown = this.data.kind === "plane" ? [0, 1] : this.data.sliders.map(function (s) { return s.index; });
    var z = this.z, sym = this.data.latent === "sticks" ? "v" : "z";
    this.readout.textContent = shown.slice(0, 4).map(function (d) {
      var text = z[d].toFixed(2);
      return sym + (sym === "v" ? d + 1 : d) + " = " + (text === "-0.00" ? "0.00" : text);
    }).join(", ") + (shown.length > 4 ? ", …" : "");
  };

  // ------------------------------------------------------------------ 2-D plane
  Explorer.prototype.buildPlane = function (view) {
    var self = this, size = 320;
    var wrap = el("div", { "class": "ex-plane-wrap" }, view);
    this.plane = el("canvas", { "class": "ex-plane", width: size, height: size,
                                "aria-label": "latent plane: move the pointer" }, wrap);
    this.limit = this.data.scatter.limit;
    el("div", { "class": "ex-hint", text: "Move the pointer over the plane (z0 → right, z1 ↑). " +
                "Dots: test images' posterior means" +
                (this.data.scatter.labels ? ", coloured by label." : ".") }, wrap);
    var move = function (ev) {
      var r = self.plane.getBoundingClientRect();
      var u = (ev.clientX - r.left) / r.width, v = (ev.clientY - r.top) / r.height;
      if (u < 0 || u > 1 || v < 0 || v > 1) return;
      self.z[0] = (2 * u - 1) * self.limit;
      self.z[1] = (1 - 2 * v) * self.limit;
      self.render();
    };
    this.plane.addEventListener("pointermove", move);
    this.plane.addEventListener("pointerdown", move);
    this.legend(wrap);
  };
  Explorer.prototype.legend = function (parent) {
    var labels = this.data.scatter.labels;
    if (!labels) return;
    var seen = {}, box = el("div", { "class": "ex-legend" }, parent);
    labels.forEach(function (l) { seen[l] = true; });
    Object.keys(seen).sort(function (a, b) { return a - b; }).forEach(function (l) {
      var item = el("span", {}, box);
      el("i", { style: "background:" + TAB10[l % 10] }, item);
      item.appendChild(document.createTextNode(l));
    });
  };
  Explorer.prototype.toPlane = function (zx, zy) {
    var s = this.plane.width, L = this.limit;
    return [(zx / L + 1) / 2 * s, (1 - zy / L) / 2 * s];
  };
  Explorer.prototype.drawPlane = function () {
    var ctx = this.plane.getContext("2d"), s = this.plane.width, L = this.limit;
    if (!this.background) {
      ctx.fillStyle = "#fff";
      ctx.fillRect(0, 0, s, s);
      ctx.strokeStyle = "#ddd";
      ctx.fillStyle = "#555";
      ctx.font = "11px sans-serif";
      for (var t = -Math.floor(L); t <= Math.floor(L); t++) {
        var p = this.toPlane(t, t);
        ctx.beginPath(); ctx.moveTo(p[0], 0); ctx.lineTo(p[0], s); ctx.stroke();
        ctx.beginPath(); ctx.moveTo(0, p[1]); ctx.lineTo(s, p[1]); ctx.stroke();
        ctx.fillText(String(t), p[0] + 2, s - 3);
        if (t !== 0) ctx.fillText(String(t), 2, p[1] - 2);
      }
      var xy = this.data.scatter.xy, labels = this.data.scatter.labels;
      ctx.globalAlpha = 0.55;
      for (var i = 0; i < xy.length / 2; i++) {
        var q = this.toPlane(xy[2 * i], xy[2 * i + 1]);
        ctx.fillStyle = labels ? TAB10[labels[i] % 10] : "#1f77b4";
        ctx.fillRect(q[0] - 1.5, q[1] - 1.5, 3, 3);
      }
      ctx.globalAlpha = 1;
      this.background = ctx.getImageData(0, 0, s, s);
    }
    ctx.putImageData(this.background, 0, 0);
    var c = this.toPlane(this.z[0], this.z[1]);
    ctx.strokeStyle = "#000";
    ctx.lineWidth = 2;
    ctx.beginPath(); ctx.arc(c[0], c[1], 6, 0, 2 * Math.PI); ctx.stroke();
    ctx.lineWidth = 1;
  };

  // ------------------------------------------------------------------ sliders
  Explorer.prototype.buildSliders = function (view) {
    var self = this, box = el("div", { "class": "ex-sliders" }, view);
    var frames = this.data.kind === "frames";
    this.sliders = this.data.sliders.map(function (s, row) {
      var line = el("label", { "class": "ex-slider" }, box);
      el("span", { "class": "ex-name", text: s.label }, line);
      var step = frames ? (s.max - s.min) / (self.data.frames.steps - 1) : 0.01;
      var input = el("input", { type: "range", min: s.min, max: s.max, step: step,
                                value: self.z[s.index], "data-index": s.index }, line);
      el("span", { "class": "ex-note", text: s.note }, line);
      input.addEventListener("input", function () {
        self.z[s.index] = parseFloat(input.value);
        if (frames) self.showFrame(row, self.nearestStep(self.z[s.index]));
        else self.render();
      });
      return { index: s.index, input: input };
    });
    var reset = el("button", { type: "button", "class": "ex-reset",
                               text: frames ? "back to the seed image's code" : "reset" }, box);
    reset.addEventListener("click", function () {
      self.z = Float32Array.from(self.data.base);
      if (frames) { self.syncSliders(); self.showFrame(0, self.nearestStep(self.z[self.sliders[0].index])); }
      else self.render();
    });
  };
  Explorer.prototype.syncSliders = function () {
    var z = this.z;
    (this.sliders || []).forEach(function (s) { s.input.value = z[s.index]; });
  };
  Explorer.prototype.nearestStep = function (value) {
    var f = this.data.frames, lo = f.values[0], hi = f.values[f.steps - 1];
    return Math.max(0, Math.min(f.steps - 1, Math.round((value - lo) / (hi - lo) * (f.steps - 1))));
  };
  Explorer.prototype.showFrame = function (row, step) {
    // a precomputed frame: slider `row` at values[step], the other latents at the seed's code
    var h = this.shape[1], w = this.shape[2], ctx = this.canvas.getContext("2d");
    ctx.drawImage(this.sheet, step * w, row * h, w, h, 0, 0, w, h);
    var self = this;
    this.sliders.forEach(function (s, r) {
      if (r !== row) { self.z[s.index] = self.data.base[s.index]; s.input.value = self.z[s.index]; }
    });
    this.z[this.sliders[row].index] = this.data.frames.values[step];
    this.frame = [row, step];
    this.updateReadout();
  };

  // ------------------------------------------------------------------ test-image strip
  Explorer.prototype.buildStrip = function (root) {
    var self = this, strip = this.data.strip;
    var box = el("div", { "class": "ex-strip" }, root);
    el("div", { "class": "ex-hint", text: "Encode a test image: click one to set the code to its " +
                (this.data.latent === "sticks" ? "expected stick fractions E[v]." : "posterior mean.") }, box);
    var img = el("img", { src: "data:image/png;base64," + strip.png, alt: "test images",
                          "class": "ex-strip-img" }, box);
    img.addEventListener("click", function (ev) {
      var r = img.getBoundingClientRect();
      var i = Math.min(strip.n - 1, Math.floor((ev.clientX - r.left) / r.width * strip.n));
      self.setLatent(strip.codes[i]);
    });
  };

  function init() {
    var nodes = document.querySelectorAll("[data-explorer]");
    for (var i = 0; i < nodes.length; i++) {
      var id = nodes[i].getAttribute("data-explorer");
      if (!AE.data[id]) throw new Error("explorer data " + id + " did not load");
      AE.explorers[id] = new Explorer(nodes[i], AE.data[id]);
    }
    AE.readyAt = performance.now();
    document.documentElement.setAttribute("data-ready", "1");
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
