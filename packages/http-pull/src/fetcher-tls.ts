/**
 * How to reach a remote: the keys of its `[remote "NAME"]` group that OSTree 2022.7 hands to
 * its fetcher (`_ostree_repo_remote_new_fetcher`), and what they become for undici.
 *
 *   proxy                  proxy URL for this remote (see fetcher-proxy.ts for the environment)
 *   tls-permissive         `true`: accept a server certificate no CA vouches for (libcurl's
 *                          CURLOPT_SSL_VERIFYPEER=0); the name in it must still match the host,
 *                          as libcurl checks it independently
 *   tls-ca-path            PEM file of the CAs to trust, instead of the system's (CURLOPT_CAINFO)
 *   tls-client-cert-path   PEM client certificate; needs tls-client-key-path, and the other way
 *   tls-client-key-path    round (OSTree refuses one without the other)
 *
 * Files are read, and parsed, once when the fetcher is made: a missing or malformed file is a
 * BAD_CONFIG error naming the key and the path. A server certificate that is refused is an
 * IO_ERROR with `data.reason = 'tls'`, which no retry can cure.
 */
import { readFileSync } from 'node:fs';
import { checkServerIdentity, createSecureContext, TLSSocket, type ConnectionOptions } from 'node:tls';
import { LarchError } from '@larch/core-store';
import type { buildConnector } from 'undici';
import type { RemoteConfig } from './remote-config.js';

/** The transport keys of one remote, as strings checked for shape but not yet read. */
export interface RemoteTransport {
  /** The remote, for messages. */
  remote?: string;
  /** `proxy` (an empty value means none). */
  proxy?: string;
  /** `tls-permissive`. */
  tlsPermissive?: boolean;
  /** `tls-ca-path`. */
  tlsCaPath?: string;
  /** `tls-client-cert-path`. */
  tlsClientCertPath?: string;
  /** `tls-client-key-path`. */
  tlsClientKeyPath?: string;
}

/**
 * The transport keys of a configured remote. Throws LarchError BAD_CONFIG, in OSTree's words,
 * for a `tls-permissive` that is not a boolean and for a client certificate without its key (or
 * a key without its certificate).
 */
export function remoteTransport(cfg: Pick<RemoteConfig, 'name' | 'options'>): RemoteTransport {
  const o = cfg.options;
  const t: RemoteTransport = { remote: cfg.name };
  if (o['proxy'] !== undefined && o['proxy'] !== '') t.proxy = o['proxy'];
  if (o['tls-permissive'] !== undefined) t.tlsPermissive = parseBoolean('tls-permissive', o['tls-permissive']);
  if (o['tls-ca-path'] !== undefined) t.tlsCaPath = o['tls-ca-path'];
  const cert = o['tls-client-cert-path'];
  const key = o['tls-client-key-path'];
  if ((cert === undefined) !== (key === undefined)) {
    throw new LarchError('BAD_CONFIG', `Remote "${cfg.name}" must specify both "tls-client-cert-path" and "tls-client-key-path"`, { remote: cfg.name });
  }
  if (cert !== undefined && key !== undefined) {
    t.tlsClientCertPath = cert;
    t.tlsClientKeyPath = key;
  }
  return t;
}

/** GKeyFile's booleans: `true`/`false`/`1`/`0`. */
function parseBoolean(key: string, raw: string): boolean {
  const v = raw.trim();
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new LarchError('BAD_CONFIG', `Key file contains key “${key}” which has a value that cannot be interpreted.`, { key, value: raw });
}

/** TLS settings ready for undici: options for every TLS connection, and whether names alone are checked. */
export interface LoadedTls {
  options: ConnectionOptions;
  /** tls-permissive: the chain is not verified, the name still is (see {@link nameChecked}). */
  permissive: boolean;
}

