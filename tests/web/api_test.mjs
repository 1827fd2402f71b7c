// api_test.mjs - the JSON API of `ganedit serve` under bad input: every
// malformed request (bad paths, broken HTTP, bad JSON, bad fields, bad or
// hostile images, oversized bodies, foreign Host/Origin) must get a 4xx and
// leave the server serving; plus the good paths (upload, project, results as
// PNG and .npy, event stream, cancel running and queued jobs, a full queue).
// Run: node tests/web/api_test.mjs   (GANEDIT_BIN picks the build)
import fs from 'node:fs';
import path from 'node:path';
import {
  check, failed, json, makePng, parseNpy, pngSize, postJSON, rawRequest, shared, sleep,
  startServer, upload, waitJob, followEvents,
} from './lib.mjs';

const photo = fs.readFileSync(path.join(shared, 'data', 'sketches', 'target_0.png'));
const srv = await startServer(['--max-queue', '2', '--max-steps', '2000', '--max-frames', '8',
  '--examples', path.join(shared, 'data', 'sketches')]);
const U = srv.url, port = srv.port;
console.log(`api_test: server ${U} (pid ${srv.pid})`);
let alive = 0;

async function stillServing() {
  const r = await json(`${U}api/info`);
  if (r.status === 200 && r.body && r.body.arch) alive++;
  return r.status === 200;
}

// A 4xx with a JSON error (when `isJson`), then the server still answers.
async function expect4xx(what, r, {status = null, isJson = true} = {}) {
  const ok = r.status >= 400 && r.status < 500 && (status === null || r.status === status);
  let body = r.body;
  if (isJson && body === undefined) body = null;
  if (isJson && Buffer.isBuffer(body)) { try { body = JSON.parse(body.toString()); } catch { body = null; } }
  const jsonOk = !isJson || (body && typeof body.error === 'string' && body.status === r.status);
  check(ok && jsonOk && await stillServing(),
    `${what} -> ${r.status}${status ? ` (want ${status})` : ''}${isJson ? (jsonOk ? ' JSON' : ' NOT JSON') : ''}`);
}

const raw = (line, extra = '') => rawRequest(port, `${line}\r\nHost: 127.0.0.1:${port}\r\n${extra}Connection: close\r\n\r\n`);
const hex32 = (c) => c.repeat(32);

console.log('static files and routing');
check((await json(U)).status === 200, 'GET / serves the page');
check((await json(`${U}app.js`)).status === 200, 'GET /app.js');
await expect4xx('GET /../../etc/passwd', await raw('GET /../../etc/passwd HTTP/1.1'), {status: 404});
await expect4xx('GET /%2e%2e/%2e%2e/etc/passwd', await raw('GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1'), {status: 404});
await expect4xx('GET /..%2fMakefile', await raw('GET /..%2fMakefile HTTP/1.1'), {status: 404});
await expect4xx('GET /web/index.html (no folders)', await raw('GET /web/index.html HTTP/1.1'), {status: 404});
await expect4xx('GET //etc/passwd', await raw('GET //etc/passwd HTTP/1.1'), {status: 404});
await expect4xx('GET /.gitignore', await raw('GET /.gitignore HTTP/1.1'), {status: 404});
await expect4xx('GET /api/examples/../../Makefile', await raw('GET /api/examples/../../Makefile HTTP/1.1'), {status: 404});
{
  const ex = await json(`${U}api/examples`);
  const one = await fetch(`${U}api/examples/target_0.png`);
  const same = Buffer.from(await one.arrayBuffer()).equals(photo);
  check(ex.status === 200 && ex.body.includes('target_0.png') && ex.body.includes('sketch_0.png') && same,
    `--examples lists ${ex.body.length} photos and serves them byte for byte`);
}
await expect4xx('GET /api/examples/nope.png', await json(`${U}api/examples/nope.png`), {status: 404});
await expect4xx('GET /api/nope', await json(`${U}api/nope`), {status: 404});
await expect4xx('PUT /api/jobs', await json(`${U}api/jobs`, {method: 'PUT', body: '{}'}), {status: 405});
await expect4xx('GET /api/jobs', await json(`${U}api/jobs`), {status: 405});
await expect4xx('DELETE /api/info', await json(`${U}api/info`, {method: 'DELETE'}), {status: 405});
await expect4xx('POST /', await json(U, {method: 'POST', body: 'x'}), {status: 405});
await expect4xx('GET /api/images (upload is POST)', await json(`${U}api/images`), {status: 405});

