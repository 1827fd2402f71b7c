// load_test.mjs - N clients at once on loopback, for several rounds: each
// uploads its own photo, submits a projection with its own seed, follows it
// (half by polling, half by server-sent events), and downloads the result's
// PNG and latent. Checks: no request fails except "queue full" (429, then a
// retry), every job ends "done", every result is byte-identical to the same
// job run alone beforehand (so nothing was lost or mixed between clients),
// one extra client per round cancels a long job without disturbing anyone,
// the server's resident memory is flat from round to round, and it exits
// cleanly on SIGTERM. Prints the numbers.
// Run: node tests/web/load_test.mjs   (LOAD_CLIENTS, LOAD_ROUNDS, LOAD_STEPS)
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  check, failed, followEvents, json, memory, postJSON, shared, sleep, startServer, upload, waitJob,
} from './lib.mjs';

const N = Number(process.env.LOAD_CLIENTS || 8);
const ROUNDS = Number(process.env.LOAD_ROUNDS || 6);
const STEPS = Number(process.env.LOAD_STEPS || 4);
const QUEUE = Number(process.env.LOAD_QUEUE || Math.max(2, Math.floor(N / 2)));
const dir = path.join(shared, 'data', 'grumpy64', 'grumpy');
const photos = fs.readdirSync(dir).filter((f) => f.endsWith('.png')).sort().slice(0, N)
  .map((f) => fs.readFileSync(path.join(dir, f)));
const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');

// a small store and a short queue, so eviction and 429s happen during the test
const srv = await startServer(['--max-queue', String(QUEUE), '--store-mb', '1']);
const U = srv.url;
console.log(`load_test: ${N} clients x ${ROUNDS} rounds, ${STEPS}-step projections, queue cap ${QUEUE}, server ${U}`);
let retries429 = 0, errors = 0;

async function submit(body) {
  for (;;) {
    const r = await postJSON(`${U}api/jobs`, body);
    if (r.status === 202) return r.body;
    if (r.status === 429) { retries429++; await sleep(200 + Math.random() * 300); continue; }
    errors++;
    throw new Error(`submit: HTTP ${r.status} ${r.text}`);
  }
}

// One client's whole job: upload, project, follow, download. Returns hashes and timing.
async function client(i, useEvents) {
  const t0 = performance.now();
  const up = await upload(U, photos[i]);
  if (up.status !== 201) { errors++; throw new Error(`upload ${i}: HTTP ${up.status}`); }
  const job = await submit({kind: 'project', target: up.body.id, steps: STEPS, seed: 1000 + i});
  const final = useEvents ? (await followEvents(U, job.id)).final : await waitJob(U, job.id, {every: 100});
  if (final.state !== 'done') { errors++; throw new Error(`job ${i}: ${final.state} ${final.error || ''}`); }
  const [png, npy] = await Promise.all(['png', 'npy'].map(async (ext) => {
    const r = await fetch(`${U}api/results/${final.result}.${ext}`);
    if (r.status !== 200) { errors++; throw new Error(`result ${i}.${ext}: HTTP ${r.status}`); }
    return Buffer.from(await r.arrayBuffer());
  }));
  return {png: sha(png), npy: sha(npy), ms: performance.now() - t0};
}

// Submits a long job and cancels it (while queued or running).
async function canceller(i) {
  const up = await upload(U, photos[i % N]);
  const job = await submit({kind: 'project', target: up.body.id, steps: 2000, seed: 7});
  await sleep(300);
  const c = await json(`${U}api/jobs/${job.id}`, {method: 'DELETE'});
  const end = await waitJob(U, job.id, {every: 100});
  return c.status === 200 && end.state === 'cancelled';
}

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };

try {
  // the reference: every client's job alone, one after another
  const base = [];
  const tb = performance.now();
  for (let i = 0; i < N; i++) base.push(await client(i, i % 2 === 1));
  const soloMs = (performance.now() - tb) / N;
  const m0 = memory(srv.pid);
  console.log(`  alone: ${soloMs.toFixed(0)} ms per job; server RSS ${m0.rss.toFixed(1)} MiB, ${m0.threads} threads`);
  const rss = [], heap = [];
  let mixed = 0, cancelsOk = 0, jobs = 0;
  const lat = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const t0 = performance.now();
    const res = await Promise.all([...Array(N).keys()].map((i) => client(i, i % 2 === 1)).concat([canceller(round)]));
    const wall = performance.now() - t0;
    cancelsOk += res.pop() ? 1 : 0;
    res.forEach((r, i) => {
      jobs++;
      lat.push(r.ms);
      if (r.png !== base[i].png || r.npy !== base[i].npy) mixed++;
    });
    await sleep(500); // let connection threads finish
    const m = memory(srv.pid);
    const inf = (await json(`${U}api/info`)).body;
    rss.push(m.rss);
    heap.push(inf.heap_bytes / 1048576);
    console.log(`  round ${round}: ${N} clients in ${(wall / 1000).toFixed(1)} s (${(N / wall * 1000).toFixed(2)} jobs/s), ` +
      `RSS ${m.rss.toFixed(1)} MiB, heap in use ${(inf.heap_bytes / 1048576).toFixed(2)} MiB ` +
      `(store ${(inf.store_bytes / 1048576).toFixed(2)} MiB, ${inf.jobs_kept} jobs kept), ${m.threads} threads`);
  }
  const info = (await json(`${U}api/info`)).body;
  check(errors === 0, `no failed requests (${retries429} "queue full" answers retried)`);
  check(mixed === 0, `all ${jobs} concurrent results byte-identical to the same job run alone`);
  check(cancelsOk === ROUNDS, `${cancelsOk} of ${ROUNDS} long jobs cancelled under load`);
  // heap in use (mallinfo2, exact) must not grow with the number of jobs;
  // RSS also moves with connection threads' stacks, so it gets a looser bound
  const hg = Math.max(...heap.slice(1)) - heap[0], growth = rss[rss.length - 1] - rss[0];
  if (heap[0] === 0) {
    // a sanitizer build: its allocator keeps freed memory in quarantine and
    // mallinfo2 reports nothing, so only the normal build's numbers mean anything
    console.log(`  memory checks skipped (sanitizer build; RSS ${rss.map((x) => x.toFixed(0)).join(' -> ')} MiB)`);
  } else {
    check(hg < 2, `heap flat: ${heap.map((x) => x.toFixed(2)).join(' -> ')} MiB (at most +${hg.toFixed(2)} MiB over round 1)`);
    check(growth < Math.max(8, 0.1 * rss[0]), `RSS flat: ${rss.map((x) => x.toFixed(1)).join(' -> ')} MiB (${growth >= 0 ? '+' : ''}${growth.toFixed(1)} MiB after round 1)`);
  }
  check(info.jobs_failed === 0 && info.queue === 0 && !info.running,
    `server idle afterwards: ${info.jobs_done} done, ${info.jobs_failed} failed, ${info.jobs_cancelled} cancelled`);
  console.log(`  latency per client (upload to downloads): median ${pct(lat, 0.5).toFixed(0)} ms, ` +
    `p95 ${pct(lat, 0.95).toFixed(0)} ms, max ${Math.max(...lat).toFixed(0)} ms; one job alone ${soloMs.toFixed(0)} ms`);
  const mEnd = memory(srv.pid);
  console.log(`  server peak RSS ${mEnd.hwm.toFixed(1)} MiB`);
} catch (e) {
  check(false, `load test aborted: ${e.stack || e}`);
}
const st = await srv.stop();
check(st.code === 0, `server stopped cleanly (${st.code ?? st.sig})`);
check(!/ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:/.test(st.stderr), 'no sanitizer reports');
if (failed()) console.log(st.stderr.slice(-3000));
console.log(`load_test: ${failed()} failure(s)`);
process.exit(failed() ? 1 : 0);