/** Read and parse the files a {@link RemoteTransport} names. Throws LarchError BAD_CONFIG naming the key and path. */
export function loadTls(t: RemoteTransport): LoadedTls {
  const options: ConnectionOptions = {};
  if (t.tlsCaPath !== undefined) options.ca = readPem('tls-ca-path', t.tlsCaPath, t.remote);
  if (t.tlsClientCertPath !== undefined && t.tlsClientKeyPath !== undefined) {
    options.cert = readPem('tls-client-cert-path', t.tlsClientCertPath, t.remote);
    options.key = readPem('tls-client-key-path', t.tlsClientKeyPath, t.remote);
  }
  // Parse now, so that a bad file is named here rather than failing every connection later.
  if (options.ca !== undefined) parseOrThrow({ ca: options.ca }, `tls-ca-path ${t.tlsCaPath}`, t.remote);
  if (options.cert !== undefined) {
    parseOrThrow({ cert: options.cert, key: options.key }, `tls-client-cert-path ${t.tlsClientCertPath} or tls-client-key-path ${t.tlsClientKeyPath}`, t.remote);
  }
  const permissive = t.tlsPermissive === true;
  if (permissive) options.rejectUnauthorized = false;
  return { options, permissive };
}

function parseOrThrow(o: ConnectionOptions, what: string, remote: string | undefined): void {
  try {
    createSecureContext(o);
  } catch (e) {
    throw new LarchError('BAD_CONFIG', `${prefix(remote)}Invalid ${what}: ${(e as Error).message}`, { remote }, { cause: e });
  }
}

function prefix(remote: string | undefined): string {
  return remote !== undefined ? `Remote "${remote}": ` : '';
}

function readPem(key: string, path: string, remote: string | undefined): Buffer {
  if (path.startsWith('pkcs11:')) {
    throw new LarchError('BAD_CONFIG', `${prefix(remote)}${key} ${path}: PKCS#11 URIs are not supported`, { remote, key, path });
  }
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    throw new LarchError('BAD_CONFIG', `${prefix(remote)}Cannot read ${key} ${path}: ${code}`, { remote, key, path }, { cause: e });
  }
  if (!bytes.includes('-----BEGIN ')) {
    throw new LarchError('BAD_CONFIG', `${prefix(remote)}${key} ${path} is not a PEM file`, { remote, key, path });
  }
  return bytes;
}

/**
 * With tls-permissive, wrap a connector so that a TLS connection whose certificate does not
 * name the host is refused, as libcurl refuses it with only peer verification turned off (Node
 * skips the name check once it is told to accept an unverified chain). Without it, returns the
 * connector as is.
 */
export function nameChecked(connect: buildConnector.connector, permissive: boolean): buildConnector.connector {
  if (!permissive) return connect;
  return (opts, callback) => {
    connect(opts, (err, socket) => {
      // Only the server's own TLS session: through an https:// proxy an http:// URL's socket is
      // the proxy's.
      if (err !== null || !(socket instanceof TLSSocket) || opts.protocol !== 'https:') {
        (callback as (e: Error | null, s: unknown) => void)(err, socket);
        return;
      }
      // A resumed session carries no certificate to look at; it was checked, for this same
      // host (undici keys its session cache by server name), when the session was made.
      if (socket.isSessionReused()) {
        callback(null, socket);
        return;
      }
      const host = (opts.servername || opts.hostname).replace(/^\[(.*)\]$/, '$1');
      const bad = checkServerIdentity(host, socket.getPeerCertificate());
      if (bad !== undefined) {
        socket.destroy();
        callback(bad, null);
        return;
      }
      callback(null, socket);
    });
  };
}

/** OpenSSL and Node codes of a server certificate that was refused. */
const CERT_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'PATH_LENGTH_EXCEEDED',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * The error for a refused server certificate anywhere in `e`'s cause chain (IO_ERROR, reason
 * `tls`, not retried), or null when `e` is something else.
 */
export function certificateError(e: unknown): LarchError | null {
  for (let c: unknown = e, depth = 0; c instanceof Error && depth < 8; c = c.cause, depth++) {
    const code = (c as NodeJS.ErrnoException).code;
    if (code !== undefined && CERT_CODES.has(code)) {
      return new LarchError('IO_ERROR', `Server certificate refused: ${c.message} (${code})`, { reason: 'tls', tlsCode: code }, { cause: e });
    }
  }
  return null;
}
