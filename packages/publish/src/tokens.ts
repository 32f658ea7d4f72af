/**
 * Scoped bearer tokens. A token grants rights (`read`, `push`, `publish`, `admin`, `checkin`)
 * on one repository (or `*`), optionally only for refs under a prefix, optionally bound to one
 * device, until an optional expiry. Only the sha256 of a token is stored (table
 * `publish_tokens`); the token itself is returned once by {@link TokenStore.create}.
 *
 * Token text: `larch_` + 43 base64url characters (32 random bytes). Lookups are by hash, so
 * the comparison does not leak timing about stored tokens. Revocation and expiry take effect
 * on the next request: every check reads the database (one indexed lookup, no cache).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Database } from '@larch/db';
import { z } from 'zod';
import { ApiError } from './api-error.js';

/** What a token may do. `admin` implies every other right. */
export type Right = 'read' | 'push' | 'publish' | 'admin' | 'checkin';

/** Every right, in display order. */
export const RIGHTS: readonly Right[] = ['read', 'push', 'publish', 'admin', 'checkin'];

/** zod schema of one right. */
export const rightSchema = z.enum(['read', 'push', 'publish', 'admin', 'checkin']);

/** A stored token, without its secret. */
export interface TokenRecord {
  id: string;
  label: string;
  /** Repository name, or `*` for every repository. */
  repo: string;
  /** Refs the token may touch start with this; `''` means every ref. */
  refPrefix: string;
  rights: Right[];
  deviceId: string | null;
  createdAt: string;
  expiresAt: string | null;
}

/** Options of {@link TokenStore.create}. */
export interface CreateTokenOptions {
  label?: string;
  repo: string;
  refPrefix?: string;
  rights: Right[];
  deviceId?: string;
  expiresAt?: Date | null;
}

/** What a request needs, for {@link TokenStore.authorize}. */
export interface TokenNeed {
  repo: string;
  right: Right;
  ref?: string;
  deviceId?: string;
}

const MIGRATIONS: readonly string[] = [
  `CREATE TABLE publish_tokens (
     id TEXT PRIMARY KEY,
     hash TEXT NOT NULL UNIQUE,
     label TEXT NOT NULL,
     repo TEXT NOT NULL,
     ref_prefix TEXT NOT NULL,
     rights TEXT NOT NULL,
     device_id TEXT,
     created_at TEXT NOT NULL,
     expires_at TEXT,
     revoked_at TEXT
   );`,
];

const createSchema = z
  .object({
    label: z.string().max(200).optional(),
    repo: z.string().regex(/^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,63})$/, 'must be a repository name or *'),
    refPrefix: z.string().max(255).regex(/^[A-Za-z0-9._\-/]*$/, 'must contain only ref characters').optional(),
    rights: z.array(rightSchema).min(1),
    deviceId: z.string().min(1).max(128).regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, 'invalid device id').optional(),
    expiresAt: z.date().nullable().optional(),
  })
  .strict();

interface Row {
  id: string;
  label: string;
  repo: string;
  ref_prefix: string;
  rights: string;
  device_id: string | null;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
}

function toRecord(r: Row): TokenRecord {
  return {
    id: r.id,
    label: r.label,
    repo: r.repo,
    refPrefix: r.ref_prefix,
    rights: r.rights === '' ? [] : (r.rights.split(',') as Right[]),
    deviceId: r.device_id,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
  };
}

/** sha256 (hex) of a token's text: what is stored and looked up. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** The bearer token of a request, or null when there is no `Authorization: Bearer …` header. */
export function bearerToken(req: IncomingMessage): string | null {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return null;
  const m = /^Bearer[ \t]+([A-Za-z0-9._~+/=-]{1,512})[ \t]*$/i.exec(h);
  return m ? m[1] : null;
}

/**
 * Parse an expiry: a duration (`30d`, `12h`, `45m`, `90s`, `2w`) from `now`, an ISO 8601 date,
 * or `never`. Throws RangeError on anything else. Pure.
 */
export function parseExpiry(text: string, now: Date = new Date()): Date | null {
  if (text === 'never') return null;
  const m = /^(\d{1,6})([smhdw])$/.exec(text);
  if (m) {
    const unit = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[m[2] as 's' | 'm' | 'h' | 'd' | 'w'];
    return new Date(now.getTime() + Number(m[1]) * unit * 1000);
  }
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
    const d = new Date(text);
    if (!Number.isNaN(d.getTime())) return d;
  }
  throw new RangeError(`Invalid expiry ${JSON.stringify(text)}: expected a duration like 30d, 12h, 45m, an ISO date, or never`);
}

/**
 * Tokens in the `publish_tokens` table of a database. Synchronous; one process owns the
 * database file. `now` is injectable for tests of expiry.
 */
