import { cpSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { interopDescribe, ostreeOk, requireOstree, tmpDir, writeSeededFile, type TmpDir } from '@larch/test-fixtures';
import { SAMPLE_TREE, makeLarchRepo, ostreePullAndCheck, rssKiB, startServerProcess, type ServerProcess } from './support.js';

const describeInterop = interopDescribe(describe);
const CLIENTS = 50;
/** Size of the one large file in the pulled tree: 50 clients × this would show in RSS if buffered. */
const BIG = 8 * 1024 * 1024;
/** Allowed RSS growth of the server over its idle size while serving all clients. */
const RSS_GROWTH_LIMIT_KIB = 96 * 1024;

let tmp: TmpDir;
let server: ServerProcess;
let tree: string;
let commit: string;

describeInterop('load: 50 concurrent ostree pulls from one larch-server', () => {
  beforeAll(async () => {
    requireOstree();
    tmp = await tmpDir('larch-server-load-');
    tree = tmp.join('tree');
    cpSync(SAMPLE_TREE, tree, { recursive: true, verbatimSymlinks: true });
    // Seeded (incompressible) data so the .filez object stays about BIG bytes.
    await writeSeededFile(tmp.join('tree/usr/lib/big.img'), BIG, 7);
    commit = await makeLarchRepo(tmp.join('repo'), tree, 'os/main');
    server = await startServerProcess([`--repo=${tmp.join('repo')}`, '--port=0', `--access-log=${tmp.join('access.log')}`]);
  });

  afterAll(async () => {
    await server?.stop();
    await tmp?.cleanup();
  });

  it('completes every pull with the same commit, fsck-clean, with bounded server memory', async () => {
    const idle = await rssKiB(server.pid);
    let peak = idle;
    const sampler = setInterval(() => {
      void rssKiB(server.pid).then((v) => (peak = Math.max(peak, v)), () => undefined);
    }, 25);
    let results: string[];
    try {
      results = await Promise.all(
        Array.from({ length: CLIENTS }, (_, i) => ostreePullAndCheck(tmp.join(`dest-${i}`), 'archive', server.url, 'os/main', i === 0 ? tree : null)),
      );
    } finally {
      clearInterval(sampler);
    }
    expect(new Set(results)).toEqual(new Set([commit]));
    expect(results).toHaveLength(CLIENTS);
    // The big object reached every client whole (the fsck above verified its checksum).
    const big = (await ostreeOk(['ls', `--repo=${tmp.join('dest-7')}`, 'origin:os/main', '/usr/lib/big.img'])).stdout;
    expect(big).toContain(String(BIG));
    console.log(`larch-server RSS: idle ${Math.round(idle / 1024)} MiB, peak ${Math.round(peak / 1024)} MiB during ${CLIENTS} concurrent pulls`);
    expect(peak - idle).toBeLessThan(RSS_GROWTH_LIMIT_KIB);
  });
});
