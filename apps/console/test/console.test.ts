/**
 * The web console in headless Chromium (Debian's `chromium`, driven by playwright-core) against a
 * live server: every page renders the fixture's data, changing the rollout in the page changes the
 * `larch.rollout` an agent reads from the summary, and each page is saved as a PNG under
 * apps/console/test-output/.
 *
 * Without /usr/bin/chromium these tests fail when CI=true and are skipped otherwise.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSummary } from '@larch/core-store';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { rolloutPercent } from '@larch/updater';
import { consoleDir } from '../node/index.js';
import { makeConsoleRepo, startConsoleServer, type ConsoleFixture, type ConsoleServer } from './harness.js';

const CHROMIUM = process.env.LARCH_CHROMIUM ?? '/usr/bin/chromium';
const OUT = join(dirname(fileURLToPath(import.meta.url)), '..', 'test-output');
const haveChromium = existsSync(CHROMIUM);
const run = haveChromium || process.env.CI === 'true' ? describe : describe.skip;

let tmp: TmpDir;
let fx: ConsoleFixture;
let srv: ConsoleServer;
let browser: Browser;
let page: Page;
const shots: string[] = [];

async function shoot(name: string): Promise<void> {
  const path = join(OUT, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  shots.push(path);
}

/** What an agent reads: the summary as served, its `larch.rollout` for os/main. */
async function publishedPercent(): Promise<number> {
  const r = await fetch(`${srv.repoUrl}summary`);
  expect(r.status).toBe(200);
  return rolloutPercent(readSummary(new Uint8Array(await r.arrayBuffer())).metadata, 'os/main');
}

async function bytesOnDisk(dir: string): Promise<number> {
  let n = 0;
  for (const f of await readdir(dir)) n += (await stat(join(dir, f))).size;
  return n;
}

