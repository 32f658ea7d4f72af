/**
 * Command-line flags and the JSON config file, both validated with zod. Flags win over the
 * config file; `--repo` replaces the config file's repository list with one repository at `/`.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { isRepoName, publishConfigSchema, type PublishConfig } from '@larch/publish';
import { z } from 'zod';
import { defaultStateDir } from './demo-repo.js';

const port = z.coerce.number().int().min(0).max(65535);
const logFormat = z.enum(['json', 'text']);
/** Seconds to complete request headers: bounded by the request timeout of static requests (60 s). */
const headersTimeout = z.number().positive().max(60);
/** Seconds an idle keep-alive connection is kept. */
const keepAliveTimeout = z.number().positive().max(3600);

/** Schema of the config file (`--config=FILE`). */
export const ConfigFileSchema = z
  .object({
    bind: z.string().min(1).optional(),
    port: port.optional(),
    logFormat: logFormat.optional(),
    accessLog: z.string().min(1).optional(),
    maxConnections: z.number().int().min(1).max(1_000_000).optional(),
    headersTimeout: headersTimeout.optional(),
    keepAliveTimeout: keepAliveTimeout.optional(),
    shutdownTimeout: z.number().min(0).max(3600).optional(),
    cacheSize: z.number().int().min(0).max(65536).optional(),
    /** SQLite file of tokens, publish jobs, rollouts and devices (enables the /api/). */
    database: z.string().min(1).optional(),
    /** Automatic pause of a ref whose newest commit fails on too many devices. */
    fleet: z
      .object({ autoPause: z.object({ threshold: z.number().min(0).max(1).optional(), minFailed: z.number().int().min(1).optional() }).strict().optional() })
      .strict()
      .optional(),
    repos: z
      .array(
        z
          .object({
            prefix: z.string().startsWith('/'),
            path: z.string().min(1),
            /** API name; default: the prefix without its slashes (inner ones become `-`), `default` for `/`. */
            name: z.string().refine(isRepoName, 'must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$').optional(),
            /** Publishing settings: signing keys, deltas, prune. */
            publish: publishConfigSchema.optional(),
          })
          .strict(),
      )
      .min(1),
  })
  .strict();

/** A parsed config file. */
export type ConfigFile = z.infer<typeof ConfigFileSchema>;

const FlagsSchema = z
  .object({
    repo: z.string().min(1).optional(),
    port: port.optional(),
    bind: z.string().min(1).optional(),
    config: z.string().min(1).optional(),
    'log-format': logFormat.optional(),
    'access-log': z.string().min(1).optional(),
    'state-dir': z.string().min(1).optional(),
    'shutdown-timeout': z.coerce.number().min(0).max(3600).optional(),
    'max-connections': z.coerce.number().int().min(1).max(1_000_000).optional(),
    'headers-timeout': z.coerce.number().pipe(headersTimeout).optional(),
    'keep-alive-timeout': z.coerce.number().pipe(keepAliveTimeout).optional(),
    'cache-size': z.coerce.number().int().min(0).max(65536).optional(),
    database: z.string().min(1).optional(),
    help: z.boolean().optional(),
    version: z.boolean().optional(),
  })
  .strict();

/** A repository to serve, with its API name and publish settings. */
export interface ResolvedRepo {
  prefix: string;
  path: string;
  name: string;
  publish?: PublishConfig;
}

/** Everything main() needs, after merging flags over the config file. */
export interface ResolvedOptions {
  /** Repositories to serve; empty means "serve the demo repository". */
  repos: ResolvedRepo[];
  /**
   * Database file; set when `--database`/`database` is given or a repository has a `publish`
   * section (then `<state-dir>/larch-server.db`). When unset the server has no /api/.
   */
  database?: string;
  /** Fleet auto-pause policy from the config file. */
  autoPause?: { threshold?: number; minFailed?: number };
  bind: string;
  port: number;
  logFormat: 'json' | 'text';
  /** Access-log file; undefined means stderr. */
  accessLog?: string;
  stateDir?: string;
  shutdownTimeoutMs: number;
  maxConnections?: number;
  /** Time to complete request headers, in ms (undefined: the server's default). */
  headersTimeoutMs?: number;
  /** Idle keep-alive timeout, in ms (undefined: the server's default). */
  keepAliveTimeoutMs?: number;
  /** Object cache size in bytes. */
  objectCacheBytes?: number;
  help: boolean;
  version: boolean;
}

/** Default port when neither flags nor config give one. */
export const DEFAULT_PORT = 8080;

