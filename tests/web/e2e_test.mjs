// e2e_test.mjs - the page in a real browser (Debian's headless Chromium,
// driven by playwright-core): load it, upload a photo, project it while the
// preview refines, draw a stroke with the mouse, run an edit, and check that
// the result changed where the stroke is (and little elsewhere). Also the
// drawing tools (colour picker, eraser, undo, clear, a touch stroke), the
// interpolation slider and a latent download. Screenshots of each stage go
// to docs/images/web_*.png (WEB_SHOTS=0 skips them).
// Run: node tests/web/e2e_test.mjs   (GANEDIT_BIN picks the build)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { check, failed, parseNpy, repo, shared, startServer } from './lib.mjs';

const STEPS = Number(process.env.WEB_STEPS || 100);
const shots = process.env.WEB_SHOTS !== '0';
const shotDir = path.join(repo, 'docs', 'images');
const photo = path.join(shared, 'data', 'grumpy64', 'grumpy', '10.png');
const JOB_TIMEOUT = 600000;

const srv = await startServer(['--max-steps', '500']);
console.log(`e2e_test: server ${srv.url}`);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({viewport: {width: 1440, height: 960}, hasTouch: true, acceptDownloads: true});
const page = await context.newPage();
const consoleErrors = [];
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
page.on('pageerror', (e) => consoleErrors.push(String(e)));

async function shot(name) {
  if (!shots) return;
  fs.mkdirSync(shotDir, {recursive: true});
  await page.screenshot({path: path.join(shotDir, name), fullPage: true});
  console.log(`  shot docs/images/${name}`);
}
const nResults = () => page.evaluate(() => window.ganeditState.results.length);
async function waitResults(n) {
  await page.waitForFunction((k) => window.ganeditState.results.length >= k ||
    document.getElementById('status').classList.contains('error'), n, {timeout: JOB_TIMEOUT, polling: 200});
  const status = await page.textContent('#status');
  return check(await nResults() >= n, `result ${n} arrives (${status})`);
}
// painted pixels of the scribble layer (alpha > 0)
const painted = () => page.evaluate(() => {
  const c = document.getElementById('scribble');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) n += d[i] > 0;
  return n;
});

