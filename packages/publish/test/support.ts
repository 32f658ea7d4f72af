/**
 * Test support: a publisher behind a plain node:http server (the API only), repositories built
 * with core-store, and a token store on an in-memory database.
 */
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Repo, commitTree, type RepoMode } from '@larch/core-store';
import { Database } from '@larch/db';
import { ApiError, Publisher, TokenStore, assertSafeTarget, createPublishApi, sendApiError, type PublishConfig } from '../src/index.js';

export interface TestServer {
  url: string;
  db: Database;
  tokens: TokenStore;
  publisher: Publisher;
  server: Server;
  /** Request lines seen, `METHOD PATH STATUS`. */
  log: string[];
  close(): Promise<void>;
}

/** A publisher for one repository named `os`, served on 127.0.0.1:0. */
export async function startTestServer(repoPath: string, publish: PublishConfig = {}, name = 'os'): Promise<TestServer> {
  const db = Database.open(':memory:');
  const tokens = new TokenStore(db);
  const publisher = await Publisher.open({ db, repos: [{ name, path: repoPath, publish }] });
  const api = createPublishApi({ publisher, tokens });
  const log: string[] = [];
  const server = createServer((req, res) => {
    const target = req.url ?? '';
    res.on('finish', () => log.push(`${req.method} ${target} ${res.statusCode}`));
    void (async () => {
      try {
        assertSafeTarget(target);
        if (!(await api(req, res, new URL(target, 'http://localhost')))) throw new ApiError(404, 'not-found', 'no such endpoint');
      } catch (e) {
        sendApiError(res, e);
      }
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    db,
    tokens,
    publisher,
    server,
    log,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await publisher.close();
      db.close();
    },
  };
}

/** A small tree: nested files, a larger file, a symlink, an executable. */
export async function smallTree(dir: string, variant = 0): Promise<void> {
  await mkdir(join(dir, 'usr/bin'), { recursive: true });
  await mkdir(join(dir, 'usr/share/doc'), { recursive: true });
  await writeFile(join(dir, 'usr/bin/tool'), `#!/bin/sh\necho tool ${variant}\n`, { mode: 0o755 });
  await writeFile(join(dir, 'usr/share/doc/README'), 'read me\n');
  await writeFile(join(dir, 'usr/share/doc/big.bin'), Buffer.alloc(600_000, 7 + variant));
  await symlink('bin/tool', join(dir, 'usr/tool-link'));
  await writeFile(join(dir, 'usr/share/doc/v'), `version ${variant}\n`);
}

/** Initialise a repository and commit `tree` to `ref`. */
export async function commitTo(path: string, mode: RepoMode, tree: string, ref: string, subject: string): Promise<{ repo: Repo; commit: string }> {
  let repo: Repo;
  try {
    repo = await Repo.open(path);
  } catch {
    repo = await Repo.init({ path, mode });
  }
  const r = await commitTree(repo, { tree, branch: ref, subject, timestamp: BigInt(1_700_000_000 + subject.length) });
  return { repo, commit: r.commit };
}

/** Every object file name under `objects/` (`xx/yyy.ext`). */
export async function objectFiles(repoPath: string): Promise<string[]> {
  const out: string[] = [];
  const root = join(repoPath, 'objects');
  for (const d of await readdir(root)) {
    for (const f of await readdir(join(root, d))) out.push(`${d}/${f}`);
  }
  return out.sort();
}

/** Authorization header for `token`. */
export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}
