/**
 * The `/api/` of larch-server, assembled from its packages: one database, one token store,
 * the publisher (push, publish jobs, rollouts), the fleet (device check-ins, auto-pause) and
 * the read API of the console. Handlers are tried in that order. The server itself stays a
 * static file server; this module only wires.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { createBrowseApi } from '@larch/browse';
import { Database } from '@larch/db';
import { createFleet, type Fleet } from '@larch/fleet';
import { Publisher, TokenStore, createPublishApi, type ApiHandler } from '@larch/publish';
import type { ResolvedRepo } from './options.js';
import { chainApiHandlers } from './server.js';

/** The running API components. */
export interface ApiStack {
  api: ApiHandler;
  db: Database;
  tokens: TokenStore;
  publisher: Publisher;
  fleet: Fleet;
  /** Finish queued publish jobs, flush the fleet, close the database. */
  close(): Promise<void>;
}

/** Options of {@link openApiStack}. */
export interface ApiStackOptions {
  /** Database file (its directory is created when missing). */
  database: string;
  repos: readonly ResolvedRepo[];
  autoPause?: { threshold?: number; minFailed?: number };
  /** One line per finished publish job. */
  log?: (line: string) => void;
}

/** Open the database and build every API component. */
export async function openApiStack(opts: ApiStackOptions): Promise<ApiStack> {
  if (opts.database !== ':memory:') mkdirSync(dirname(opts.database), { recursive: true });
  const db = Database.open(opts.database);
  try {
    const tokens = new TokenStore(db);
    const publisher = await Publisher.open({
      db,
      repos: opts.repos.map((r) => ({ name: r.name, path: r.path, ...(r.publish !== undefined ? { publish: r.publish } : {}) })),
      ...(opts.log ? { log: opts.log } : {}),
    });
    const fleet = createFleet({
      db,
      tokens,
      repos: publisher.repoNames,
      refCommit: (repo, ref) => publisher.refCommit(repo, ref),
      onAutoPause: async (repo, ref, reason) => {
        await publisher.setRollout(repo, ref, { paused: true, reason });
      },
      ...(opts.autoPause !== undefined ? { autoPause: opts.autoPause } : {}),
    });
    const browse = createBrowseApi({ repos: opts.repos.map((r) => ({ name: r.name, path: r.path })), tokens });
    const api = chainApiHandlers([createPublishApi({ publisher, tokens }), fleet.handler, browse]);
    let closed: Promise<void> | undefined;
    return {
      api,
      db,
      tokens,
      publisher,
      fleet,
      close: () =>
        (closed ??= (async () => {
          await fleet.close();
          await publisher.close();
          db.close();
        })()),
    };
  } catch (e) {
    db.close();
    throw e;
  }
}