try {
  // 1. load
  await page.goto(srv.url);
  await page.waitForFunction(() => /dcgan/.test(document.getElementById('model').textContent));
  check(true, `page loaded: ${await page.textContent('#model')}`);
  check(await page.isDisabled('#project') && await page.isDisabled('#edit'), 'project and edit wait for input');
  await shot('web_1_start.png');

  // 2. upload a photo
  await page.setInputFiles('#file', photo);
  await page.waitForFunction(() => window.ganeditState.photo !== null && !document.getElementById('project').disabled);
  check(true, `photo uploaded: ${await page.textContent('#photo-info')}`);

  // 3. project it; the live preview must update while it runs
  await page.fill('#steps', String(STEPS));
  await page.click('#project');
  await page.waitForFunction(() => document.getElementById('progress').value >= 8 &&
    document.getElementById('live').src.startsWith('data:image/png'), null, {timeout: JOB_TIMEOUT, polling: 100});
  const mid = await page.evaluate(() => ({step: document.getElementById('progress').value, src: document.getElementById('live').src.length}));
  check(mid.src > 100, `live preview while projecting (step ${mid.step}, a ${mid.src}-byte data URL)`);
  await shot('web_2_projecting.png');
  await waitResults(1);
  await page.waitForTimeout(300);
  await shot('web_3_projected.png');

  // 4. draw a stroke with the mouse
  await page.fill('#color', '#4a3020');
  await page.fill('#size', '44');
  const box = await page.locator('#scribble').boundingBox();
  const P = (fx, fy) => [box.x + fx * box.width, box.y + fy * box.height];
  await page.mouse.move(...P(0.25, 0.72));
  await page.mouse.down();
  for (let i = 1; i <= 20; i++) await page.mouse.move(...P(0.25 + 0.5 * i / 20, 0.72));
  await page.mouse.up();
  const strokePx = await painted();
  check(strokePx > 5000, `a mouse stroke paints the scribble layer (${strokePx} px)`);
  check(!(await page.isDisabled('#edit')), 'edit is enabled once something is drawn');
  await shot('web_4_scribble.png');

  // 5. edit, and check the result changed where drawn
  await page.click('#edit');
  await waitResults(2);
  await page.waitForTimeout(300);
  await shot('web_5_edited.png');
  const cmp = await page.evaluate(async () => {
    const st = window.ganeditState;
    const load = (src) => new Promise((res, rej) => { const i = new Image(); i.onload = () => res(i); i.onerror = rej; i.src = src; });
    const [proj, edit] = await Promise.all(st.results.slice(0, 2).map((r) => load(`/api/results/${r.id}.png`)));
    const R = proj.width;
    const px = (img) => {
      const c = document.createElement('canvas');
      c.width = c.height = R;
      const x = c.getContext('2d');
      x.drawImage(img, 0, 0, R, R);
      return x.getImageData(0, 0, R, R).data;
    };
    const a = px(proj), b = px(edit);
    const sc = document.createElement('canvas');
    sc.width = sc.height = R;
    const sx = sc.getContext('2d');
    sx.imageSmoothingQuality = 'high';
    sx.drawImage(document.getElementById('scribble'), 0, 0, R, R);
    const m = sx.getImageData(0, 0, R, R).data;
    // outside: at least 6 px (at R) from any painted pixel
    const near = new Uint8Array(R * R);
    for (let y = 0; y < R; y++) for (let x = 0; x < R; x++) if (m[4 * (y * R + x) + 3] > 0)
      for (let dy = -6; dy <= 6; dy++) for (let dx = -6; dx <= 6; dx++) {
        const yy = y + dy, xx = x + dx;
        if (yy >= 0 && yy < R && xx >= 0 && xx < R) near[yy * R + xx] = 1;
      }
    const col = [0x4a, 0x30, 0x20];
    let dIn = 0, nIn = 0, dOut = 0, nOut = 0, before = 0, after = 0;
    for (let i = 0; i < R * R; i++) {
      let d = 0, db = 0, da = 0;
      for (let k = 0; k < 3; k++) {
        d += Math.abs(a[4 * i + k] - b[4 * i + k]) / 3;
        db += (a[4 * i + k] - col[k]) ** 2;
        da += (b[4 * i + k] - col[k]) ** 2;
      }
      if (m[4 * i + 3] > 200) { dIn += d; nIn++; before += Math.sqrt(db); after += Math.sqrt(da); }
      else if (!near[i]) { dOut += d; nOut++; }
    }
    return {R, nIn, nOut, dIn: dIn / nIn, dOut: dOut / nOut, before: before / nIn, after: after / nIn};
  });
  console.log(`  inside the stroke: ${cmp.nIn} px, mean |change| ${cmp.dIn.toFixed(1)}/255, distance to the ` +
    `stroke colour ${cmp.before.toFixed(1)} -> ${cmp.after.toFixed(1)}; away from it: ${cmp.nOut} px, mean |change| ${cmp.dOut.toFixed(1)}/255`);
  check(cmp.nIn > 20 && cmp.nOut > 200, 'the stroke and the area away from it are both sizeable');
  check(cmp.dIn > 10, 'the edit changed the image under the stroke');
  check(cmp.dIn > 2 * cmp.dOut, 'it changed the image more under the stroke than away from it');
  check(cmp.after < cmp.before - 10, 'the image under the stroke moved towards the stroke colour');

  // 6. the drawing tools
  const pick = await page.evaluate(() => {
    const c = document.getElementById('base');
    const d = c.getContext('2d').getImageData(256, 200, 1, 1).data;
    return '#' + [d[0], d[1], d[2]].map((v) => v.toString(16).padStart(2, '0')).join('');
  });
  await page.click('#pick');
  await page.mouse.click(box.x + box.width * 256 / 512, box.y + box.height * 200 / 512);
  check(await page.inputValue('#color') === pick, `the colour picker takes the image's colour (${pick})`);
  const beforeErase = await painted();
  await page.click('#eraser');
  await page.mouse.move(...P(0.45, 0.72));
  await page.mouse.down();
  await page.mouse.move(...P(0.55, 0.72), {steps: 8});
  await page.mouse.up();
  const afterErase = await painted();
  check(afterErase < beforeErase - 500, `the eraser removes paint (${beforeErase} -> ${afterErase} px)`);
  await page.click('#eraser');
  await page.click('#undo');
  check(await painted() === beforeErase, 'undo restores the erased paint');
  await page.click('#clear');
  check(await painted() === 0, 'clear empties the layer');
  await page.click('#undo');
  check(await painted() === beforeErase, 'undo brings the cleared strokes back');
  await page.click('#clear');
  const cdp = await context.newCDPSession(page);
  const T = (fx, fy) => ({x: P(fx, fy)[0], y: P(fx, fy)[1], id: 1, radiusX: 2, radiusY: 2, force: 1});
  await cdp.send('Input.dispatchTouchEvent', {type: 'touchStart', touchPoints: [T(0.3, 0.3)]});
  for (let i = 1; i <= 10; i++)
    await cdp.send('Input.dispatchTouchEvent', {type: 'touchMove', touchPoints: [T(0.3 + 0.03 * i, 0.3 + 0.02 * i)]});
  await cdp.send('Input.dispatchTouchEvent', {type: 'touchEnd', touchPoints: []});
  const touchPx = await painted();
  check(touchPx > 500, `a touch stroke paints too (${touchPx} px)`);
  const scrollY = await page.evaluate(() => window.scrollY);
  check(scrollY === 0, 'the touch stroke did not scroll the page');
  await page.click('#clear');

  // 7. interpolate between the projection and the edit
  const ends = await page.evaluate(() => [window.ganeditState.a, window.ganeditState.b]);
  check(ends[0] && ends[1] && ends[0] !== ends[1], 'the two results are the interpolation ends A and B');
  await page.fill('#frames', '9');
  await page.click('#interpolate');
  await page.waitForFunction(() => window.ganeditState.interp !== null, null, {timeout: JOB_TIMEOUT});
  const frameSums = await page.evaluate(() => {
    const out = [];
    for (const k of [0, 4, 8]) {
      const t = document.getElementById('t');
      t.value = String(k);
      t.dispatchEvent(new Event('input'));
      const d = document.getElementById('interp').getContext('2d').getImageData(0, 0, 256, 256).data;
      let s = 0;
      for (let i = 0; i < d.length; i += 4) s += d[i] + d[i + 1] + d[i + 2];
      out.push(s);
    }
    const t = document.getElementById('t');
    t.value = '4';
    t.dispatchEvent(new Event('input'));
    return out;
  });
  check(frameSums.every((s) => s > 0) && new Set(frameSums).size === 3,
    'the slider shows different frames (start, middle, end)');
  check(/t = 0\.50/.test(await page.textContent('#t-label')), `slider label: ${await page.textContent('#t-label')}`);
  await shot('web_6_interpolated.png');

  // 8. downloads: the latent of the edit, through the gallery's .npy link
  const [dl] = await Promise.all([page.waitForEvent('download'),
    page.click('#gallery figure:first-child a[href$=".npy"]')]);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ganedit-e2e-'));
  const saved = path.join(tmp, 'latent.npy');
  await dl.saveAs(saved);
  const npy = parseNpy(fs.readFileSync(saved));
  check(npy && npy.shape.join(',') === '1,100' && /^ganedit_edit_.*\.npy$/.test(dl.suggestedFilename()),
    `download ${dl.suggestedFilename()}: a (1, 100) float32 latent`);
  fs.rmSync(tmp, {recursive: true, force: true});

  // 9. the other starts: a random sample (the seed moves on) and the mean image
  const n0 = await nResults();
  await page.click('#random');
  await waitResults(n0 + 1);
  await page.click('#mean');
  await waitResults(n0 + 2);
  const kinds = await page.evaluate(() => window.ganeditState.results.slice(-2).map((r) => r.kind));
  check(kinds.join() === 'sample,sample' && await page.inputValue('#seed') === '1' &&
    await page.locator('#gallery figure').count() === 4, 'random sample and mean image join the gallery');
  check(consoleErrors.length === 0, `no errors in the browser console${consoleErrors.length ? ': ' + consoleErrors.join(' | ') : ''}`);
} catch (e) {
  check(false, `browser test aborted: ${e.stack || e}`);
  await shot('web_failure.png').catch(() => {});
} finally {
  await browser.close();
  const st = await srv.stop();
  check(st.code === 0, `server stopped cleanly (${st.code ?? st.sig})`);
  if (failed()) console.log(st.stderr.slice(-3000));
}
console.log(`e2e_test: ${failed()} failure(s)`);
process.exit(failed() ? 1 : 0);
