/**
 * Test trees for deltas: two versions of a small tree with the kinds of change a delta must
 * handle (modified binaries for bsdiff and rollsum, a renamed library, new, removed and unchanged
 * files, symlinks, an empty file, a file large enough for a fallback), committed to a Larch repo.
 */
import { mkdir, rm, writeFile, symlink, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { Repo, checkout, commitTree, type Checksum, type RepoMode } from '@larch/core-store';
import { compareTrees } from '@larch/test-fixtures';

/** Deterministic pseudo-random bytes (xorshift32) with a little structure so xz and bsdiff have work. */
export function seeded(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed * 2654435761 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = i % 7 === 0 ? (x >>> 3) & 0x3f : x & 0xff;
  }
  return b;
}

/** `base` with a few bytes flipped and `insert` bytes inserted in the middle. */
export function mutate(base: Buffer, seed: number, insert = 1024): Buffer {
  const out = Buffer.concat([base.subarray(0, base.length >> 1), seeded(insert, seed), base.subarray(base.length >> 1)]);
  for (let i = 0; i < 20; i++) out[(i * 7919 * seed) % out.length] ^= 0x5a;
  return out;
}

/**
 * An apt-like `Packages` file and a `Translation-en` for the same packages (a different name and
 * mostly different text, sharing each package's description checksum and summary): a content pair.
 */
export function aptLists(count: number): { packages: string; translation: string } {
  const words = ['data', 'library', 'tool', 'files', 'support', 'the', 'for', 'with', 'network', 'system', 'shared', 'development', 'runtime', 'module', 'plugin', 'utility'];
  const rnd = seeded(count * 64, 21);
  let r = 0;
  const word = (): string => words[rnd[r++ % rnd.length] % words.length];
  const hex = (i: number): string => Buffer.from(seeded(16, 1000 + i)).toString('hex');
  let packages = '';
  let translation = '';
  for (let i = 0; i < count; i++) {
    const summary = `${word()} ${word()} ${word()} package number ${i} ${word()} ${word()}`;
    packages += `Package: pkg${i}\nVersion: 1.${i}-${i % 7}\nInstalled-Size: ${100 + i * 3}\nDescription: ${summary}\nDescription-md5: ${hex(i)}\nSection: misc\n\n`;
    let long = '';
    for (let w = 0; w < 30; w++) long += (w % 10 === 0 ? '\n ' : ' ') + word();
    translation += `Package: pkg${i}\nDescription-md5: ${hex(i)}\nDescription-en: ${summary}\n${long.slice(1)}\n\n`;
  }
  return { packages, translation };
}

async function put(root: string, rel: string, data: string | Buffer, mode = 0o644): Promise<void> {
  const p = join(root, rel);
  await mkdir(join(p, '..'), { recursive: true });
  await writeFile(p, data);
  await chmod(p, mode);
}

export interface Versions {
  repo: Repo;
  v1: Checksum;
  v2: Checksum;
  tree1: string;
  tree2: string;
}

/** Build the two trees under `dir` and commit them (v1, then v2 with v1 as parent) to a repo of `mode`. */
export async function makeVersions(dir: string, mode: RepoMode = 'archive', opts: { bigSize?: number } = {}): Promise<Versions> {
  const t1 = join(dir, 'tree1');
  const t2 = join(dir, 'tree2');
  const tool = seeded(150_000, 1);
  const lib = seeded(80_000, 2);
  const data = seeded(200_000, 3);
  const big = seeded(opts.bigSize ?? 1_200_000, 4);
  await put(t1, 'usr/bin/tool', tool, 0o755);
  await put(t1, 'usr/lib/libfoo.so.1', lib);
  await put(t1, 'usr/share/data.bin', data);
  await put(t1, 'usr/share/big.dat', big);
  await put(t1, 'etc/config', 'key=value\nother=1\n');
  await put(t1, 'usr/share/doc/readme.txt', 'old documentation\n'.repeat(50));
  await put(t1, 'empty', '');
  await symlink('usr/bin/tool', join(t1, 'tool-link'));
  const lists = aptLists(2000);
  await put(t1, 'var/lib/apt/lists/main_Packages', lists.packages);

  await put(t2, 'usr/bin/tool', mutate(tool, 5), 0o755);
  await put(t2, 'usr/lib/libfoo.so.2', mutate(lib, 6, 256));
  // Mostly identical 32 KiB-chunk-aligned content: a rollsum candidate.
  await put(t2, 'usr/share/data.bin', Buffer.concat([data.subarray(0, 150_000), seeded(3000, 9), data.subarray(150_000)]));
  await put(t2, 'usr/share/big.dat', big);
  await put(t2, 'etc/config', 'key=value\nother=2\nnew=yes\n');
  await put(t2, 'usr/share/doc/new.txt', 'new documentation\n'.repeat(40));
  await put(t2, 'empty', '');
  await put(t2, 'setuid-helper', seeded(5000, 11), 0o4755);
  await symlink('usr/bin/tool', join(t2, 'tool-link'));
  await symlink('../lib/libfoo.so.2', join(t2, 'usr/bin/libfoo-link'));
  await put(t2, 'var/lib/apt/lists/main_Packages', lists.packages);
  await put(t2, 'var/lib/apt/lists/main_i18n_Translation-en', lists.translation);

  const repo = await Repo.init({ path: join(dir, 'src-repo'), mode });
  const c1 = await commitTree(repo, { tree: t1, branch: 'main', subject: 'v1', timestamp: 1_600_000_000n, ownerUid: 0, ownerGid: 0, noXattrs: true });
  const c2 = await commitTree(repo, { tree: t2, branch: 'main', subject: 'v2', timestamp: 1_600_086_400n, ownerUid: 0, ownerGid: 0, noXattrs: true });
  return { repo, v1: c1.commit, v2: c2.commit, tree1: t1, tree2: t2 };
}

/** Check out `commit` from `repo` into `dest` and compare with `tree` (content, modes, symlinks). */
export async function expectSameTree(repo: Repo, commit: Checksum, dest: string, tree: string): Promise<void> {
  await rm(dest, { recursive: true, force: true });
  await checkout(repo, { commit, dest, userMode: repo.mode === 'bare-user' || repo.mode === 'archive' });
  const diffs = await compareTrees(tree, dest, { rootMode: false, fileModeMask: 0o777 });
  if (diffs.length > 0) throw new Error(`checkout differs: ${JSON.stringify(diffs.slice(0, 5))}`);
}

/** A static file server on 127.0.0.1 (ephemeral port) that records request paths and bytes sent. */
export interface StaticServer {
  url: string;
  requests: string[];
  bytesSent: number;
  stop(): Promise<void>;
}

export async function serveDir(root: string): Promise<StaticServer> {
  const http = await import('node:http');
  const { createReadStream, promises: fs } = await import('node:fs');
  const state = { requests: [] as string[], bytesSent: 0 };
  const server = http.createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    state.requests.push(path);
    if (path.split('/').includes('..')) {
      res.writeHead(400).end();
      return;
    }
    const file = join(root, path);
    fs.stat(file).then(
      (st) => {
        if (!st.isFile()) {
          res.writeHead(404).end();
          return;
        }
        res.writeHead(200, { 'content-length': String(st.size) });
        state.bytesSent += st.size;
        createReadStream(file).pipe(res);
      },
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    get requests() {
      return state.requests;
    },
    get bytesSent() {
      return state.bytesSent;
    },
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