/** The `--help` text. */
export const USAGE = `Usage: larch-server [--repo=PATH] [--port=N] [--bind=ADDR] [--config=FILE]
                    [--log-format=json|text] [--access-log=FILE] [--state-dir=DIR]
                    [--shutdown-timeout=SECS] [--max-connections=N] [--cache-size=MIB]
                    [--headers-timeout=SECS] [--keep-alive-timeout=SECS]

Serve OSTree archive repositories over HTTP (GET and HEAD only).

  --repo=PATH            serve the repository at PATH at /
  --config=FILE          JSON: {"bind": "127.0.0.1", "port": 8080, "repos": [{"prefix": "/os", "path": "…"}]}
  --port=N               port (default ${DEFAULT_PORT}; 0 picks a free port)
  --bind=ADDR            address to listen on (default 127.0.0.1)
  --log-format=FORMAT    access log as json lines (default) or text
  --access-log=FILE      append the access log to FILE instead of stderr
  --state-dir=DIR        where the demo repository is cached (default $XDG_CACHE_HOME/larch)
  --shutdown-timeout=S   seconds to let requests finish on SIGINT/SIGTERM (default 10)
  --max-connections=N    simultaneous connections (default 1024); at the limit a new
                         connection replaces an idle one or the oldest one still sending
                         its request headers
  --headers-timeout=S    seconds a client has to send its request headers (default 20, at
                         most 60); then 408 and the connection is closed
  --keep-alive-timeout=S seconds an idle keep-alive connection is kept (default 15)
  --cache-size=MIB       memory for small immutable objects (default 32; 0 disables)
  --database=FILE        SQLite file of tokens, publish jobs, rollouts and devices; enables
                         the /api/ (default with a "publish" config: STATE-DIR/larch-server.db)

       larch-server token create --database=FILE --repo=NAME|* --rights=R[,R…] [--ref-prefix=P]
                         [--expires=30d] [--device=ID] [--label=L] [--json]
       larch-server token list --database=FILE [--json]
       larch-server token revoke --database=FILE ID

Without --repo or --config, serves a demo repository with the branch larch/demo.
`;

/** A usage mistake: printed with the usage hint, exit status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

function zodMessage(e: z.ZodError, where: string): string {
  return e.issues.map((i) => `${where}${i.path.length ? ` ${i.path.join('.')}` : ''}: ${i.message}`).join('; ');
}

/** Parse argv (without node and script) and the config file it names. */
export async function resolveOptions(argv: readonly string[]): Promise<ResolvedOptions> {
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        repo: { type: 'string' },
        port: { type: 'string' },
        bind: { type: 'string' },
        config: { type: 'string' },
        'log-format': { type: 'string' },
        'access-log': { type: 'string' },
        'state-dir': { type: 'string' },
        'shutdown-timeout': { type: 'string' },
        'max-connections': { type: 'string' },
        'headers-timeout': { type: 'string' },
        'keep-alive-timeout': { type: 'string' },
        'cache-size': { type: 'string' },
        database: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const flags = FlagsSchema.safeParse(values);
  if (!flags.success) throw new UsageError(zodMessage(flags.error, 'option'));
  const f = flags.data;

  let cfg: ConfigFile | undefined;
  if (f.config !== undefined) {
    let text: string;
    try {
      text = await readFile(f.config, 'utf8');
    } catch (e) {
      throw new UsageError(`Reading config file ${f.config}: ${(e as Error).message}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new UsageError(`Config file ${f.config} is not valid JSON: ${(e as Error).message}`);
    }
    const parsed = ConfigFileSchema.safeParse(json);
    if (!parsed.success) throw new UsageError(zodMessage(parsed.error, `config file ${f.config}:`));
    cfg = parsed.data;
  }

  const repos: ResolvedRepo[] = (f.repo !== undefined ? [{ prefix: '/', path: f.repo }] : (cfg?.repos ?? [])).map((r) => ({
    ...r,
    name: 'name' in r && r.name !== undefined ? r.name : defaultRepoName(r.prefix),
  }));
  const publishing = repos.some((r) => r.publish !== undefined);
  const database = f.database ?? cfg?.database ?? (publishing ? join(f['state-dir'] ?? defaultStateDir(), 'larch-server.db') : undefined);
  // Names matter only to the API (duplicate prefixes are reported by the server itself).
  if (database !== undefined) {
    for (const r of repos) {
      if (!isRepoName(r.name)) throw new UsageError(`Repository at prefix ${r.prefix} needs a "name" (${JSON.stringify(r.name)} is not a valid name)`);
    }
  }
  return {
    repos,
    ...(database !== undefined ? { database } : {}),
    ...(cfg?.fleet?.autoPause !== undefined ? { autoPause: cfg.fleet.autoPause } : {}),
    bind: f.bind ?? cfg?.bind ?? '127.0.0.1',
    port: f.port ?? cfg?.port ?? DEFAULT_PORT,
    logFormat: f['log-format'] ?? cfg?.logFormat ?? 'json',
    accessLog: f['access-log'] ?? cfg?.accessLog,
    stateDir: f['state-dir'],
    shutdownTimeoutMs: 1000 * (f['shutdown-timeout'] ?? cfg?.shutdownTimeout ?? 10),
    maxConnections: f['max-connections'] ?? cfg?.maxConnections,
    headersTimeoutMs: seconds(f['headers-timeout'] ?? cfg?.headersTimeout),
    keepAliveTimeoutMs: seconds(f['keep-alive-timeout'] ?? cfg?.keepAliveTimeout),
    objectCacheBytes: (f['cache-size'] ?? cfg?.cacheSize) === undefined ? undefined : 1024 * 1024 * (f['cache-size'] ?? cfg?.cacheSize)!,
    help: f.help ?? false,
    version: f.version ?? false,
  };
}

function seconds(s: number | undefined): number | undefined {
  return s === undefined ? undefined : Math.round(s * 1000);
}

/** The API name of a repository mounted at `prefix`: `default` for `/`, else the segments joined by `-`. */
export function defaultRepoName(prefix: string): string {
  const segs = prefix.split('/').filter((x) => x !== '');
  return segs.length === 0 ? 'default' : segs.join('-');
}
