/* Sketch2Fashion drawing page: plain JS, no build step, no external URLs.
 *
 * The canvas holds what the server receives: black lines and solid colour hints on white.
 * The server splits ink from hints by chroma (imaging/hints.py split_sketch), so every mark is
 * stamped with fillRect on whole pixels: no anti-aliasing, hint colours stay exact, lines stay
 * pure black. The drawing is a list of actions (strokes, uploads, examples, clears) replayed
 * on undo/redo.
 */
"use strict";

(() => {
  const SIZE = 512;            // canvas pixels (the sketch is sent at this size)
  const MODEL_PX = 2;          // canvas pixels per pixel of the colorizer's 256-px input
  const DOT_RADIUS = 7;        // hint dots: 3-4 model px, like the training hints
  const BRUSH_RADIUS = 5;
  const ERASER_RADIUS = 14;
  const TOP_K = 8;
  const LIVE_DELAY_MS = 700;
  const MIN_CHROMA = 48;       // split_sketch: a pixel with at least this chroma is a hint
  const INK_GREY = 160;        // split_sketch: a grey-ish pixel darker than this is ink
  const MIN_INK_PIXELS = 30;
  const MODELS_POLL_MS = 10000; // while a category is still training, how often the page asks again
  const MODELS_RETRY_MS = 3000; // after /models failed (a server still starting): ask again this soon
  const MODELS_ERROR = "Could not load the list of garments";
  const GAP_RING = 0.035;       // radius of the ring round an open stroke end, share of the canvas

  const PALETTE = [
    ["Red", "#e02424"], ["Orange", "#f97316"], ["Yellow", "#facc15"], ["Green", "#16a34a"],
    ["Teal", "#0d9488"], ["Blue", "#2563eb"], ["Navy", "#1e3a8a"], ["Purple", "#7e22ce"],
    ["Pink", "#ec4899"], ["Brown", "#92400e"],
  ];

  // Example sketches as path data on a 0..1 square: outlines (pen) and hint dots.
  const EXAMPLES = [
    {
      name: "T-shirt", category: "top",
      lines: [[[0.38, 0.17], [0.42, 0.22], [0.5, 0.245], [0.58, 0.22], [0.62, 0.17], [0.8, 0.24],
               [0.93, 0.4], [0.82, 0.47], [0.74, 0.39], [0.74, 0.85], [0.26, 0.85], [0.26, 0.39],
               [0.18, 0.47], [0.07, 0.4], [0.2, 0.24], [0.38, 0.17]]],
      dots: [["#e02424", 0.5, 0.55], ["#e02424", 0.38, 0.72]],
    },
    {
      name: "Trousers", category: "pants",
      lines: [[[0.3, 0.13], [0.7, 0.13], [0.75, 0.88], [0.56, 0.88], [0.5, 0.36], [0.44, 0.88],
               [0.25, 0.88], [0.3, 0.13]], [[0.3, 0.19], [0.7, 0.19]]],
      dots: [["#1e3a8a", 0.37, 0.55], ["#1e3a8a", 0.63, 0.55]],
    },
    {
      name: "Skirt", category: "skirt",
      lines: [[[0.35, 0.22], [0.65, 0.22], [0.8, 0.76], [0.65, 0.8], [0.5, 0.81], [0.35, 0.8],
               [0.2, 0.76], [0.35, 0.22]], [[0.35, 0.27], [0.65, 0.27]]],
      dots: [["#16a34a", 0.5, 0.52]],
    },
    {
      name: "Hat", category: "hat",
      lines: [ellipse(0.5, 0.6, 0.38, 0.07, 0, 360), ellipse(0.5, 0.6, 0.22, 0.3, 180, 360)],
      dots: [["#facc15", 0.5, 0.45]],
    },
  ];

  function ellipse(cx, cy, rx, ry, fromDeg, toDeg) {
    const points = [];
    for (let a = fromDeg; a <= toDeg; a += 10) {
      const t = (a * Math.PI) / 180;
      points.push([cx + rx * Math.cos(t), cy + ry * Math.sin(t)]);
    }
    return points;
  }

  const $ = (id) => document.getElementById(id);
  const canvas = $("sketch");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.imageSmoothingEnabled = false;

  const state = {
    tool: "pen",
    penWidth: 2,
    colour: PALETTE[0][1],
    actions: [],
    redo: [],
    current: null,       // the stroke being drawn: {pointerId, stroke, last}
    seq: 0,              // request counter: only the newest answer is shown
    controller: null,
    liveTimer: null,
    categories: [],
    models: {},          // category -> its /models row (version, training progress)
    modelsTimer: null,
  };

  // -- stamping: whole-pixel fills only ---------------------------------------------------------
  function fillDisc(cx, cy, r) {
    const x0 = Math.round(cx);
    const y0 = Math.round(cy);
    for (let dy = -r; dy <= r; dy++) {
      const half = Math.floor(Math.sqrt(r * r - dy * dy));
      ctx.fillRect(x0 - half, y0 + dy, 2 * half + 1, 1);
    }
  }

  function fillSquare(cx, cy, side) {
    const offset = Math.floor(side / 2);
    ctx.fillRect(Math.round(cx) - offset, Math.round(cy) - offset, side, side);
  }

  function stamp(stroke, x, y) {
    ctx.fillStyle = stroke.colour;
    if (stroke.shape === "square") fillSquare(x, y, stroke.size);
    else fillDisc(x, y, stroke.size);
  }

  function segment(stroke, a, b) {
    const step = Math.max(0.5, stroke.size / 2);
    const n = Math.max(1, Math.ceil(Math.hypot(b[0] - a[0], b[1] - a[1]) / step));
    for (let i = 1; i <= n; i++) {
      stamp(stroke, a[0] + ((b[0] - a[0]) * i) / n, a[1] + ((b[1] - a[1]) * i) / n);
    }
  }

  function drawStroke(stroke) {
    const pts = stroke.points;
    stamp(stroke, pts[0][0], pts[0][1]);
    for (let i = 1; i < pts.length; i++) segment(stroke, pts[i - 1], pts[i]);
  }

  function makeStroke(tool, point) {
    switch (tool) {
      case "pen": return { kind: "stroke", tool, colour: "#000000", shape: "square", size: state.penWidth * MODEL_PX, points: [point] };
      case "brush": return { kind: "stroke", tool, colour: state.colour, shape: "disc", size: BRUSH_RADIUS, points: [point] };
      case "dot": return { kind: "stroke", tool, colour: state.colour, shape: "disc", size: DOT_RADIUS, points: [point] };
      default: return { kind: "stroke", tool: "eraser", colour: "#ffffff", shape: "disc", size: ERASER_RADIUS, points: [point] };
    }
  }

  function paper() {
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, SIZE, SIZE);
  }

  function apply(action) {
    if (action.kind === "stroke") drawStroke(action);
    else if (action.kind === "clear") paper();
    else if (action.kind === "group") action.actions.forEach(apply);
    else if (action.kind === "image") {
      const [x, y, w, h] = action.rect;
      ctx.imageSmoothingEnabled = action.smooth; // shrinking needs smoothing or thin lines vanish
      ctx.imageSmoothingQuality = "high";
      ctx.drawImage(action.image, x, y, w, h);
      ctx.imageSmoothingEnabled = false;
    }
  }

  function render() {
    paper();
    state.actions.forEach(apply);
  }

  // -- history ----------------------------------------------------------------------------------
  function commit(action) {
    state.actions.push(action);
    state.redo = [];
    changed();
  }

  function undo() {
    if (!state.actions.length) return;
    state.redo.push(state.actions.pop());
    render();
    changed();
  }

  function redo() {
    if (!state.redo.length) return;
    const action = state.redo.pop();
    state.actions.push(action);
    apply(action);
    changed();
  }

  function clearDrawing() {
    if (!state.actions.length || state.actions[state.actions.length - 1].kind === "clear") return;
    paper();
    commit({ kind: "clear" });
  }

  function changed() {
    clearGaps();
    $("undo").disabled = state.actions.length === 0;
    $("redo").disabled = state.redo.length === 0;
    $("clear").disabled = state.actions.length === 0;
    updateGuide();
    scheduleLive();
  }

  // -- what is on the canvas --------------------------------------------------------------------
  function inspect() {
    const data = ctx.getImageData(0, 0, SIZE, SIZE).data;
    let ink = 0;
    let hints = 0;
    for (let i = 0; i < data.length; i += 4) {
      const r = data[i], g = data[i + 1], b = data[i + 2];
      const chroma = Math.max(r, g, b) - Math.min(r, g, b);
      if (chroma >= MIN_CHROMA) hints++;
      else if (0.299 * r + 0.587 * g + 0.114 * b < INK_GREY) ink++;
    }
    return { ink: ink >= MIN_INK_PIXELS, hints: hints > 0 };
  }

  function updateGuide() {
    const seen = inspect();
    let words;
    if (!seen.ink) words = "Start with the black pen: draw the outline of a garment.";
    else if (!seen.hints) words = "Now pick a colour and tap a dot inside the outline, or press Colorize & search as it is.";
    else words = "Ready: press Colorize & search. Add more dots or strokes to change the colours.";
    $("guide").textContent = words;
  }

  // -- pointer input (mouse, pen, touch) --------------------------------------------------------
  function toCanvas(event) {
    const box = canvas.getBoundingClientRect();
    const x = ((event.clientX - box.left) * SIZE) / box.width;
    const y = ((event.clientY - box.top) * SIZE) / box.height;
    return [Math.min(SIZE - 1, Math.max(0, x)), Math.min(SIZE - 1, Math.max(0, y))];
  }

  canvas.addEventListener("pointerdown", (event) => {
    if (state.current || (event.pointerType === "mouse" && event.button !== 0)) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    const point = toCanvas(event);
    const tool = event.pointerType === "pen" && event.button === 5 ? "eraser" : state.tool; // pen's eraser end
    const stroke = makeStroke(tool, point);
    stamp(stroke, point[0], point[1]);
    state.current = { pointerId: event.pointerId, stroke };
    canvas.dataset.drawing = "true";
  });

  canvas.addEventListener("pointermove", (event) => {
    const current = state.current;
    if (!current || event.pointerId !== current.pointerId || current.stroke.tool === "dot") return;
    event.preventDefault();
    const events = (event.getCoalescedEvents && event.getCoalescedEvents()) || [];
    for (const e of events.length ? events : [event]) {
      const point = toCanvas(e);
      const pts = current.stroke.points;
      segment(current.stroke, pts[pts.length - 1], point);
      pts.push(point);
    }
  });

  function endStroke(event) {
    const current = state.current;
    if (!current || event.pointerId !== current.pointerId) return;
    state.current = null;
    delete canvas.dataset.drawing;
    if (canvas.hasPointerCapture(event.pointerId)) canvas.releasePointerCapture(event.pointerId);
    commit(current.stroke);
  }

  canvas.addEventListener("pointerup", endStroke);
  canvas.addEventListener("pointercancel", endStroke);
  canvas.addEventListener("lostpointercapture", endStroke);
  canvas.addEventListener("contextmenu", (event) => event.preventDefault());

  // -- tools and colours ------------------------------------------------------------------------
  const toolButtons = Array.from(document.querySelectorAll("button.tool"));

  function setTool(tool) {
    state.tool = tool;
    for (const button of toolButtons) button.setAttribute("aria-pressed", String(button.dataset.tool === tool));
    canvas.dataset.tool = tool;
  }

  toolButtons.forEach((button) => button.addEventListener("click", () => setTool(button.dataset.tool)));
  $("pen-width").addEventListener("change", (event) => {
    state.penWidth = Number(event.target.value);
    setTool("pen");
  });

  function chromaOf(hex) {
    const n = parseInt(hex.slice(1), 16);
    const rgb = [(n >> 16) & 255, (n >> 8) & 255, n & 255];
    return Math.max(...rgb) - Math.min(...rgb);
  }

  function setColour(hex, swatch) {
    state.colour = hex;
    document.documentElement.style.setProperty("--hint", hex);
    for (const button of document.querySelectorAll(".swatch")) button.setAttribute("aria-pressed", String(button === swatch));
    $("custom-colour").parentElement.classList.toggle("chosen", !swatch);
    if (state.tool === "pen" || state.tool === "eraser") setTool("dot"); // a colour is for dots
    const warning = $("colour-warning");
    const weak = chromaOf(hex) < MIN_CHROMA;
    warning.hidden = !weak;
    warning.textContent = weak
      ? "This colour is too close to grey, black or white to be read as a colour hint: pick a stronger one."
      : "";
  }

  const palette = $("palette");
  for (const [name, hex] of PALETTE) {
    const swatch = document.createElement("button");
    swatch.type = "button";
    swatch.className = "swatch";
    swatch.style.background = hex;
    swatch.setAttribute("aria-label", name);
    swatch.setAttribute("aria-pressed", String(hex === state.colour));
    swatch.title = name;
    swatch.addEventListener("click", () => setColour(hex, swatch));
    palette.appendChild(swatch);
  }
  $("custom-colour").addEventListener("input", (event) => setColour(event.target.value, null));

  $("undo").addEventListener("click", undo);
  $("redo").addEventListener("click", redo);
  $("clear").addEventListener("click", clearDrawing);

  document.addEventListener("keydown", (event) => {
    if (!(event.ctrlKey || event.metaKey) || event.altKey) return;
    const target = event.target;
    if (target instanceof HTMLInputElement && target.type === "text") return; // the text box's own undo
    const key = event.key.toLowerCase();
    if (key === "z" && !event.shiftKey) { event.preventDefault(); undo(); }
    else if ((key === "z" && event.shiftKey) || (key === "y" && !event.shiftKey)) { event.preventDefault(); redo(); }
  });

  // -- examples and uploads ---------------------------------------------------------------------
  function exampleActions(example) {
    const pen = (points) => ({ kind: "stroke", tool: "pen", colour: "#000000", shape: "square", size: 2 * MODEL_PX,
                               points: points.map(([x, y]) => [x * SIZE, y * SIZE]) });
    const dot = ([colour, x, y]) => ({ kind: "stroke", tool: "dot", colour, shape: "disc", size: DOT_RADIUS,
                                       points: [[x * SIZE, y * SIZE]] });
    return [{ kind: "clear" }, ...example.lines.map(pen), ...example.dots.map(dot)];
  }

  function thumbnail(example) {
    const side = 44;
    const thumb = document.createElement("canvas");
    thumb.width = side;
    thumb.height = side;
    thumb.setAttribute("aria-hidden", "true");
    const c = thumb.getContext("2d");
    c.fillStyle = "#fff";
    c.fillRect(0, 0, side, side);
    c.strokeStyle = "#111";
    c.lineWidth = 1.5;
    for (const line of example.lines) {
      c.beginPath();
      line.forEach(([x, y], i) => (i ? c.lineTo(x * side, y * side) : c.moveTo(x * side, y * side)));
      c.stroke();
    }
    for (const [colour, x, y] of example.dots) {
      c.fillStyle = colour;
      c.beginPath();
      c.arc(x * side, y * side, 3, 0, 2 * Math.PI);
      c.fill();
    }
    return thumb;
  }

  for (const example of EXAMPLES) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "example";
    button.setAttribute("aria-label", `Example sketch: ${example.name}`);
    button.append(thumbnail(example), document.createTextNode(example.name));
    button.addEventListener("click", () => {
      const group = { kind: "group", actions: exampleActions(example) };
      apply(group);
      if (state.categories.includes(example.category)) $("category").value = example.category;
      commit(group);
    });
    $("examples").appendChild(button);
  }

  $("upload").addEventListener("change", (event) => {
    const file = event.target.files && event.target.files[0];
    event.target.value = ""; // choosing the same file again still fires
    if (!file) return;
    const url = URL.createObjectURL(file);
    const image = new Image();
    image.onload = () => {
      URL.revokeObjectURL(url);
      const scale = Math.min(SIZE / image.naturalWidth, SIZE / image.naturalHeight);
      const w = Math.round(image.naturalWidth * scale);
      const h = Math.round(image.naturalHeight * scale);
      const group = { kind: "group", actions: [{ kind: "clear" },
        { kind: "image", image, rect: [Math.floor((SIZE - w) / 2), Math.floor((SIZE - h) / 2), w, h], smooth: scale < 1 }] };
      apply(group);
      commit(group);
      hideError();
    };
    image.onerror = () => {
      URL.revokeObjectURL(url);
      showError(`"${file.name}" is not an image this browser can read: upload a PNG or JPEG drawing.`);
    };
    image.src = url;
  });

  // -- categories -------------------------------------------------------------------------------
  function label(category) {
    return category.charAt(0).toUpperCase() + category.slice(1).replace(/_/g, " ");
  }

  function optionLabel(row) {
    if (row.version != null) return label(row.category);
    const training = row.training;
    if (training && training.state === "training") {
      return `${label(row.category)} (still training: epoch ${training.epoch} of ${training.epochs})`;
    }
    return `${label(row.category)} (no model yet)`;
  }

  function stillTraining(category) {
    const row = state.models[category];
    return row && row.version == null;
  }

  async function loadCategories() {
    const select = $("category");
    try {
      const response = await fetch("models", { headers: { Accept: "application/json" } });
      const body = await response.json().catch(() => null);
      if (!response.ok || !body || !Array.isArray(body.models)) {
        throw new Error((body && body.error) || `the server answered ${response.status}`);
      }
      const rows = body.models;
      const first = state.categories.length === 0;
      state.categories = rows.map((row) => row.category);
      const auto = select.querySelector('option[value="auto"]');
      for (const row of rows) {
        state.models[row.category] = row;
        let option = select.querySelector(`option[value="${CSS.escape(row.category)}"]`);
        if (!option) {
          option = document.createElement("option");
          option.value = row.category;
          select.insertBefore(option, auto);
        }
        option.textContent = optionLabel(row);
      }
      const ready = rows.find((row) => row.version != null);
      if (first && ready) select.value = ready.category;
      if ($("error").textContent.startsWith(MODELS_ERROR)) hideError();
      clearTimeout(state.modelsTimer);
      if (rows.some((row) => row.version == null)) state.modelsTimer = setTimeout(loadCategories, MODELS_POLL_MS);
    } catch (error) {
      showError(`${MODELS_ERROR} (${error.message}); trying again. You can still try "Auto-detect".`);
      clearTimeout(state.modelsTimer);
      state.modelsTimer = setTimeout(loadCategories, MODELS_RETRY_MS);
    }
  }

  // -- where the outline is still open --------------------------------------------------------------
  function clearGaps() {
    $("gap-marks").replaceChildren();
    $("gap-warning").hidden = true;
  }

  function showGaps(openEnds) {
    clearGaps();
    if (!Array.isArray(openEnds) || openEnds.length === 0) return;
    const svg = $("gap-marks");
    for (const [x, y] of openEnds) {
      const ring = document.createElementNS("http://www.w3.org/2000/svg", "circle");
      ring.setAttribute("cx", String(x));
      ring.setAttribute("cy", String(y));
      ring.setAttribute("r", String(GAP_RING));
      svg.appendChild(ring);
    }
    const where = openEnds.length === 1 ? "at the ringed spot" : "at the ringed spots";
    $("gap-warning").textContent = `Your outline is open ${where}: close it with the pen so the colour stays inside the garment.`;
    $("gap-warning").hidden = false;
  }

  // -- asking the server ------------------------------------------------------------------------
  function showError(message) {
    const box = $("error");
    box.textContent = message;
    box.hidden = false;
  }

  function hideError() {
    $("error").hidden = true;
    $("error").textContent = "";
  }

  function setBusy(busy, words) {
    $("status").hidden = !busy;
    if (words) $("status-text").textContent = words;
    $("result").setAttribute("aria-busy", String(busy));
  }

  function sentence(text) {
    const s = String(text).trim();
    return s ? s.charAt(0).toUpperCase() + s.slice(1) + (/[.!?]$/.test(s) ? "" : ".") : s;
  }

  function scheduleLive() {
    clearTimeout(state.liveTimer);
    if ($("live").checked) state.liveTimer = setTimeout(() => ask(true), LIVE_DELAY_MS);
  }

  async function ask(live) {
    clearTimeout(state.liveTimer);
    if (state.current) return; // mid-stroke: the stroke's end asks again
    if (!inspect().ink) {
      if (!live) showError("Draw an outline first: use the black pen to draw the garment's shape, then tap colour dots inside it.");
      return;
    }
    hideError();
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
    const form = new FormData();
    form.append("sketch", blob, "sketch.png");
    form.append("category", $("category").value);
    const text = $("text").value.trim();
    if (text) form.append("text", text);
    form.append("top_k", String(TOP_K));
    form.append("format", "jpeg"); // a tenth of a lossless PNG's bytes, for a preview redrawn as the shopper draws

    if (state.controller) state.controller.abort();
    const controller = new AbortController();
    state.controller = controller;
    const seq = ++state.seq;
    const started = performance.now();
    setBusy(true, "Colorizing your sketch and searching the shops\u2026");
    let response;
    let body = null;
    try {
      response = await fetch("colorize_and_search", { method: "POST", body: form, signal: controller.signal });
      body = await response.json().catch(() => null);
    } catch (error) {
      if (seq !== state.seq) return; // replaced by a newer request
      setBusy(false);
      showError(`Could not reach the server (${error.message}). Check the connection and try again.`);
      return;
    }
    if (seq !== state.seq) return;
    state.controller = null;
    setBusy(false);
    if (!response.ok || !body || body.error) {
      const asked = form.get("category");
      if (response.status === 503 && asked !== "auto" && stillTraining(asked)) {
        const training = state.models[asked].training;
        const how = training && training.state === "training" ? ` (epoch ${training.epoch} of ${training.epochs})` : "";
        showError(`The ${label(asked).toLowerCase()} colorizer is still training${how}. Pick another garment, or try again in a minute.`);
        return;
      }
      const why = body && body.error ? sentence(body.error) : `The server answered ${response.status} ${response.statusText}.`;
      if (response.status === 503 && (await garmentAlone(blob, asked, seq, started, why))) {
        if (!live) revealResult();
        return;
      }
      showError(response.status >= 500 ? `The server could not finish: ${why}` : why);
      return;
    }
    showResult(body, (performance.now() - started) / 1000);
    if (!live) revealResult();
  }

  // The search could not answer (the catalog is still being indexed while `make demo` runs, or is
  // busy): the garment alone is still worth showing, with the reason where the products would be.
  async function garmentAlone(blob, category, seq, started, why) {
    const form = new FormData();
    form.append("sketch", blob, "sketch.png");
    form.append("category", category);
    form.append("format", "jpeg");
    try {
      const response = await fetch("colorize", { method: "POST", body: form });
      if (seq !== state.seq || !response.ok) return false;
      const bytes = new Uint8Array(await response.arrayBuffer());
      let binary = "";
      for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      const version = response.headers.get("X-S2F-Model-Version");
      showResult({ image: btoa(binary), image_type: response.headers.get("Content-Type") || "image/jpeg",
                   category: response.headers.get("X-S2F-Category") || category,
                   model_version: version && version !== "None" ? version : null, products: [], open_ends: [] },
                 (performance.now() - started) / 1000);
      $("products-empty").textContent = `No products to show yet: ${why}`;
      return true;
    } catch (_) {
      return false;
    }
  }

  function revealResult() {
    const box = $("result").getBoundingClientRect();
    if (box.top > window.innerHeight || box.bottom < 0) {
      $("result").scrollIntoView({ behavior: "smooth", block: "start" });
    }
  }

  function showResult(body, seconds) {
    const photo = $("photo");
    photo.src = `data:${body.image_type || "image/png"};base64,${body.image}`;
    photo.alt = `Generated photo of your ${body.category} sketch`;
    photo.hidden = false;
    $("photo-placeholder").hidden = true;
    const version = body.model_version == null ? "unknown" : body.model_version;
    $("model-version").textContent = `${label(body.category)} colorizer, model version ${version} \u00b7 ${seconds.toFixed(1)} s`;
    showGaps(body.open_ends);
    showProducts(body.products || []);
  }

  function isWebUrl(value) {
    return typeof value === "string" && /^https?:\/\//i.test(value);
  }

  function price(product) {
    if (product.price == null) return "Price not listed";
    try {
      return new Intl.NumberFormat(navigator.language || "en", { style: "currency", currency: product.currency || "USD" }).format(product.price);
    } catch (_) {
      return `${product.price} ${product.currency || ""}`.trim();
    }
  }

  function showProducts(products) {
    const list = $("products");
    list.replaceChildren();
    $("products-empty").hidden = products.length > 0;
    $("products-empty").textContent = products.length ? "" : "No products in the catalog look like this yet.";
    for (const product of products) {
      const card = document.createElement("li");
      card.className = "card";
      const image = document.createElement("img");
      image.alt = "";
      image.loading = "lazy";
      image.decoding = "async";
      image.src = isWebUrl(product.image_link) ? product.image_link : `catalog/images/${encodeURIComponent(product.id)}`;
      image.addEventListener("error", () => image.classList.add("missing"), { once: true });
      const title = document.createElement("span");
      title.className = "title";
      title.textContent = product.title || product.id;
      const cost = document.createElement("span");
      cost.className = "price";
      cost.textContent = price(product);
      let body;
      if (isWebUrl(product.link)) {
        body = document.createElement("a");
        body.href = product.link;
        body.target = "_blank";
        body.rel = "noopener";
        const shop = document.createElement("span");
        shop.className = "shop";
        shop.textContent = "View in shop";
        const hint = document.createElement("span");
        hint.className = "sr-only";
        hint.textContent = " (opens in a new tab)";
        body.append(image, title, cost, shop, hint);
      } else {
        body = document.createElement("div");
        body.append(image, title, cost);
      }
      body.classList.add("card-body");
      card.appendChild(body);
      list.appendChild(card);
    }
  }

  $("ask").addEventListener("submit", (event) => {
    event.preventDefault();
    ask(false);
  });
  $("live").addEventListener("change", scheduleLive);
  $("category").addEventListener("change", scheduleLive);
  $("text").addEventListener("input", scheduleLive);

  // -- start ------------------------------------------------------------------------------------
  paper();
  setTool("pen");
  changed();
  loadCategories();
})();