describe('web console prerequisites', () => {
  // Counted as a failed test (not only a failed hook) when CI runs without Chromium.
  it.runIf(haveChromium || process.env.CI === 'true')('finds Chromium', () => {
    expect(existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM}: install it with apt-get install -y chromium`).toBe(true);
  });
});

run('web console', () => {
  beforeAll(async () => {
    if (!haveChromium) throw new Error(`Chromium not found at ${CHROMIUM}: install it with apt-get install -y chromium`);
    if (!existsSync(join(consoleDir(), 'index.html'))) throw new Error(`No built console in ${consoleDir()}: run pnpm --filter @larch/console build`);
    // Start from an empty output directory, so the screenshots checked below are this run's.
    await rm(OUT, { recursive: true, force: true });
    await mkdir(OUT, { recursive: true });
    tmp = await tmpDir('larch-console-');
    fx = await makeConsoleRepo(tmp.path);
    srv = await startConsoleServer(fx);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  });
  afterAll(async () => {
    await browser?.close();
    await srv?.close();
    await tmp?.cleanup();
    if (shots.length) console.log(`console screenshots:\n${shots.map((s) => `  ${s}`).join('\n')}`);
  });

  it('says a token is needed, then shows the refs once one is saved', async () => {
    await page.goto(`${srv.url}console/`);
    await expect.poll(() => page.locator('[role=alert]').first().textContent()).toContain('401 unauthorized');
    await page.fill('input[name=token]', srv.adminToken);
    await page.click('form.token button[type=submit]');
    const refs = page.locator('[data-testid=refs]');
    await refs.waitFor();
    const text = await refs.textContent();
    expect(text).toContain('os/main');
    expect(text).toContain('1.2');
    expect(text).toContain('Drop the old library');
    expect(text).toContain(fx.commits[2].slice(0, 10));
    expect(await page.evaluate(() => localStorage.getItem('larch.console.token'))).toBe(srv.adminToken);
  });

  it('Refs: lists the history of a ref', async () => {
    await page.click('[data-testid=refs] a:text-is("os/main")');
    const history = page.locator('[data-testid=history]');
    await history.waitFor();
    const rows = history.locator('tbody tr');
    await expect.poll(() => rows.count()).toBe(3);
    expect(await rows.nth(0).textContent()).toContain('Drop the old library');
    expect(await rows.nth(1).textContent()).toContain('Add documentation');
    expect(await rows.nth(2).textContent()).toContain('First release');
    expect(await rows.nth(2).textContent()).toContain('The base system.');
    expect(await rows.nth(2).textContent()).toContain('2023-11-14 22:13 UTC');
    await shoot('refs');
  });

  it('Commit: browses the tree by directory and shows the diff to the parent', async () => {
    await page.click(`[data-testid=history] a:text-is("${fx.commits[2].slice(0, 10)}")`);
    const commit = page.locator('[data-testid=commit]');
    await commit.waitFor();
    expect(await commit.textContent()).toContain(fx.commits[2]);
    expect(await commit.textContent()).toContain(fx.commits[1]);
    const tree = page.locator('[data-testid=tree]');
    await expect.poll(() => tree.textContent()).toContain('usr/');
    const root = await tree.textContent();
    expect(root).toContain('etc/');
    expect(root).toContain('→ usr/bin');
    expect(root).toContain('lrwxrwxrwx');
    const diff = page.locator('[data-testid=diff]');
    await expect.poll(() => diff.locator('li').count()).toBe(3);
    expect(await diff.locator('li.modified').allTextContents()).toEqual(['M /usr/bin/hello', 'M /usr/lib/libsym.so']);
    expect(await diff.locator('li.removed').textContent()).toContain('/usr/lib/libold.so');
    await tree.locator('a:text-is("usr/")').click();
    await expect.poll(() => tree.textContent()).toContain('share/');
    const usr = await tree.textContent();
    expect(usr).toContain('bin/');
    expect(usr).toContain('lib/');
    expect(usr).not.toContain('etc/');
    await tree.locator('a:text-is("bin/")').click();
    await expect.poll(() => tree.textContent()).toContain('hello');
    // "#!/bin/sh\necho hello, world\n" is 28 bytes.
    expect(await tree.locator('tbody tr', { hasText: 'hello' }).textContent()).toContain('28 B');
    expect(await page.locator('[data-testid=crumbs]').textContent()).toContain('usr / bin');
    await shoot('commit');
  });

  it('Deltas: draws each delta against the full size of its target', async () => {
    await page.click('nav a:text-is("Deltas")');
    const chart = page.locator('[data-testid=delta-chart]');
    await chart.waitFor();
    const rows = chart.locator('g.row');
    expect(await rows.count()).toBe(2);
    const scratch = chart.locator(`g.row[data-delta="${fx.commits[2]}"]`);
    const fromParent = chart.locator(`g.row[data-delta="${fx.commits[1]}-${fx.commits[2]}"]`);
    // The delta bars carry the bytes the delta directories hold on disk.
    const dirs = join(fx.repo.path, 'deltas');
    const onDisk: number[] = [];
    for (const pre of await readdir(dirs)) for (const rest of await readdir(join(dirs, pre))) onDisk.push(await bytesOnDisk(join(dirs, pre, rest)));
    const shown = [Number(await scratch.locator('rect.bar-delta').getAttribute('data-bytes')), Number(await fromParent.locator('rect.bar-delta').getAttribute('data-bytes'))];
    expect([...shown].sort((a, b) => a - b)).toEqual(onDisk.sort((a, b) => a - b));
    // Both deltas target the same commit, so their full bars are equal; 1.1→1.2 is far smaller than from scratch.
    const full = Number(await scratch.locator('rect.bar-full').getAttribute('data-bytes'));
    expect(full).toBeGreaterThan(0);
    expect(Number(await fromParent.locator('rect.bar-full').getAttribute('data-bytes'))).toBe(full);
    expect(shown[1]).toBeLessThan(shown[0]);
    const wide = Number(await scratch.locator('rect.bar-delta').getAttribute('width'));
    const narrow = Number(await fromParent.locator('rect.bar-delta').getAttribute('width'));
    expect(narrow).toBeLessThan(wide);
    expect(await scratch.textContent()).toContain('os/main');
    expect(await fromParent.textContent()).toContain(`${fx.commits[1].slice(0, 10)} → ${fx.commits[2].slice(0, 10)}`);
    await shoot('deltas');
  });

  it('Rollouts: changing the percentage and pausing in the page changes what the server publishes', async () => {
    expect(await publishedPercent()).toBe(50);
    await page.click('nav a:text-is("Rollouts")');
    const row = page.locator('[data-testid=rollouts] tr[data-ref="os/main"]');
    await row.waitFor();
    expect(await row.textContent()).toContain('50%');
    expect(await row.textContent()).toContain('canary');
    await row.locator('input[name=percent]').fill('30');
    await row.locator('button:text-is("Set")').click();
    await expect.poll(() => page.locator('[data-testid=rollouts] tr[data-ref="os/main"]').textContent()).toContain('30%');
    expect(await publishedPercent()).toBe(30);

    await page.locator('[data-testid=rollouts] tr[data-ref="os/main"] button:text-is("Pause")').click();
    await expect.poll(() => page.locator('[data-testid=rollouts] tr[data-ref="os/main"]').textContent()).toContain('paused');
    expect(await publishedPercent()).toBe(0);
    await shoot('rollouts');

    await page.locator('[data-testid=rollouts] tr[data-ref="os/main"] button:text-is("Resume")').click();
    await expect.poll(() => page.locator('[data-testid=rollouts] tr[data-ref="os/main"]').textContent()).toContain('live');
    expect(await publishedPercent()).toBe(30);
  });

  it('Rollouts: a read-only token sees the state but its change is refused in the page', async () => {
    await page.fill('input[name=token]', srv.readToken);
    await page.click('form.token button[type=submit]');
    const row = page.locator('[data-testid=rollouts] tr[data-ref="os/main"]');
    await row.waitFor();
    await row.locator('input[name=percent]').fill('90');
    await row.locator('button:text-is("Set")').click();
    await expect.poll(() => page.locator('[data-testid=rollouts] [role=alert]').textContent()).toContain('403 forbidden');
    expect(await publishedPercent()).toBe(30);
    await page.fill('input[name=token]', srv.adminToken);
    await page.click('form.token button[type=submit]');
  });

  it('Devices: shows each device with its ref, booted and target commits, phase and health', async () => {
    await page.click('nav a:text-is("Devices")');
    const table = page.locator('[data-testid=devices]');
    await table.waitFor();
    await expect.poll(() => table.locator('tbody tr').count()).toBe(3);
    const [c1, c2, c3] = fx.commits.map((c) => c.slice(0, 10));
    const one = await table.locator('tr[data-device="edge-001"]').textContent();
    expect(one).toContain('os/main');
    expect(one).toContain(`${c3} 1.2`);
    expect(one).toContain('idle');
    expect(one).toContain('✓ boot-ok');
    const two = await table.locator('tr[data-device="edge-002"]').textContent();
    expect(two).toContain(`${c2} 1.1`);
    expect(two).toContain(`${c3} 1.2`);
    expect(two).toContain('stage');
    expect(two).toContain('✗ network');
    const three = await table.locator('tr[data-device="edge-003"]').textContent();
    expect(three).toContain(c1);
    expect(three).toContain('rollback');
    expect(three).toContain('degraded');
    expect(three).toContain('required check app-starts failed');
    expect(three).toContain(`bad: ${c3}`);
    expect(three).toContain('✗ app-starts');
    await shoot('devices');
    // A new check-in shows after Refresh.
    await srv.checkIn('edge-004', { phase: 'idle', booted: { commit: fx.commits[2], deployment: 'larch-os.0', version: '1.2' }, target: null });
    await page.click('section button.refresh');
    await expect.poll(() => table.locator('tbody tr').count()).toBe(4);
    expect(await table.locator('tr[data-device="edge-004"]').textContent()).toContain('no checks');
  });

  it('saved one screenshot per page', async () => {
    expect(shots.map((p) => p.slice(OUT.length + 1))).toEqual(['refs.png', 'commit.png', 'deltas.png', 'rollouts.png', 'devices.png']);
    for (const name of ['refs', 'commit', 'deltas', 'rollouts', 'devices']) {
      const png = await readFile(join(OUT, `${name}.png`));
      expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
      expect(png.length).toBeGreaterThan(5000);
    }
  });
});
