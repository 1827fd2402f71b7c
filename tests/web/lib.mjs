// lib.mjs - what the web tests share: where things are, starting and
// stopping `ganedit serve` on a free loopback port, raw HTTP for requests
// that fetch() refuses to send (bad paths, broken syntax), small checks.
//
// Paths: GANEDIT_BIN (default build/ganedit), GANEDIT_SHARED (default
// ../shared beside the repository). Nothing leaves 127.0.0.1.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '..', '..');
export const bin = process.env.GANEDIT_BIN ? path.resolve(process.env.GANEDIT_BIN)
  : path.join(repo, 'build', 'ganedit');
export const shared = process.env.GANEDIT_SHARED ? path.resolve(process.env.GANEDIT_SHARED)
  : path.resolve(repo, '..', 'shared');
export const model = path.join(shared, 'weights', 'dcgan_grumpy_deluxe.safetensors');
export const vgg = path.join(shared, 'weights', 'vgg19_normalised_conv3_1.safetensors');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let failures = 0;
export function check(cond, what) {
  if (cond) {
    console.log(`  ok   ${what}`);
  } else {
    failures++;
    console.log(`  FAIL ${what}`);
  }
  return cond;
}
export const failed = () => failures;

// Starts `ganedit serve --port 0 ...`; resolves when it prints its URL.
export function startServer(extra = [], opts = {}) {
  for (const f of [bin, model]) if (!fs.existsSync(f)) throw new Error(`missing ${f}`);
  const args = ['serve', '--port', '0', '--model', model, '--vgg', vgg, ...extra];
  const proc = spawn(bin, args, {cwd: repo, stdio: ['ignore', 'pipe', 'pipe'],
    env: {...process.env, OMP_WAIT_POLICY: 'passive', ...(opts.env || {})}});
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; if (opts.echo) process.stderr.write(d); });
  // a test that dies half-way must not leave its server behind
  const reap = () => { if (proc.exitCode === null) proc.kill('SIGKILL'); };
  process.on('exit', reap);
  const exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve({code, sig})));
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server did not start: ${stderr}`)), 60000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/^(http:\/\/[^\s]+\/)\n/m);
      if (m) {
        clearTimeout(timer);
        const url = new URL(m[1]);
        resolve({
          url: m[1], port: Number(url.port), proc, pid: proc.pid, exited,
          stderr: () => stderr,
          async stop() {
            proc.kill('SIGTERM');
            const r = await Promise.race([exited, sleep(30000).then(() => null)]);
            if (!r) { proc.kill('SIGKILL'); return {code: null, sig: 'timeout', stderr}; }
            return {...r, stderr};
          },
        });
      }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited (${code}): ${stderr}`)); });
  });
}

// One raw HTTP/1.1 request; resolves {status, headers, body} (body as Buffer).
export function rawRequest(port, text, {timeout = 15000} = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({host: '127.0.0.1', port});
    const chunks = [];
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('raw request timed out')); }, timeout);
    sock.on('connect', () => {
      if (Array.isArray(text)) for (const t of text) sock.write(t); else sock.write(text);
    });
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', () => {});
    sock.on('close', () => {
      clearTimeout(timer);
      const all = Buffer.concat(chunks);
      const sep = all.indexOf('\r\n\r\n');
      const head = all.subarray(0, sep < 0 ? all.length : sep).toString('latin1');
      const m = head.match(/^HTTP\/1\.[01] (\d{3})/);
      const headers = {};
      for (const line of head.split('\r\n').slice(1)) {
        const i = line.indexOf(':');
        if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({status: m ? Number(m[1]) : 0, headers, body: sep < 0 ? Buffer.alloc(0) : all.subarray(sep + 4)});
    });
  });
}

export async function json(url, opts) {
  const r = await fetch(url, opts);
  const text = await r.text();
  let body = null;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  return {status: r.status, body, headers: r.headers, text};
}

export const postJSON = (url, obj) => json(url, {method: 'POST',
  headers: {'Content-Type': 'application/json'}, body: typeof obj === 'string' ? obj : JSON.stringify(obj)});

export async function upload(base, bytes, type = 'image/png') {
  return json(`${base}api/images`, {method: 'POST', body: bytes, headers: {'Content-Type': type}});
}

