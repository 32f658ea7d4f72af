/**
 * Calls to larch-server's /api/v1/. The bearer token is kept in localStorage (the console is a
 * static page; there is no session). Every failure becomes an ApiFailure carrying the HTTP status
 * and the server's error code and message, which the pages show as they are.
 */
import type { CommitInfo, DeltasResponse, DiffResponse, LogResponse, RefsResponse, ReposResponse, TreeResponse } from '@larch/browse';

export const TOKEN_KEY = 'larch.console.token';

export function getToken(): string {
  try {
    return localStorage.getItem(TOKEN_KEY) ?? '';
  } catch {
    return '';
  }
}

export function setToken(token: string): void {
  if (token === '') localStorage.removeItem(TOKEN_KEY);
  else localStorage.setItem(TOKEN_KEY, token);
}

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiFailure';
  }
}

async function call<T>(method: 'GET' | 'PUT', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`/api/v1/${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiFailure(0, 'network-error', `Cannot reach the server: ${(e as Error).message}`);
  }
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON: reported below */
  }
  if (!res.ok) {
    const err = (json as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiFailure(res.status, err?.code ?? 'http-error', err?.message ?? `${res.status} ${res.statusText}`);
  }
  if (json === null) throw new ApiFailure(res.status, 'bad-response', `The server answered ${path} with something other than JSON`);
  return json as T;
}

const enc = encodeURIComponent;
/** A ref keeps its slashes as path separators; each component is encoded. */
const refPath = (ref: string): string => ref.split('/').map(enc).join('/');

export interface Rollout {
  ref: string;
  percent: number;
  paused: boolean;
  reason: string | null;
  updatedAt: string | null;
}

export interface HealthResult {
  name: string;
  kind?: string;
  ok: boolean;
}

/** A device as `GET /api/v1/repos/{repo}/devices` shows it (what it sent at its last check-in). */
export interface Device {
  deviceId: string;
  ref: string;
  phase: string;
  degraded: boolean;
  booted: { commit: string; version: string | null } | null;
  target: { commit: string; version: string | null } | null;
  badCommits: string[];
  lastError: { phase: string; code: string; message: string } | null;
  lastSeen: string;
  health: HealthResult[];
}

export const api = {
  repos: () => call<ReposResponse>('GET', 'repos'),
  refs: (repo: string) => call<RefsResponse>('GET', `repos/${enc(repo)}/refs`),
  log: (repo: string, ref: string, limit = 50) => call<LogResponse>('GET', `repos/${enc(repo)}/log/${refPath(ref)}?limit=${limit}`),
  commit: (repo: string, csum: string) => call<CommitInfo>('GET', `repos/${enc(repo)}/commits/${enc(csum)}`),
  tree: (repo: string, csum: string, path: string) => call<TreeResponse>('GET', `repos/${enc(repo)}/commits/${enc(csum)}/tree?path=${enc(path)}`),
  diff: (repo: string, csum: string) => call<DiffResponse>('GET', `repos/${enc(repo)}/commits/${enc(csum)}/diff`),
  deltas: (repo: string) => call<DeltasResponse>('GET', `repos/${enc(repo)}/deltas`),
  rollouts: (repo: string) => call<{ rollouts: Rollout[] }>('GET', `repos/${enc(repo)}/rollouts`),
  setRollout: (repo: string, ref: string, body: { percent?: number; paused?: boolean; reason?: string }) =>
    call<Rollout>('PUT', `repos/${enc(repo)}/rollouts/${refPath(ref)}`, body),
  devices: (repo: string) => call<{ devices: Device[] }>('GET', `repos/${enc(repo)}/devices`),
};
