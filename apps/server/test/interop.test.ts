import { randomBytes } from 'node:crypto';
import { cpSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { interopDescribe, ostreeOk, requireOstree, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { SAMPLE_TREE, makeLarchRepo, makeOstreeRepo, ostreePullAndCheck, startServerProcess, type ServerProcess } from './support.js';

const describeInterop = interopDescribe(describe);

let tmp: TmpDir;
let server: ServerProcess;
let tree: string;
const commits: Record<string, string> = {};
const base: Record<string, string> = {};

describeInterop('interop: the real ostree pulls from larch-server', () => {
  beforeAll(async () => {
    requireOstree();
    tmp = await tmpDir('larch-server-interop-');
    tree = tmp.join('tree');
    cpSync(SAMPLE_TREE, tree, { recursive: true, verbatimSymlinks: true });
    // Bigger than one buffered response, so .filez objects are streamed too.
    await writeFile(tmp.join('tree/usr/lib/blob.bin'), randomBytes(700_000));
    commits.ostree = await makeOstreeRepo(tmp.join('by-ostree'), tree, 'os/main');
    commits.larch = await makeLarchRepo(tmp.join('by-larch'), tree, 'os/main');
    await writeFile(
      tmp.join('server.json'),
      JSON.stringify({
        port: 0,
        repos: [
          { prefix: '/ostree', path: tmp.join('by-ostree') },
          { prefix: '/larch', path: tmp.join('by-larch') },
        ],
      }),
    );
    server = await startServerProcess([`--config=${tmp.join('server.json')}`, `--access-log=${tmp.join('access.log')}`], { count: 2 });
    for (const u of server.urls) base[u.endsWith('/ostree/') ? 'ostree' : 'larch'] = u;
  });

  afterAll(async () => {
    await server?.stop();
    await tmp?.cleanup();
  });

  it('serves both repositories from one config file', () => {
    expect(base.ostree).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/ostree\/$/);
    expect(base.larch).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/larch\/$/);
  });

  for (const source of ['ostree', 'larch'] as const) {
    for (const mode of ['archive', 'bare-user'] as const) {
      it(`pulls a repository written by ${source} into ${mode}; fsck passes and the checkout equals the tree`, async () => {
        const dest = tmp.join(`pull-${source}-${mode}`);
        const commit = await ostreePullAndCheck(dest, mode, base[source], 'os/main', tree);
        expect(commit).toBe(commits[source]);
      });
    }
  }

  it('supports a re-pull that finds everything up to date', async () => {
    const dest = tmp.join('pull-ostree-archive');
    const r = await ostreeOk(['pull', `--repo=${dest}`, 'origin', 'os/main']);
    expect(r.code).toBe(0);
    expect((await ostreeOk(['rev-parse', `--repo=${dest}`, 'origin:os/main'])).stdout.trim()).toBe(commits.ostree);
  });

  it('supports ostree pull --mirror (summary required)', async () => {
    const dest = tmp.join('mirror');
    await ostreeOk(['init', `--repo=${dest}`, '--mode=archive']);
    await ostreeOk(['remote', 'add', `--repo=${dest}`, '--no-gpg-verify', 'origin', base.larch]);
    await ostreeOk(['pull', '--mirror', `--repo=${dest}`, 'origin']);
    await ostreeOk(['fsck', `--repo=${dest}`]);
    expect((await ostreeOk(['rev-parse', `--repo=${dest}`, 'os/main'])).stdout.trim()).toBe(commits.larch);
  });
});
