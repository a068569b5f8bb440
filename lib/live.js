// Live playgrounds (lib/live.py): run a notebook's ONNX models in the reader's browser with
// the book's own copy of onnxruntime-web (WebAssembly only, one thread; nothing fetched
// from elsewhere). Without the book around it (Jupyter, Colab) the static figure stays.
(function () {
  var root = document.documentElement.getAttribute('data-content_root');
  if (root === null) return;  // not the HTML book: keep the static figure
  root = new URL(root, document.baseURI).href;  // absolute: onnxruntime imports its .mjs from it
  var COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2',
                 '#7f7f7f', '#bcbd22', '#17becf'];

  function bytes(b64) {
    var s = atob(b64.trim()), out = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }
  function array(a) {  // {dtype, shape, b64} -> {data, shape}
    var buf = bytes(a.b64).buffer;
    return {data: a.dtype === 'int64' ? new BigInt64Array(buf) : new Float32Array(buf), shape: a.shape};
  }
  function ortLoaded() {
    if (!window.workbookOrt) {
      window.workbookOrt = new Promise(function (resolve, reject) {
        var s = document.createElement('script');
        s.src = root + 'ort/ort.wasm.min.js';
        s.onload = function () {
          ort.env.wasm.numThreads = 1;  // no worker threads: no cross-origin isolation needed
          ort.env.wasm.wasmPaths = root + 'ort/';
          resolve(ort);
        };
        s.onerror = function () { reject(new Error('onnxruntime-web not found at ' + s.src)); };
        document.head.appendChild(s);
      });
    }
    return window.workbookOrt;
  }
  function sessions(box) {  // name -> InferenceSession, from _live/*.onnx or the inline base64
    return ortLoaded().then(function (ort) {
      var scripts = Array.prototype.slice.call(box.querySelectorAll('script.workbook-live-model'));
      return Promise.all(scripts.map(function (s) {
        var src = s.getAttribute('data-src');
        var got = src ? fetch(root + src).then(function (r) {
          if (!r.ok) throw new Error('HTTP ' + r.status + ' for ' + src);
          return r.arrayBuffer();
        }).then(function (b) { return new Uint8Array(b); }) : Promise.resolve(bytes(s.textContent));
        return got.then(function (b) { return ort.InferenceSession.create(b, {executionProviders: ['wasm']}); })
          .then(function (session) { return [s.getAttribute('data-name'), session]; });
      }));
    }).then(function (pairs) {
      var out = {};
      pairs.forEach(function (p) { out[p[0]] = p[1]; });
      return out;
    });
  }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function draw(canvas, data, c, h, w, offset) {  // one image (C, H, W) in [-1, 1] from data[offset]
    canvas.width = w; canvas.height = h;
    var ctx = canvas.getContext('2d'), im = ctx.createImageData(w, h), n = h * w;
    for (var i = 0; i < n; i++) {
      for (var k = 0; k < 3; k++) {
        var v = data[offset + (c === 3 ? k : 0) * n + i];
        im.data[4 * i + k] = Math.max(0, Math.min(255, Math.round((v + 1) * 127.5)));
      }
      im.data[4 * i + 3] = 255;
    }
    ctx.putImageData(im, 0, 0);
  }
  function maxDiff(a, b) {
    var m = 0;
    for (var i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
    return a.length === b.length ? m : Infinity;
  }
  function gaussian(rand) {  // Box-Muller
    return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  }
  function roundHalfEven(x) {  // Python's round()
    var r = Math.round(x);
    return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }

  var KINDS = {};

  KINDS.dcgan = function (box, cfg, m, live) {
    var z = array(cfg.reference.z).data.slice(0, cfg.z_dim), y = 0;
    var out = el('canvas', {'class': 'workbook-live-out', width: 16, height: 16});
    var reading = el('span', {'class': 'workbook-live-reading'});
    var buttons = el('div', {'class': 'workbook-live-row'}), sliders = el('div', {'class': 'workbook-live-sliders'});
    for (var k = 0; k < cfg.n_classes; k++) {
      var b = el('button', {type: 'button', 'data-class': k}, String(k));
      b.addEventListener('click', function (e) { y = +e.target.getAttribute('data-class'); render(); });
      buttons.appendChild(b);
    }
    var ranges = [];
    for (var j = 0; j < cfg.sliders; j++) {
      var r = el('input', {type: 'range', min: -3, max: 3, step: 0.05, value: z[j], 'aria-label': 'z[' + j + ']'});
      r.addEventListener('input', (function (j) { return function (e) { z[j] = +e.target.value; render(); }; })(j));
      var lab = el('label', {}, 'z' + j + ' '); lab.appendChild(r); sliders.appendChild(lab); ranges.push(r);
    }
    var again = el('button', {type: 'button', 'class': 'workbook-live-new'}, 'new sample');
    again.addEventListener('click', function () {
      for (var i = 0; i < z.length; i++) z[i] = gaussian(Math.random);
      ranges.forEach(function (r, i) { r.value = z[i]; });
      render();
    });
    buttons.appendChild(again);
    box.appendChild(buttons); box.appendChild(sliders);
    var row = el('div', {'class': 'workbook-live-row'}); row.appendChild(out); row.appendChild(reading);
    box.appendChild(row);
    function generate(zs, ys, n) {
      return live.run(m.generator, {z: new ort.Tensor('float32', zs, [n, cfg.z_dim]),
                                    y: new ort.Tensor('int64', ys, [n])}).then(function (o) { return o.image; });
    }
    function classify(img) {
      return live.run(m.classifier, {image: img}).then(function (o) {
        var l = o.logits.data, n = cfg.n_classes, out = [];
        for (var i = 0; i < l.length / n; i++) {
          var best = 0;
          for (var k = 1; k < n; k++) if (l[i * n + k] > l[i * n + best]) best = k;
          out.push(best);
        }
        return out;
      });
    }
    function render() {
      return generate(z, BigInt64Array.of(BigInt(y)), 1).then(function (img) {
        var s = img.dims;
        draw(out, img.data, s[1], s[2], s[3], 0); live.last = img.data;
        return classify(img);
      }).then(function (read) {
        box.setAttribute('data-reading', read[0]);
        reading.textContent = 'class button ' + y + ': the book\'s digit classifier reads ' + read[0];
        live.done();
      });
    }
    live.check = function () {
      var ref = cfg.reference, want = array(ref.image).data, t0 = performance.now();
      return generate(array(ref.z).data, array(ref.y).data, cfg.n_classes).then(function (img) {
        var ms = performance.now() - t0;
        return classify(img).then(function (read) {
          return {maxErr: maxDiff(img.data, want), ms: ms, readings: read, want: ref.readings};
        });
      });
    };
    return render();
  };

  KINDS.vae = function (box, cfg, m, live) {
    var size = 280, ext = cfg.extent, map = el('canvas', {'class': 'workbook-live-map', width: size, height: size});
    var out = el('canvas', {'class': 'workbook-live-out', width: 16, height: 16}), label = el('span');
    var row = el('div', {'class': 'workbook-live-row'});
    row.appendChild(map); row.appendChild(out); row.appendChild(label); box.appendChild(row);
    function toPixel(z) {
      return [(z[0] - ext[0]) / (ext[1] - ext[0]) * (size - 20) + 10, (ext[3] - z[1]) / (ext[3] - ext[2]) * (size - 20) + 10];
    }
    function paint(z) {
      var ctx = map.getContext('2d');
      ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, size, size);
      cfg.codes.forEach(function (c, i) {
        var p = toPixel(c); ctx.fillStyle = COLOURS[cfg.labels[i] % 10]; ctx.fillRect(p[0] - 1.5, p[1] - 1.5, 3, 3);
      });
      var p = toPixel(z); ctx.strokeStyle = '#000'; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.arc(p[0], p[1], 6, 0, 2 * Math.PI); ctx.stroke();
    }
    function decode(zs, n) {
      return live.run(m.decoder, {z: new ort.Tensor('float32', zs, [n, 2])}).then(function (o) { return o.image; });
    }
    function render(z) {
      paint(z);
      return decode(Float32Array.from(z), 1).then(function (img) {
        var s = img.dims; draw(out, img.data, s[1], s[2], s[3], 0); live.last = img.data;
        box.setAttribute('data-z', z.map(function (v) { return v.toFixed(3); }).join(','));
        label.textContent = 'z = (' + z[0].toFixed(2) + ', ' + z[1].toFixed(2) + ')';
        live.done();
      });
    }
    map.addEventListener('click', function (e) {
      var r = map.getBoundingClientRect(), x = (e.clientX - r.left) * size / r.width, yy = (e.clientY - r.top) * size / r.height;
      render([ext[0] + (x - 10) / (size - 20) * (ext[1] - ext[0]), ext[3] - (yy - 10) / (size - 20) * (ext[3] - ext[2])]);
    });
    live.check = function () {
      var ref = cfg.reference, zs = array(ref.z), t0 = performance.now();
      return decode(zs.data, zs.shape[0]).then(function (img) {
        return {maxErr: maxDiff(img.data, array(ref.image).data), ms: performance.now() - t0};
      });
    };
    return render([(ext[0] + ext[1]) / 2, (ext[2] + ext[3]) / 2]);
  };

  KINDS.pix2pix = function (box, cfg, m, live) {
    var ref = array(cfg.reference.sketch), S = ref.shape[3], start = ref.data.slice(), sketch = start.slice();
    var pad = el('canvas', {'class': 'workbook-live-pad', width: S, height: S});
    var out = el('canvas', {'class': 'workbook-live-out', width: S, height: S});
    var tools = el('div', {'class': 'workbook-live-row'}), tool = 'edges', busy = false, pending = false, last = null;
    [['edges', 'draw edges'], ['tone', 'paint tone'], ['erase', 'erase'], ['clear', 'clear'], ['reset', 'start again']]
      .forEach(function (t) {
        var b = el('button', {type: 'button', 'data-tool': t[0]}, t[1]);
        b.addEventListener('click', function () {
          if (t[0] === 'clear') { for (var i = 0; i < S * S; i++) { sketch[i] = -1; sketch[S * S + i] = cfg.outside; } render(); }
          else if (t[0] === 'reset') { sketch = start.slice(); render(); }
          else tool = t[0];
          box.setAttribute('data-tool', tool);
        });
        tools.appendChild(b);
      });
    box.appendChild(tools);
    var row = el('div', {'class': 'workbook-live-row'}); row.appendChild(pad); row.appendChild(out); box.appendChild(row);
    function show() {  // the sketch: edges white, the tone hint as grey
      var shown = new Float32Array(S * S);
      for (var i = 0; i < S * S; i++) shown[i] = sketch[i] > 0 ? 1 : 0.5 * sketch[S * S + i] - 0.3;
      draw(pad, shown, 1, S, S, 0);
    }
    function dab(x, y) {
      var r = tool === 'edges' ? 0 : 2;
      for (var dy = -r; dy <= r; dy++) for (var dx = -r; dx <= r; dx++) {
        var u = x + dx, v = y + dy;
        if (u < 0 || v < 0 || u >= S || v >= S || dx * dx + dy * dy > r * r + 1) continue;
        if (tool === 'edges') sketch[v * S + u] = 1;
        else if (tool === 'tone') sketch[S * S + v * S + u] = cfg.inside;
        else { sketch[v * S + u] = -1; sketch[S * S + v * S + u] = cfg.outside; }
      }
    }
    function stroke(e) {
      var r = pad.getBoundingClientRect();
      var p = [Math.floor((e.clientX - r.left) * S / r.width), Math.floor((e.clientY - r.top) * S / r.height)];
      var a = last || p, n = Math.max(Math.abs(p[0] - a[0]), Math.abs(p[1] - a[1]), 1);
      for (var i = 0; i <= n; i++) dab(Math.round(a[0] + (p[0] - a[0]) * i / n), Math.round(a[1] + (p[1] - a[1]) * i / n));
      last = p; render();
    }
    pad.addEventListener('pointerdown', function (e) { last = null; pad.setPointerCapture(e.pointerId); stroke(e); });
    pad.addEventListener('pointermove', function (e) { if (e.buttons) stroke(e); });
    pad.addEventListener('pointerup', function () { last = null; });
    function translate(x, n) {
      return live.run(m.generator, {sketch: new ort.Tensor('float32', x, [n, 2, S, S])}).then(function (o) { return o.photo; });
    }
    function render() {
      show();
      if (busy) { pending = true; return Promise.resolve(); }
      busy = true;
      return translate(sketch.slice(), 1).then(function (img) {
        draw(out, img.data, 1, S, S, 0); live.last = img.data; busy = false; live.done();
        if (pending) { pending = false; return render(); }
      });
    }
    live.check = function () {
      var t0 = performance.now();
      return translate(ref.data, 1).then(function (img) {
        return {maxErr: maxDiff(img.data, array(cfg.reference.photo).data), ms: performance.now() - t0};
      });
    };
    return render();
  };

  KINDS.text2image = function (box, cfg, m, live) {
    var g = cfg.grammar, selects = {}, row = el('div', {'class': 'workbook-live-row'});
    row.appendChild(el('span', {}, 'a'));
    ['size', 'colour', 'shape', 'where'].forEach(function (k) {
      var s = el('select', {'data-part': k, 'aria-label': k});
      g[k].forEach(function (v) { s.appendChild(el('option', {value: v}, v)); });
      selects[k] = s; row.appendChild(s);
    });
    var parts = cfg.reference.caption.split(' ');  // start from the reference caption where it fits
    ['size', 'colour', 'shape'].forEach(function (k, i) { if (g[k].indexOf(parts[i + 1]) >= 0) selects[k].value = parts[i + 1]; });
    var rest = parts.slice(4).join(' '); if (g.where.indexOf(rest) >= 0) selects.where.value = rest;
    box.appendChild(row);
    var ctl = el('div', {'class': 'workbook-live-row'});
    var w = el('input', {type: 'range', min: 0, max: 8, step: 0.5, value: cfg.w, 'aria-label': 'guidance scale w'});
    var wl = el('span', {}, 'w = ' + cfg.w), go = el('button', {type: 'button', 'class': 'workbook-live-go'}, 'generate');
    var fresh = el('button', {type: 'button', 'class': 'workbook-live-new'}, 'new noise');
    ctl.appendChild(el('span', {}, 'guidance')); ctl.appendChild(w); ctl.appendChild(wl); ctl.appendChild(go); ctl.appendChild(fresh);
    box.appendChild(ctl);
    var out = el('canvas', {'class': 'workbook-live-out', width: 32, height: 32}), info = el('span');
    var orow = el('div', {'class': 'workbook-live-row'}); orow.appendChild(out); orow.appendChild(info); box.appendChild(orow);
    var xT = array(cfg.reference.x_T).data, n = xT.length;
    function caption() {
      return ['a', selects.size.value, selects.colour.value, selects.shape.value, selects.where.value].join(' ');
    }
    function tokens(text) {
      var t = new BigInt64Array(cfg.max_tokens);
      text.split(' ').forEach(function (word, j) { t[j] = BigInt(cfg.vocab.indexOf(word)); });
      return t;
    }
    function sample(text, scale, noise) {  // DDIM, eta = 0, clip x0 (lib.diffusion.ddim_sample)
      var ab = cfg.alpha_bars, T = ab.length - 1, seq = [], x = noise.slice(), tok = tokens(text);
      for (var i = 0; i < cfg.steps; i++) seq.push(roundHalfEven(T - i * T / cfg.steps));
      seq.push(0);
      var step = function (k) {
        if (k === cfg.steps) {
          for (var i = 0; i < n; i++) x[i] = Math.max(-1, Math.min(1, x[i]));
          return live.run(m.decoder, {z: new ort.Tensor('float32', x, [1, cfg.channels, 8, 8])})
            .then(function (o) { return o.image; });
        }
        var t = seq[k], s = seq[k + 1];
        return live.run(m.eps, {z: new ort.Tensor('float32', x.slice(), [1, cfg.channels, 8, 8]),
                                t: new ort.Tensor('int64', BigInt64Array.of(BigInt(t)), [1]),
                                tokens: new ort.Tensor('int64', tok, [1, cfg.max_tokens]),
                                w: new ort.Tensor('float32', Float32Array.of(scale), [1])}).then(function (o) {
          var e = o.eps.data, at = ab[t], as = ab[s];
          for (var i = 0; i < n; i++) {
            var x0 = Math.max(-1, Math.min(1, (x[i] - Math.sqrt(1 - at) * e[i]) / Math.sqrt(at)));
            var ei = (x[i] - Math.sqrt(at) * x0) / Math.sqrt(1 - at);
            x[i] = Math.sqrt(as) * x0 + Math.sqrt(Math.max(1 - as, 0)) * ei;
          }
          return step(k + 1);
        });
      };
      return step(0);
    }
    function render() {
      var text = caption(), scale = +w.value, t0 = performance.now();
      wl.textContent = 'w = ' + scale;
      return sample(text, scale, xT).then(function (img) {
        var ms = performance.now() - t0;
        draw(out, img.data, 3, 32, 32, 0); live.last = img.data; live.timings.sample_ms = ms;
        info.textContent = '"' + text + '": ' + cfg.steps + ' DDIM steps in ' + Math.round(ms) + ' ms';
        box.setAttribute('data-caption', text);
        live.done();
      });
    }
    go.addEventListener('click', render);
    w.addEventListener('change', render);
    w.addEventListener('input', function () { wl.textContent = 'w = ' + w.value; });
    Object.keys(selects).forEach(function (k) { selects[k].addEventListener('change', render); });
    fresh.addEventListener('click', function () {
      xT = new Float32Array(n); for (var i = 0; i < n; i++) xT[i] = gaussian(Math.random); render();
    });
    live.check = function () {
      var ref = cfg.reference, t0 = performance.now();
      return sample(ref.caption, ref.w, array(ref.x_T).data).then(function (img) {
        return {maxErr: maxDiff(img.data, array(ref.image).data), ms: performance.now() - t0};
      });
    };
    return render();
  };

  var CSS = '.workbook-live-row{display:flex;flex-wrap:wrap;align-items:center;gap:.4rem;margin:.3rem 0}' +
    '.workbook-live canvas.workbook-live-out,.workbook-live canvas.workbook-live-pad{width:256px;height:256px;' +
    'image-rendering:pixelated;border:1px solid #888}.workbook-live-pad{cursor:crosshair;touch-action:none}' +
    '.workbook-live-map{border:1px solid #888;cursor:crosshair;width:280px;height:280px}' +
    '.workbook-live-sliders label{margin-right:.8rem;font-size:.85rem}.workbook-live button{min-width:2rem}';

  document.querySelectorAll('div.workbook-live:not([data-ready])').forEach(function (box) {
    box.setAttribute('data-ready', '0');
    if (!document.getElementById('workbook-live-css')) {
      var st = el('style', {id: 'workbook-live-css'}, CSS); document.head.appendChild(st);
    }
    var cfg = JSON.parse(box.querySelector('script.workbook-live-config').textContent);
    var status = box.querySelector('.workbook-live-status'), t0 = performance.now(), queue = Promise.resolve();
    var live = box.live = {timings: {}, runs: 0, calls: []};
    live.run = function (session, feeds) {  // one session call at a time per playground
      var p = queue.then(function () {
        var t = performance.now();
        return session.run(feeds).then(function (o) { live.calls.push(performance.now() - t); return o; });
      });
      queue = p.catch(function () {});
      return p;
    };
    live.done = function () { live.runs += 1; box.setAttribute('data-runs', live.runs); };
    status.textContent = 'Loading the model into your browser\u2026';
    sessions(box).then(function (m) {
      live.timings.load_ms = performance.now() - t0;
      var img = box.querySelector('img.workbook-live-static');
      if (img) img.remove();
      status.textContent = 'Live: this runs in your browser (onnxruntime-web, WebAssembly), no server.';
      return KINDS[box.getAttribute('data-kind')](box, cfg, m, live);
    }).then(function () {
      live.timings.ready_ms = performance.now() - t0;
      box.setAttribute('data-ready', '1');
    }).catch(function (err) {
      status.textContent = 'The live version could not start here (' + err.message + '); the figure is static.';
      box.setAttribute('data-ready', 'failed');
      console.warn('workbook-live:', err);
    });
  });
})();