console.log('HTTP syntax and headers');
await expect4xx('unknown method', await raw('BREW /api/info HTTP/1.1'), {status: 405});
await expect4xx('request line without a version', await rawRequest(port, 'GET /\r\n\r\n'), {isJson: false});
{
  // well-formed but unsupported: the standard answer is 505, and the server goes on
  const r = await raw('GET / HTTP/7.0');
  check(r.status === 505 && await stillServing(), `HTTP/7.0 -> ${r.status} (505 Version Not Supported)`);
}
await expect4xx('HTTP/1.1 without Host', await rawRequest(port, 'GET /api/info HTTP/1.1\r\nConnection: close\r\n\r\n'), {isJson: false});
await expect4xx('100 kB URL', await raw(`GET /${'a'.repeat(100000)} HTTP/1.1`), {isJson: false});
await expect4xx('header of 100 kB', await raw('GET /api/info HTTP/1.1', `X-Big: ${'b'.repeat(100000)}\r\n`), {isJson: false});
await expect4xx('Host: evil.example (DNS rebinding)', await rawRequest(port,
  'GET /api/info HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n'), {status: 403});
await expect4xx('POST with a foreign Origin', await rawRequest(port,
  `POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nOrigin: http://evil.example\r\nContent-Type: application/json\r\nContent-Length: 17\r\nConnection: close\r\n\r\n{"kind":"sample"}`), {status: 403});
await expect4xx('bad Content-Length', await raw('POST /api/jobs HTTP/1.1', 'Content-Length: 12abc\r\n'), {isJson: false});

console.log('uploads');
await expect4xx('empty upload', await upload(U, Buffer.alloc(0)), {status: 400});
await expect4xx('text upload', await upload(U, Buffer.from('hello, not an image'), 'text/plain'), {status: 415});
await expect4xx('PNG magic only', await upload(U, photo.subarray(0, 8)), {status: 400});
await expect4xx('truncated PNG', await upload(U, photo.subarray(0, Math.floor(photo.length / 2))), {status: 400});
const corrupt = Buffer.from(photo);
for (let i = 60; i < corrupt.length - 20; i += 7) corrupt[i] ^= 0x5a;
await expect4xx('corrupted PNG data', await upload(U, corrupt), {status: 400});
await expect4xx('PNG claiming 100000x100000', await upload(U, makePng(1, 1, new Uint8Array(4),
  {declaredW: 100000, declaredH: 100000, noData: true})), {status: 413});
await expect4xx('PNG claiming 2^31 x 1', await upload(U, makePng(1, 1, new Uint8Array(4),
  {declaredW: 0x80000000, declaredH: 1, noData: true})), {status: 400});
await expect4xx('JPEG claiming 65535x65535', await upload(U, Buffer.from([0xff, 0xd8, 0xff, 0xc0, 0x00, 0x11, 0x08,
  0xff, 0xff, 0xff, 0xff, 0x03, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, 0xff, 0xd9]), 'image/jpeg'), {status: 413});
await expect4xx('JPEG without a frame header', await upload(U, Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04,
  0x4a, 0x46, 0x12, 0x34, 0x56]), 'image/jpeg'), {status: 400});
await expect4xx('JPEG 64x64 with garbage data', await upload(U, Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xc0,
  0x00, 0x11, 0x08, 0, 64, 0, 64, 0x03, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]), Buffer.alloc(300, 0x77)]), 'image/jpeg'),
  {status: 400});