export class TokenStore {
  constructor(
    private readonly db: Database,
    private readonly now: () => Date = () => new Date(),
  ) {
    db.migrate('publish-tokens', MIGRATIONS);
  }

  /**
   * Issue a token. The returned `token` text is shown once: only its hash is stored. Throws a
   * ZodError on invalid options (empty rights, bad repo name, bad ref prefix).
   */
  create(o: CreateTokenOptions): { record: TokenRecord; token: string } {
    const v = createSchema.parse(o);
    const id = randomBytes(6).toString('hex');
    const token = `larch_${randomBytes(32).toString('base64url')}`;
    const rights = RIGHTS.filter((r) => v.rights.includes(r));
    const row: Row = {
      id,
      label: v.label ?? '',
      repo: v.repo,
      ref_prefix: v.refPrefix ?? '',
      rights: rights.join(','),
      device_id: v.deviceId ?? null,
      created_at: this.now().toISOString(),
      expires_at: v.expiresAt ? v.expiresAt.toISOString() : null,
      revoked_at: null,
    };
    this.db.run(
      `INSERT INTO publish_tokens (id, hash, label, repo, ref_prefix, rights, device_id, created_at, expires_at)
       VALUES ($id, $hash, $label, $repo, $ref_prefix, $rights, $device_id, $created_at, $expires_at)`,
      { $id: id, $hash: hashToken(token), $label: row.label, $repo: row.repo, $ref_prefix: row.ref_prefix, $rights: row.rights, $device_id: row.device_id, $created_at: row.created_at, $expires_at: row.expires_at },
    );
    return { record: toRecord(row), token };
  }

  /** Every token that is not revoked (expired ones included), oldest first. */
  list(): TokenRecord[] {
    return this.db.all<Row>('SELECT * FROM publish_tokens WHERE revoked_at IS NULL ORDER BY created_at, id').map(toRecord);
  }

  /** Revoke a token by id; false when there is no such (unrevoked) token. Effective immediately. */
  revoke(id: string): boolean {
    return this.db.run('UPDATE publish_tokens SET revoked_at = $t WHERE id = $id AND revoked_at IS NULL', { $t: this.now().toISOString(), $id: id }).changes > 0;
  }

  /** The record of a token's text, or null when unknown or revoked (expiry not checked). */
  lookup(token: string): TokenRecord | null {
    const row = this.db.get<Row>('SELECT * FROM publish_tokens WHERE hash = $h AND revoked_at IS NULL', { $h: hashToken(token) });
    return row ? toRecord(row) : null;
  }

  /**
   * Check the request's bearer token against `need`. Throws ApiError 401 (`unauthorized`: no
   * token; `invalid-token`: unknown or revoked; `token-expired`) or 403 (`forbidden`: another
   * repository, a ref outside the prefix, a missing right, another device). `admin` implies every
   * right; a ref prefix only restricts requests that name a ref.
   */
  authorize(req: IncomingMessage, need: TokenNeed): TokenRecord {
    const text = bearerToken(req);
    if (text === null) throw new ApiError(401, 'unauthorized', 'Missing bearer token (Authorization: Bearer …)');
    const rec = this.lookup(text);
    if (rec === null) throw new ApiError(401, 'invalid-token', 'Unknown or revoked token');
    if (rec.expiresAt !== null && Date.parse(rec.expiresAt) <= this.now().getTime()) {
      throw new ApiError(401, 'token-expired', `Token ${rec.id} expired at ${rec.expiresAt}`);
    }
    return checkScope(rec, need);
  }
}

/** The scope part of {@link TokenStore.authorize}: repo, right, ref prefix, device. Pure. */
export function checkScope(rec: TokenRecord, need: TokenNeed): TokenRecord {
  if (rec.repo !== '*' && rec.repo !== need.repo) {
    throw new ApiError(403, 'forbidden', `Token ${rec.id} is not valid for repository ${need.repo}`);
  }
  if (!rec.rights.includes('admin') && !rec.rights.includes(need.right)) {
    throw new ApiError(403, 'forbidden', `Token ${rec.id} lacks the right '${need.right}'`);
  }
  if (need.ref !== undefined && rec.refPrefix !== '' && !need.ref.startsWith(rec.refPrefix)) {
    throw new ApiError(403, 'forbidden', `Token ${rec.id} is limited to refs starting with '${rec.refPrefix}', not '${need.ref}'`);
  }
  if (need.deviceId !== undefined && rec.deviceId !== null && rec.deviceId !== need.deviceId && !rec.rights.includes('admin')) {
    throw new ApiError(403, 'forbidden', `Token ${rec.id} is bound to another device`);
  }
  return rec;
}
