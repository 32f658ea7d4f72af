/**
 * `larch-server token create|list|revoke`: manage the API's bearer tokens in the server's
 * database. `create` prints the token once (only its hash is stored): the token alone on
 * stdout, a description on stderr, or everything as JSON with --json.
 *
 * The database must not be open in a running server at the same time (one process owns the
 * file); stop the server or run these before starting it.
 */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { Database } from '@larch/db';
import { RIGHTS, TokenStore, parseExpiry, type Right, type TokenRecord } from '@larch/publish';
import { z } from 'zod';
import type { CliIo } from './cli.js';
import { UsageError, resolveOptions } from './options.js';

/** Usage of the token commands. */
export const TOKEN_USAGE = `Usage: larch-server token create --database=FILE --repo=NAME|* --rights=R[,R…] [--ref-prefix=P]
                                [--expires=30d|ISO-DATE|never] [--device=ID] [--label=L] [--json]
       larch-server token list --database=FILE [--json]
       larch-server token revoke --database=FILE ID

Rights: ${RIGHTS.join(', ')} (admin implies every right).
--database may be replaced by --config=FILE (its "database") or --state-dir=DIR.
`;

const rightsSchema = z
  .string()
  .transform((s) => s.split(',').map((x) => x.trim()).filter((x) => x !== ''))
  .pipe(z.array(z.enum(RIGHTS as unknown as [Right, ...Right[]])).min(1, 'at least one right'));

function describe(r: TokenRecord): string {
  const parts = [`repo ${r.repo}`, `rights ${r.rights.join(',')}`];
  if (r.refPrefix !== '') parts.push(`refs ${r.refPrefix}*`);
  if (r.deviceId !== null) parts.push(`device ${r.deviceId}`);
  parts.push(r.expiresAt !== null ? `expires ${r.expiresAt}` : 'no expiry');
  return parts.join(', ');
}

/** Run `token …` (argv after the word `token`); resolves with the exit status. */
export async function runTokenCli(argv: readonly string[], io: CliIo): Promise<number> {
  const out = (s: string): void => {
    io.stdout.write(s);
  };
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: true,
      options: {
        database: { type: 'string' },
        config: { type: 'string' },
        'state-dir': { type: 'string' },
        repo: { type: 'string' },
        'ref-prefix': { type: 'string' },
        rights: { type: 'string' },
        expires: { type: 'string' },
        device: { type: 'string' },
        label: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const [sub, ...rest] = positionals;
  if (values.help) {
    out(TOKEN_USAGE);
    return 0;
  }
  if (sub === undefined) {
    io.stderr.write(TOKEN_USAGE);
    return 2;
  }
  let database = values.database as string | undefined;
  if (database === undefined && values.config !== undefined) database = (await resolveOptions([`--config=${String(values.config)}`])).database;
  if (database === undefined && values['state-dir'] !== undefined) database = join(String(values['state-dir']), 'larch-server.db');
  if (database === undefined) throw new UsageError('token: --database=FILE is required (or --config with a "database")');
  if (sub === 'create') {
    if (rest.length > 0) throw new UsageError(`token create: unexpected argument ${rest[0]}`);
    if (values.repo === undefined) throw new UsageError('token create: --repo=NAME (or *) is required');
    if (values.rights === undefined) throw new UsageError('token create: --rights=R[,R…] is required');
    const rights = rightsSchema.safeParse(values.rights);
    if (!rights.success) throw new UsageError(`token create: --rights: ${rights.error.issues[0]?.message ?? 'invalid'} (rights: ${RIGHTS.join(', ')})`);
    let expiresAt: Date | null = null;
    if (values.expires !== undefined) {
      try {
        expiresAt = parseExpiry(String(values.expires));
      } catch (e) {
        throw new UsageError(`token create: --expires: ${(e as Error).message}`);
      }
    }
    mkdirSync(dirname(database), { recursive: true });
    const db = Database.open(database);
    try {
      const store = new TokenStore(db);
      let created;
      try {
        created = store.create({
          repo: String(values.repo),
          rights: rights.data,
          expiresAt,
          ...(values['ref-prefix'] !== undefined ? { refPrefix: String(values['ref-prefix']) } : {}),
          ...(values.device !== undefined ? { deviceId: String(values.device) } : {}),
          ...(values.label !== undefined ? { label: String(values.label) } : {}),
        });
      } catch (e) {
        if (e instanceof z.ZodError) {
          const i = e.issues[0];
          throw new UsageError(`token create: ${i?.path.join('.') ?? ''}: ${i?.message ?? 'invalid'}`);
        }
        throw e;
      }
      if (values.json) out(`${JSON.stringify({ ...created.record, token: created.token })}\n`);
      else {
        io.stderr.write(`Created token ${created.record.id} (${describe(created.record)}); it is shown only once:\n`);
        out(`${created.token}\n`);
      }
    } finally {
      db.close();
    }
    return 0;
  }
  if (sub === 'list') {
    if (rest.length > 0) throw new UsageError(`token list: unexpected argument ${rest[0]}`);
    const db = Database.open(database);
    try {
      const list = new TokenStore(db).list();
      if (values.json) out(`${JSON.stringify({ tokens: list })}\n`);
      else for (const r of list) out(`${r.id}  ${describe(r)}${r.label !== '' ? `  "${r.label}"` : ''}\n`);
    } finally {
      db.close();
    }
    return 0;
  }
  if (sub === 'revoke') {
    if (rest.length !== 1) throw new UsageError('token revoke: exactly one token ID is required');
    const db = Database.open(database);
    try {
      const ok = new TokenStore(db).revoke(rest[0]);
      if (!ok) {
        io.stderr.write(`larch-server: error: No token ${rest[0]}\n`);
        return 1;
      }
      if (values.json) out(`${JSON.stringify({ revoked: rest[0] })}\n`);
      else out(`Revoked token ${rest[0]}\n`);
    } finally {
      db.close();
    }
    return 0;
  }
  throw new UsageError(`token: unknown command ${sub} (create, list, revoke)`);
}