// refused from the headers alone: the body is never read (hence Expect: 100-continue, as curl sends)
await expect4xx('9 MB upload (Content-Length)', await rawRequest(port, `POST /api/images HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
  `Content-Type: image/png\r\nContent-Length: ${9 << 20}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`), {status: 413});
{
  // chunked: no Content-Length, the cap is counted as the body arrives
  const piece = Buffer.alloc(1 << 20, 7);
  const parts = [`POST /api/images HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`];
  for (let i = 0; i < 9; i++) parts.push(`${piece.length.toString(16)}\r\n`, piece, '\r\n');
  parts.push('0\r\n\r\n');
  await expect4xx('9 MB chunked upload', await rawRequest(port, parts), {status: 413});
}
await expect4xx('GET unknown image', await json(`${U}api/images/${hex32('a')}.png`), {status: 404});
await expect4xx('GET image with a bad id', await json(`${U}api/images/xyz.png`), {status: 404});

const up = await upload(U, photo);
check(up.status === 201 && up.body.id && up.body.width === 64 && !up.body.alpha, `upload a 64x64 photo -> ${up.status}`);
const pid = up.body.id;
{
  const r = await fetch(`${U}api/images/${pid}.png`);
  const b = Buffer.from(await r.arrayBuffer());
  const sz = pngSize(b);
  check(r.status === 200 && sz && sz.w === 64 && sz.h === 64, 'the upload reads back as a 64x64 PNG');
}
// scribbles: one fully transparent, one with a painted square
const empty = makePng(64, 64, new Uint8Array(64 * 64 * 4));
const paint = new Uint8Array(64 * 64 * 4);
for (let y = 10; y < 30; y++) for (let x = 10; x < 30; x++) paint.set([40, 60, 220, 255], 4 * (y * 64 + x));
const emptyId = (await upload(U, empty)).body.id;
const scrUp = await upload(U, makePng(64, 64, paint));
check(scrUp.status === 201 && scrUp.body.alpha === true, 'upload an RGBA scribble (alpha kept)');
const scrId = scrUp.body.id;

console.log('job requests');
const bad = [
  ['empty body', ''], ['broken JSON', '{'], ['array', '[]'], ['null', 'null'], ['a string', '"project"'],
  ['trailing data', '{"kind":"sample"} x'], ['no kind', '{}'], ['unknown kind', {kind: 'nope'}],
  ['kind not a string', {kind: 5}], ['unknown field', {kind: 'sample', colour: 'red'}],
  ['project without target', {kind: 'project'}], ['target not an id', {kind: 'project', target: 'xyz'}],
  ['target ../../etc/passwd', {kind: 'project', target: '../../../../../../etc/passwd'}],
  ['target a number', {kind: 'project', target: 12}],
  ['steps 0', {kind: 'project', target: pid, steps: 0}], ['steps -5', {kind: 'project', target: pid, steps: -5}],
  ['steps 10^9', {kind: 'project', target: pid, steps: 1e9}], ['steps 2001 (cap)', {kind: 'project', target: pid, steps: 2001}],
  ['steps "10"', {kind: 'project', target: pid, steps: '10'}], ['steps 10.5', {kind: 'project', target: pid, steps: 10.5}],
  ['steps 1e400', '{"kind":"project","target":"' + pid + '","steps":1e400}'],
  ['steps 2^70', '{"kind":"project","target":"' + pid + '","steps":1180591620717411303424}'],
  ['lr 0', {kind: 'project', target: pid, lr: 0}], ['lr -1', {kind: 'project', target: pid, lr: -1}],
  ['lr 1e9', {kind: 'project', target: pid, lr: 1e9}], ['lr null', {kind: 'project', target: pid, lr: null}],
  ['lr NaN', '{"kind":"project","target":"' + pid + '","lr":NaN}'],
  ['seed -1', {kind: 'sample', seed: -1}], ['init nonsense', {kind: 'sample', init: 'zzz'}],
  ['keep 2', {kind: 'edit', scribble: scrId, base: hex32('b'), keep: 2}],
  ['draw without scribble', {kind: 'draw'}], ['draw with a photo (no alpha)', {kind: 'draw', scribble: pid}],
  ['draw with an empty scribble', {kind: 'draw', scribble: emptyId}],
  ['edit without base', {kind: 'edit', scribble: scrId}], ['interpolate without ends', {kind: 'interpolate'}],
  ['frames 1', {kind: 'interpolate', from: hex32('c'), to: hex32('d'), frames: 1}],
  ['frames 9 (cap 8)', {kind: 'interpolate', from: hex32('c'), to: hex32('d'), frames: 9}],
  ['nested 100 deep', '{"kind":' + '['.repeat(100) + ']'.repeat(100) + '}'],
  ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0x6b, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])],
];
for (const [what, body] of bad) {
  const r = await json(`${U}api/jobs`, {method: 'POST', headers: {'Content-Type': 'application/json'},
    body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body)});
  await expect4xx(`job: ${what}`, r, {status: 400});
}
await expect4xx('job: unknown target', await postJSON(`${U}api/jobs`, {kind: 'project', target: hex32('e')}), {status: 404});
await expect4xx('job: unknown base', await postJSON(`${U}api/jobs`, {kind: 'edit', scribble: scrId, base: hex32('f')}), {status: 404});
await expect4xx('job: unknown init', await postJSON(`${U}api/jobs`, {kind: 'draw', scribble: scrId, init: hex32('0')}), {status: 404});
await expect4xx('job: 70 kB body', await postJSON(`${U}api/jobs`, `{"kind":"sample","x":"${'y'.repeat(70000)}"}`), {status: 413});
await expect4xx('GET job with a bad id', await json(`${U}api/jobs/nope`), {status: 404});
await expect4xx('GET unknown job', await json(`${U}api/jobs/${hex32('1')}`), {status: 404});
await expect4xx('events of unknown job', await json(`${U}api/jobs/${hex32('1')}/events`), {status: 404});
await expect4xx('DELETE unknown job', await json(`${U}api/jobs/${hex32('1')}`, {method: 'DELETE'}), {status: 404});
await expect4xx('GET unknown result', await json(`${U}api/results/${hex32('2')}.png`), {status: 404});
await expect4xx('GET result with a bad suffix', await json(`${U}api/results/${hex32('2')}.exe`), {status: 404});

console.log('good paths');
const pj = await postJSON(`${U}api/jobs`, {kind: 'project', target: pid, steps: 3, seed: 1});
check(pj.status === 202 && pj.body.state === 'queued', `submit a 3-step projection -> ${pj.status}`);
const ev = await followEvents(U, pj.body.id);
// (previews ride on progress events; a job this short may finish before the first one is sent)
check(ev.final.state === 'done' && ev.final.step === 3 && ev.final.result === pj.body.id,
  `its event stream ends "done" after 3 steps (${ev.events} events, ${ev.previews} previews)`);
const rid = ev.final.result;
const meta = await json(`${U}api/results/${rid}`);
check(meta.status === 200 && meta.body.frames === 1 && JSON.stringify(meta.body.latent_shape) === '[1,100]',
  `result metadata: ${meta.text}`);
{
  const png = Buffer.from(await (await fetch(`${U}api/results/${rid}.png`)).arrayBuffer());
  const sz = pngSize(png);
  check(sz && sz.w === 64 && sz.h === 64, 'result.png is 64x64');
  const r = await fetch(`${U}api/results/${rid}.npy`);
  const npy = parseNpy(Buffer.from(await r.arrayBuffer()));
  check(npy && npy.shape.join(',') === '1,100' && npy.data.every(Number.isFinite) &&
    npy.data.every((v) => v >= -1 && v <= 1) && /attachment/.test(r.headers.get('content-disposition') || ''),
  'latent.npy: (1, 100) float32, finite, in [-1, 1] (uniform z), sent as an attachment');
}
{
  const ev2 = await followEvents(U, pj.body.id);
  check(ev2.final.state === 'done' && ev2.events === 1, 'the event stream of a finished job gives one "done" event and ends');
}
await expect4xx('result frame 5 of 1', await json(`${U}api/results/${rid}.png?frame=5`), {status: 400});
await expect4xx('result frame abc', await json(`${U}api/results/${rid}.npy?frame=abc`), {status: 400});
await expect4xx('result frame -1', await json(`${U}api/results/${rid}.npy?frame=-1`), {status: 400});
const smp = await postJSON(`${U}api/jobs`, {kind: 'sample', init: 'random', seed: 7});
const smpDone = await waitJob(U, smp.body.id);
check(smpDone.state === 'done', 'a random sample');
const it = await postJSON(`${U}api/jobs`, {kind: 'interpolate', from: rid, to: smpDone.result, frames: 5});
const itDone = await waitJob(U, it.body.id);
{
  const strip = Buffer.from(await (await fetch(`${U}api/results/${itDone.result}.png`)).arrayBuffer());
  const sz = pngSize(strip);
  const f4 = parseNpy(Buffer.from(await (await fetch(`${U}api/results/${itDone.result}.npy?frame=4`)).arrayBuffer()));
  const end = parseNpy(Buffer.from(await (await fetch(`${U}api/results/${smpDone.result}.npy`)).arrayBuffer()));
  let same = f4 && end && f4.data.length === end.data.length;
  for (let i = 0; same && i < end.data.length; i++) same = Math.abs(f4.data[i] - end.data[i]) < 1e-6;
  check(itDone.state === 'done' && sz && sz.w === 5 * 64 && sz.h === 64 && same,
    'interpolation: a 5-frame strip whose last latent is the end point');
}
await expect4xx('interpolate from an interpolation', await postJSON(`${U}api/jobs`,
  {kind: 'interpolate', from: itDone.result, to: rid}), {status: 400});
const dr = await postJSON(`${U}api/jobs`, {kind: 'edit', scribble: scrId, base: rid, steps: 2});
check(dr.status === 202 && (await waitJob(U, dr.body.id)).state === 'done', 'a 2-step edit of the projection');

console.log('cancelling and the queue cap (--max-queue 2)');
const long = await postJSON(`${U}api/jobs`, {kind: 'project', target: pid, steps: 2000});
for (let i = 0; i < 600; i++) {
  const s = await json(`${U}api/jobs/${long.body.id}`);
  if (s.body.state === 'running' && s.body.step >= 1) break;
  await sleep(100);
}
const q1 = await postJSON(`${U}api/jobs`, {kind: 'draw', scribble: scrId, steps: 2000});
const q2 = await postJSON(`${U}api/jobs`, {kind: 'draw', scribble: scrId, steps: 2000});
check(q1.status === 202 && q2.status === 202 && q2.body.position === 2, 'two jobs queue behind the running one');
const q3 = await postJSON(`${U}api/jobs`, {kind: 'sample'});
await expect4xx('a third waiting job', q3, {status: 429});
check(q3.headers.get('retry-after') === '1', 'the 429 says Retry-After: 1');
const c1 = await json(`${U}api/jobs/${q1.body.id}`, {method: 'DELETE'});
check(c1.status === 200 && c1.body.state === 'cancelled', 'DELETE a queued job -> cancelled at once');
await expect4xx('DELETE it again', await json(`${U}api/jobs/${q1.body.id}`, {method: 'DELETE'}), {status: 409});
check((await json(`${U}api/jobs/${q2.body.id}`)).body.position === 1, 'the job behind it moves up');
const t0 = Date.now();
const c2 = await json(`${U}api/jobs/${long.body.id}/cancel`, {method: 'POST'});
const longEnd = await waitJob(U, long.body.id, {every: 50});
check(c2.status === 200 && longEnd.state === 'cancelled' && longEnd.step < 2000,
  `cancel the running job -> cancelled at step ${longEnd.step} in ${Date.now() - t0} ms`);
await json(`${U}api/jobs/${q2.body.id}`, {method: 'DELETE'});
const q2End = await waitJob(U, q2.body.id, {every: 50});
check(q2End.state === 'cancelled', 'cancel the next one while it starts or runs');
await expect4xx('result of a cancelled job', await json(`${U}api/results/${long.body.id}.png`), {status: 404});
const info = await json(`${U}api/info`);
check(info.body.queue === 0 && !info.body.running && info.body.jobs_cancelled === 3,
  `info: queue empty, 3 cancelled (${info.body.jobs_done} done, ${info.body.jobs_failed} failed)`);

const st = await srv.stop();
check(st.code === 0, `SIGTERM: clean exit (${st.code ?? st.sig})`);
check(!/ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:/.test(st.stderr), 'no sanitizer reports');
console.log(`api_test: ${alive} health checks passed after bad requests; ${failed()} failure(s)`);
if (failed()) { console.log(st.stderr.slice(-4000)); process.exit(1); }
