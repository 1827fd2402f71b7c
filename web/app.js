/* app.js - the ganedit page's behaviour, in plain JavaScript.
 *
 * The server does all the work (see docs/web.md for the API); this file keeps
 * the page's state, talks JSON to /api, follows each job's server-sent
 * events (progress, loss, a preview image per event), and runs the drawing
 * canvas. Drawing uses pointer events, so mouse, pen and touch go through
 * the same code; the scribble is its own transparent canvas over the image,
 * and its alpha is the mask the server optimises against.
 *
 * One job runs at a time from this page (buttons are disabled meanwhile);
 * the server queues jobs from every page that is open. */
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const state = {
    info: null,
    photo: null,      // {id, width, height}: the uploaded photo (projection target)
    current: null,    // result id shown under the scribble: the base of an edit
    results: [],      // [{id, kind, steps, loss, frames}] in gallery order
    a: null, b: null, // interpolation ends (result ids)
    interp: null,     // {id, frames, strip: Image}
    job: null,        // {id, kind, es, done}
    strokes: 0,       // strokes drawn since the last clear (for enabling buttons)
  };
  window.ganeditState = state; // read by the browser test and handy in the console

  /* ---- HTTP ---- */

  async function api(path, opts = {}) {
    const r = await fetch(path, opts);
    let body = null;
    const type = r.headers.get('Content-Type') || '';
    if (type.startsWith('application/json')) body = await r.json();
    if (!r.ok) {
      const err = new Error((body && body.error) || `HTTP ${r.status}`);
      err.status = r.status;
      err.retryAfter = Number(r.headers.get('Retry-After')) || 0;
      throw err;
    }
    return body;
  }

  const postJSON = (path, obj) => api(path, {
    method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(obj),
  });

  /* ---- status line ---- */

  function setStatus(text, error = false) {
    const s = $('status');
    s.textContent = text;
    s.classList.toggle('error', error);
  }

  function fmtLoss(loss) {
    if (!loss) return '';
    const parts = [];
    for (const k of ['total', 'pixel', 'perceptual', 'reg']) {
      if (loss[k] !== null && loss[k] !== undefined && (k === 'total' || loss[k] > 0))
        parts.push(`${k} ${Number(loss[k]).toPrecision(4)}`);
    }
    return parts.join(' · ');
  }

  /* ---- the drawing stage ---- */

  const base = $('base'), scr = $('scribble'), stage = $('stage');
  const bctx = base.getContext('2d', {willReadFrequently: true});
  const sctx = scr.getContext('2d', {willReadFrequently: true});
  const undo = [];
  const UNDO_MAX = 30;
  let tool = 'brush'; // 'brush' | 'eraser' | 'pick'
  let drawing = null; // {id, x, y}

  function showOnStage(url) {
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => {
        bctx.imageSmoothingEnabled = true;
        bctx.imageSmoothingQuality = 'high';
        bctx.clearRect(0, 0, base.width, base.height);
        bctx.drawImage(img, 0, 0, base.width, base.height);
        $('stage-empty').hidden = true;
        resolve();
      };
      img.onerror = () => reject(new Error('could not load ' + url));
      img.src = url;
    });
  }

  function stagePoint(ev) {
    const r = scr.getBoundingClientRect();
    return {x: (ev.clientX - r.left) * scr.width / r.width, y: (ev.clientY - r.top) * scr.height / r.height};
  }

  function pushUndo() {
    undo.push(sctx.getImageData(0, 0, scr.width, scr.height));
    if (undo.length > UNDO_MAX) undo.shift();
  }

  function setTool(t) {
    tool = tool === t ? 'brush' : t;
    $('eraser').classList.toggle('on', tool === 'eraser');
    $('pick').classList.toggle('on', tool === 'pick');
    stage.classList.toggle('picking', tool === 'pick');
  }

  function pickColour(p) {
    const x = Math.max(0, Math.min(base.width - 1, Math.round(p.x)));
    const y = Math.max(0, Math.min(base.height - 1, Math.round(p.y)));
    const d = bctx.getImageData(x, y, 1, 1).data;
    const hex = '#' + [d[0], d[1], d[2]].map((v) => v.toString(16).padStart(2, '0')).join('');
    $('color').value = hex;
    setTool('pick'); // back to the brush
  }

  function strokeTo(p) {
    sctx.save();
    sctx.globalCompositeOperation = tool === 'eraser' ? 'destination-out' : 'source-over';
    sctx.strokeStyle = $('color').value;
    sctx.fillStyle = $('color').value;
    sctx.lineWidth = Number($('size').value);
    sctx.lineCap = 'round';
    sctx.lineJoin = 'round';
    if (p.x === drawing.x && p.y === drawing.y) { // a dot
      sctx.beginPath();
      sctx.arc(p.x, p.y, sctx.lineWidth / 2, 0, 2 * Math.PI);
      sctx.fill();
    } else {
      sctx.beginPath();
      sctx.moveTo(drawing.x, drawing.y);
      sctx.lineTo(p.x, p.y);
      sctx.stroke();
    }
    sctx.restore();
    drawing.x = p.x;
    drawing.y = p.y;
  }

  scr.addEventListener('pointerdown', (ev) => {
    if (!ev.isPrimary || ev.button > 0) return;
    ev.preventDefault();
    const p = stagePoint(ev);
    if (tool === 'pick') { pickColour(p); return; }
    scr.setPointerCapture(ev.pointerId);
    pushUndo();
    drawing = {id: ev.pointerId, x: p.x, y: p.y};
    strokeTo(p);
  });
  scr.addEventListener('pointermove', (ev) => {
    if (!drawing || ev.pointerId !== drawing.id) return;
    ev.preventDefault();
    const evs = ev.getCoalescedEvents ? ev.getCoalescedEvents() : [ev];
    for (const e of (evs.length ? evs : [ev])) strokeTo(stagePoint(e));
  });
  const endStroke = (ev) => {
    if (!drawing || ev.pointerId !== drawing.id) return;
    drawing = null;
    state.strokes++;
    updateButtons();
  };
  scr.addEventListener('pointerup', endStroke);
  scr.addEventListener('pointercancel', endStroke);
  scr.addEventListener('contextmenu', (ev) => ev.preventDefault());

  $('eraser').onclick = () => setTool('eraser');
  $('pick').onclick = () => setTool('pick');
  $('undo').onclick = () => {
    const d = undo.pop();
    if (d) sctx.putImageData(d, 0, 0);
    state.strokes = Math.max(0, state.strokes - 1);
    updateButtons();
  };
  $('clear').onclick = () => {
    pushUndo();
    sctx.clearRect(0, 0, scr.width, scr.height);
    state.strokes = 0;
    updateButtons();
  };
  $('opacity').oninput = () => { scr.style.opacity = String(Number($('opacity').value) / 100); };
  $('opacity').oninput();

  function scribbleEmpty() {
    const d = sctx.getImageData(0, 0, scr.width, scr.height).data;
    for (let i = 3; i < d.length; i += 4) if (d[i]) return false;
    return true;
  }

  /* ---- uploads ---- */

  async function uploadBlob(blob) {
    return api('/api/images', {method: 'POST', body: blob,
      headers: {'Content-Type': blob.type || 'application/octet-stream'}});
  }

  async function usePhoto(blob, name) {
    setStatus(`uploading ${name}…`);
    try {
      const r = await uploadBlob(blob);
      state.photo = r;
      const url = `/api/images/${r.id}.png`;
      $('photo').src = url;
      $('photo-info').textContent = `${name}: ${r.width}×${r.height} → ${r.resolution}×${r.resolution}`;
      $('photo-box').hidden = false;
      await showOnStage(url);
      setStatus('photo ready: project it to get its latent');
    } catch (e) {
      setStatus(`upload failed: ${e.message}`, true);
    }
    updateButtons();
  }

  $('file').onchange = () => {
    const f = $('file').files[0];
    if (f) usePhoto(f, f.name);
    $('file').value = '';
  };
  stage.addEventListener('dragover', (ev) => { ev.preventDefault(); stage.classList.add('drop'); });
  stage.addEventListener('dragleave', () => stage.classList.remove('drop'));
  stage.addEventListener('drop', (ev) => {
    ev.preventDefault();
    stage.classList.remove('drop');
    const f = ev.dataTransfer.files[0];
    if (f) usePhoto(f, f.name);
  });

  /* ---- jobs ---- */

  function busy() { return state.job && !state.job.done; }

  function updateButtons() {
    const b = busy();
    $('project').disabled = b || !state.photo;
    $('mean').disabled = b;
    $('random').disabled = b;
    $('draw').disabled = b || state.strokes === 0;
    $('edit').disabled = b || state.strokes === 0 || !state.current;
    $('interpolate').disabled = b || !state.a || !state.b || state.a === state.b;
    $('cancel').disabled = !b;
  }

  function num(id, fallback) {
    const v = Number($(id).value);
    return Number.isFinite(v) ? v : fallback;
  }

  async function submit(body, label) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await postJSON('/api/jobs', body);
      } catch (e) {
        if (e.status === 429 && attempt < 60) {
          setStatus(`${label}: the queue is full, retrying…`);
          await new Promise((r) => setTimeout(r, 1000 * (e.retryAfter || 1)));
          continue;
        }
        throw e;
      }
    }
  }

  /* Submits a job and follows it to the end; resolves with the final job. */
  async function runJob(body, label) {
    let job;
    try {
      job = await submit(body, label);
    } catch (e) {
      setStatus(`${label}: ${e.message}`, true);
      return null;
    }
    state.job = {id: job.id, kind: body.kind, done: false, label, t0: performance.now()};
    updateButtons();
    $('progress').value = 0;
    $('loss').textContent = '';
    setStatus(`${label}: queued`);
    refreshInfo();
    const final = await new Promise((resolve) => {
      const es = new EventSource(`/api/jobs/${job.id}/events`);
      state.job.es = es;
      const onEvent = (ev) => {
        const j = JSON.parse(ev.data);
        showProgress(j, label);
        if (ev.type === 'done') { es.close(); resolve(j); }
      };
      es.addEventListener('progress', onEvent);
      es.addEventListener('done', onEvent);
      es.addEventListener('end', () => { es.close(); resolve({state: 'failed', error: 'the server is stopping'}); });
      es.onerror = async () => {
        if (es.readyState !== EventSource.CLOSED) return; // it reconnects by itself
        try { resolve(await api(`/api/jobs/${job.id}`)); } catch (e) { resolve({state: 'failed', error: e.message}); }
      };
    });
    state.job.done = true;
    updateButtons();
    refreshInfo();
    if (final.state === 'done') {
      const r = await api(`/api/results/${final.result}`);
      addResult(r, final);
      setStatus(`${label}: done in ${((performance.now() - state.job.t0) / 1000).toFixed(1)} s`);
    } else if (final.state === 'cancelled') {
      setStatus(`${label}: cancelled`);
    } else {
      setStatus(`${label} failed: ${final.error || 'unknown error'}`, true);
    }
    return final;
  }

  function showProgress(j, label) {
    if (j.preview) $('live').src = j.preview;
    $('progress').max = Math.max(1, j.steps);
    $('progress').value = j.step;
    if (j.state === 'queued') setStatus(`${label}: queued (position ${j.position})`);
    else if (j.state === 'running') setStatus(`${label}: step ${j.step} of ${j.steps}`);
    $('loss').textContent = fmtLoss(j.loss);
  }

  $('cancel').onclick = async () => {
    if (!busy()) return;
    try { await api(`/api/jobs/${state.job.id}`, {method: 'DELETE'}); } catch (e) { /* finished meanwhile */ }
  };

  /* ---- gallery ---- */

  function addResult(r, job) {
    state.results.push(r);
    if (r.kind === 'interpolate') { showInterpolation(r); return; }
    const fig = document.createElement('figure');
    fig.dataset.id = r.id;
    const img = document.createElement('img');
    img.src = `/api/results/${r.id}.png`;
    img.alt = `${r.kind} result`;
    img.title = 'make this the current image';
    img.onclick = () => setCurrent(r.id);
    const cap = document.createElement('figcaption');
    cap.textContent = `${r.kind}${r.steps > 1 ? ' · ' + r.steps + ' steps' : ''}` +
      (r.loss ? ` · ${Number(r.loss).toPrecision(3)}` : '');
    const acts = document.createElement('div');
    acts.className = 'acts';
    const ab = (which) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = which.toUpperCase();
      b.dataset.end = which;
      b.title = `interpolation end ${which.toUpperCase()}`;
      b.onclick = () => setEnd(which, r.id);
      return b;
    };
    const link = (text, href, name) => {
      const a = document.createElement('a');
      a.className = 'button';
      a.textContent = text;
      a.href = href;
      a.download = name;
      return a;
    };
    acts.append(ab('a'), ab('b'),
      link('PNG', `/api/results/${r.id}.png`, `ganedit_${r.kind}_${r.id.slice(0, 8)}.png`),
      link('.npy', `/api/results/${r.id}.npy`, `ganedit_${r.kind}_${r.id.slice(0, 8)}.npy`));
    fig.append(img, cap, acts);
    $('gallery').prepend(fig);
    $('live').src = `/api/results/${r.id}.png`;
    setCurrent(r.id);
    // new results become interpolation ends in turn, so two clicks make a morph
    if (!state.a) setEnd('a', r.id); else if (!state.b && state.a !== r.id) setEnd('b', r.id);
  }

  function setCurrent(id) {
    state.current = id;
    for (const f of $('gallery').children) f.classList.toggle('current', f.dataset.id === id);
    showOnStage(`/api/results/${id}.png`).catch((e) => setStatus(e.message, true));
    updateButtons();
  }

  function setEnd(which, id) {
    state[which] = id;
    $(`interp-${which}`).src = `/api/results/${id}.png`;
    for (const b of document.querySelectorAll(`.acts button[data-end="${which}"]`))
      b.classList.toggle('on', b.closest('figure').dataset.id === id);
    updateButtons();
  }

  /* ---- interpolation ---- */

  function showInterpolation(r) {
    const strip = new Image();
    strip.onload = () => {
      state.interp = {id: r.id, frames: r.frames, strip};
      $('t').max = String(r.frames - 1);
      $('t').value = '0';
      $('interp-box').hidden = false;
      drawFrame();
    };
    strip.src = `/api/results/${r.id}.png`;
  }

  function drawFrame() {
    const it = state.interp;
    if (!it) return;
    const k = Number($('t').value), R = it.strip.height;
    const c = $('interp').getContext('2d');
    c.imageSmoothingEnabled = true;
    c.imageSmoothingQuality = 'high';
    c.clearRect(0, 0, 256, 256);
    c.drawImage(it.strip, k * R, 0, R, R, 0, 0, 256, 256);
    $('t-label').textContent = `t = ${(k / (it.frames - 1)).toFixed(2)} (frame ${k + 1} of ${it.frames})`;
    $('frame-png').href = `/api/results/${it.id}.png?frame=${k}`;
    $('frame-png').download = `ganedit_interp_${it.id.slice(0, 8)}_${k}.png`;
    $('frame-npy').href = `/api/results/${it.id}.npy?frame=${k}`;
    $('frame-npy').download = `ganedit_interp_${it.id.slice(0, 8)}_${k}.npy`;
  }
  $('t').oninput = drawFrame;

  /* ---- the buttons ---- */

  $('mean').onclick = () => runJob({kind: 'sample', init: 'mean', seed: num('seed', 0)}, 'mean image');
  $('random').onclick = () => {
    const seed = num('seed', 0);
    $('seed').value = String(seed + 1); // the next click gives another sample
    return runJob({kind: 'sample', init: 'random', seed}, `sample ${seed}`);
  };
  $('project').onclick = () => runJob({kind: 'project', target: state.photo.id,
    steps: num('steps', 100), lr: num('lr', 0.02)}, 'projecting');

  async function scribbleJob(kind) {
    if (scribbleEmpty()) { setStatus('draw something first', true); return null; }
    setStatus('uploading the scribble…');
    let up;
    try {
      const blob = await new Promise((res) => scr.toBlob(res, 'image/png'));
      up = await uploadBlob(blob);
    } catch (e) {
      setStatus(`scribble upload failed: ${e.message}`, true);
      return null;
    }
    const body = {kind, scribble: up.id, steps: num('steps', 100), lr: num('lr', 0.02)};
    if (kind === 'edit') {
      body.base = state.current;
      body.keep = num('keep', 0.3);
    }
    return runJob(body, kind === 'edit' ? 'editing' : 'drawing');
  }
  $('draw').onclick = () => scribbleJob('draw');
  $('edit').onclick = () => scribbleJob('edit');
  $('interpolate').onclick = () => runJob({kind: 'interpolate', from: state.a, to: state.b,
    frames: num('frames', 16)}, 'interpolating');

  /* ---- start-up ---- */

  async function refreshInfo() {
    try {
      const info = await api('/api/info');
      state.info = info;
      $('queue').textContent = `queue ${info.queue}${info.running ? ' + 1 running' : ''}`;
      return info;
    } catch (e) {
      $('queue').textContent = 'server unreachable';
      return null;
    }
  }

  async function start() {
    const info = await refreshInfo();
    if (!info) { $('model').textContent = 'cannot reach the server'; return; }
    $('model').textContent = `${info.model} · ${info.arch} ${info.resolution}×${info.resolution} · ` +
      `latent ${info.space}${info.vgg ? '' : ' · no VGG (pixel loss only)'}`;
    $('steps').max = String(info.limits.max_steps);
    $('frames').max = String(info.limits.max_frames);
    for (const name of info.examples) {
      const img = document.createElement('img');
      img.src = `/api/examples/${encodeURIComponent(name)}`;
      img.alt = img.title = name;
      img.onclick = async () => {
        const blob = await (await fetch(img.src)).blob();
        usePhoto(blob, name);
      };
      $('examples').append(img);
    }
    updateButtons();
    setInterval(refreshInfo, 3000);
  }
  start();
})();
