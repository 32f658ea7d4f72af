/**
 * The table of ostree 2022.7's verbs and options in apps/cli/README.md stays true: it is
 * regenerated here by tooling/scripts/ostree-option-table.mjs (which reads the real `ostree`'s and
 * larch's help and tries every option on larch) and must equal the README's copy, and every row
 * that is not "supported" must carry a reason from tooling/conformance/option-notes.json.
 *
 * The script starts several hundred short larch processes, so the run takes minutes on a loaded
 * machine; the timeout only guards against a hang.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { requireOstree, RUN_INTEROP } from './helpers.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const SCRIPT = resolve(root, 'tooling/scripts/ostree-option-table.mjs');
const README = resolve(root, 'apps/cli/README.md');
const BEGIN = '<!-- ostree-option-table:begin -->';
const END = '<!-- ostree-option-table:end -->';

interface Row {
  verb: string;
  option: string;
  larch: string;
  supported: boolean;
}
interface Table {
  section: string;
  rows: Row[];
  problems: string[];
}

function generate(): Promise<Table> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, [SCRIPT, '--json'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => {
      // Status 1 with JSON means problems, which the tests below report one by one.
      if (status !== 0 && status !== 1) reject(new Error(`ostree-option-table.mjs failed (${status}): ${stderr.trim()}`));
      else resolveRun(JSON.parse(stdout) as Table);
    });
  });
}

/** The generated section as the README holds it. */
function readmeSection(): string {
  const text = readFileSync(README, 'utf8');
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  return a < 0 || b < a ? '(no table in apps/cli/README.md)' : text.slice(a, b + END.length);
}

describe.skipIf(!RUN_INTEROP)('ostree verb and option table (interop)', () => {
  let table: Table;
  beforeAll(async () => {
    requireOstree();
    table = await generate();
  }, 30 * 60_000);

  it('lists every verb of ostree 2022.7, its admin, remote and static-delta sub-verbs among them', () => {
    const verbs = new Set(table.rows.map((r) => r.verb));
    for (const v of ['commit', 'pull', 'admin deploy', 'admin instutil set-kargs', 'remote add', 'remote summary', 'static-delta generate', 'find-remotes']) {
      expect(verbs).toContain(v);
    }
  });

  it('gives every row that is not supported a reason, and keeps no reason a supported row does not need', () => {
    expect(table.problems).toEqual([]);
    for (const r of table.rows.filter((row) => !row.supported)) expect(r.larch).toMatch(/^(missing|deliberately different): \S/);
  });

  it('matches the table in apps/cli/README.md (regenerate with `node tooling/scripts/ostree-option-table.mjs --write`)', () => {
    expect(readmeSection()).toBe(table.section);
  });
});