// Polls a job until it leaves queued/running; returns the final job JSON.
export async function waitJob(base, id, {timeout = 300000, every = 200} = {}) {
  const t0 = Date.now();
  for (;;) {
    const r = await json(`${base}api/jobs/${id}`);
    if (r.status !== 200) throw new Error(`job ${id}: HTTP ${r.status} ${r.text}`);
    if (!['queued', 'running'].includes(r.body.state)) return r.body;
    if (Date.now() - t0 > timeout) throw new Error(`job ${id} still ${r.body.state} after ${timeout} ms`);
    await sleep(every);
  }
}

// Follows a job's server-sent events until "done"; returns {final, events, previews}.
export async function followEvents(base, id, {timeout = 300000} = {}) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeout);
  const r = await fetch(`${base}api/jobs/${id}/events`, {signal: ctl.signal});
  if (r.status !== 200) { clearTimeout(timer); throw new Error(`events: HTTP ${r.status}`); }
  const dec = new TextDecoder();
  let buf = '', events = 0, previews = 0, final = null;
  try {
    for await (const chunk of r.body) {
      buf += dec.decode(chunk, {stream: true});
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const ev = (block.match(/^event: (.*)$/m) || [])[1];
        const data = (block.match(/^data: (.*)$/m) || [])[1];
        if (!ev || !data) continue;
        const j = JSON.parse(data);
        events++;
        if (j.preview) previews++;
        if (ev === 'done' || ev === 'end') final = j;
      }
      if (final) break;
    }
  } finally {
    clearTimeout(timer);
    ctl.abort();
  }
  if (!final) throw new Error(`events of ${id} ended without "done"`);
  return {final, events, previews};
}

// Resident and peak memory of a process, in MiB (Linux /proc).
export function memory(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number((s.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm')) || [])[1] || 0);
  return {rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024, threads: Number((s.match(/^Threads:\s+(\d+)/m) || [])[1])};
}

// Width and height from a PNG's IHDR.
export function pngSize(buf) {
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (buf.length < 24 || !buf.subarray(0, 8).equals(sig)) return null;
  return {w: buf.readUInt32BE(16), h: buf.readUInt32BE(20)};
}

// Shape and float32 data of a .npy buffer (v1/v2, '<f4', C order).
export function parseNpy(buf) {
  if (buf.length < 10 || buf[0] !== 0x93 || buf.subarray(1, 6).toString('latin1') !== 'NUMPY') return null;
  const major = buf[6];
  const hl = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const off = major === 1 ? 10 : 12;
  const head = buf.subarray(off, off + hl).toString('latin1');
  if (!/'descr':\s*'<f4'/.test(head) || /'fortran_order':\s*True/.test(head)) return null;
  const shape = (head.match(/'shape':\s*\(([^)]*)\)/) || [])[1].split(',').map((x) => x.trim())
    .filter((x) => x).map(Number);
  const start = off + hl;
  if ((start % 64) !== 0) return null;
  const n = shape.reduce((a, b) => a * b, 1);
  if (buf.length !== start + 4 * n) return null;
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = buf.readFloatLE(start + 4 * i);
  return {shape, data};
}

// A PNG (RGBA, 8 bits) from raw pixels, for crafted uploads.
import zlib from 'node:zlib';
const crcTable = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = crcTable[(c ^ b) & 255] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
export function makePng(w, h, rgba /* Uint8Array w*h*4 */, {declaredW = w, declaredH = h, noData = false} = {}) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(declaredW, 0);
  ihdr.writeUInt32BE(declaredH, 4);
  ihdr[8] = 8; ihdr[9] = 6; ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0;
  const parts = [Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr)];
  if (!noData) {
    const raw = Buffer.alloc(h * (1 + 4 * w));
    for (let y = 0; y < h; y++) {
      raw[y * (1 + 4 * w)] = 0;
      Buffer.from(rgba.buffer, rgba.byteOffset + y * 4 * w, 4 * w).copy(raw, y * (1 + 4 * w) + 1);
    }
    parts.push(chunk('IDAT', zlib.deflateSync(raw)));
  }
  parts.push(chunk('IEND', Buffer.alloc(0)));
  return Buffer.concat(parts);
}
