#!/usr/bin/env node
// Runs the whole vitest suite once and ends with one plain line
// "N passed, N failed" (", N skipped" when any were skipped), so CI logs can be
// read by tools that do not know vitest's own summary format.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'larch-tests-'));
const out = join(dir, 'results.json');
const args = ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${out}`, ...process.argv.slice(2)];
const res = spawnSync('pnpm', ['exec', ...args], { stdio: 'inherit' });
let passed = 0, failed = 0, skipped = 0;
try {
  const r = JSON.parse(readFileSync(out, 'utf8'));
  passed = r.numPassedTests ?? 0;
  failed = (r.numFailedTests ?? 0) + (r.numRuntimeErrorTestSuites ?? 0);
  skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  // A suite that failed to load has no tests counted; count it as a failure.
  for (const s of r.testResults ?? []) if (s.status === 'failed' && (s.assertionResults ?? []).length === 0) failed++;
} catch {
  failed = Math.max(failed, 1);
}
rmSync(dir, { recursive: true, force: true });
// vitest also fails a run for errors outside any test (an unhandled exception, a worker that
// died); those are not in the per-test counts, so count such a run as one failure.
if (res.status !== 0 && failed === 0) {
  console.log(`vitest exited with status ${res.status} although no test failed (unhandled errors): counted as a failure`);
  failed = 1;
}
console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ''));
process.exit(res.status === 0 && failed === 0 && passed > 0 ? 0 : 1);
