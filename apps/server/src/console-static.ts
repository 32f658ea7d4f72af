/**
 * The web console's static files at `/console/`: the built single-page application
 * (`index.html` + hashed `assets/`). Any path under `/console/` that is not a file is answered
 * with `index.html` (client-side routing); `assets/` files are cached as immutable (their names
 * carry a content hash), `index.html` is revalidated. Paths are checked segment by segment (no
 * dot segments, no encoded slashes) and resolved files must stay inside the console directory.
 */
import { createReadStream, realpathSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname } from 'node:path';
import { sendStatus, type ServeOutcome } from './serve-file.js';

/** URL prefix of the console. */
export const CONSOLE_PREFIX = '/console/';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

function sendFile(req: IncomingMessage, res: ServerResponse, path: string, size: number, cache: string): ServeOutcome | Promise<ServeOutcome> {
  res.writeHead(200, {
    'Content-Type': TYPES[extname(path)] ?? 'application/octet-stream',
    'Content-Length': String(size),
    'Cache-Control': cache,
    'X-Content-Type-Options': 'nosniff',
  });
  if (req.method === 'HEAD') {
    res.end();
    return { bytes: 0 };
  }
  return new Promise<ServeOutcome>((resolve) => {
    const s = createReadStream(path);
    s.on('error', () => {
      res.destroy();
      resolve({ bytes: 0, reason: 'read error' });
    });
    s.pipe(res);
    res.on('close', () => resolve({ bytes: size }));
  });
}

/**
 * Serve `target` (a request target starting with `/console`) from the console directory
 * `root` (a real path). GET and HEAD only.
 */
export function serveConsole(req: IncomingMessage, res: ServerResponse, root: string, target: string): ServeOutcome | Promise<ServeOutcome> {
  if (req.method !== 'GET' && req.method !== 'HEAD') return { ...sendStatus(res, 405, { Allow: 'GET, HEAD' }), reason: 'method not allowed' };
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  if (path === '/console') {
    res.writeHead(308, { Location: '/console/', 'Content-Length': '0' });
    res.end();
    return { bytes: 0 };
  }
  const segments: string[] = [];
  for (const raw of path.slice(CONSOLE_PREFIX.length).split('/')) {
    if (raw === '') continue;
    let seg: string;
    try {
      seg = decodeURIComponent(raw);
    } catch {
      return { ...sendStatus(res, 400), reason: 'bad percent-encoding' };
    }
    // eslint-disable-next-line no-control-regex
    if (seg === '.' || seg === '..' || /[/\\\x00-\x1f\x7f]/.test(seg)) return { ...sendStatus(res, 400), reason: 'invalid path segment' };
    segments.push(seg);
  }
  const indexPath = `${root}/index.html`;
  if (segments.length > 0) {
    try {
      const real = realpathSync.native(`${root}/${segments.join('/')}`);
      if (real.startsWith(`${root}/`)) {
        const st = statSync(real);
        if (st.isFile()) return sendFile(req, res, real, st.size, segments[0] === 'assets' ? 'public, max-age=31536000, immutable' : 'no-cache');
      }
    } catch {
      // Not a file: fall through.
    }
    // A missing asset is a 404; any other path is a console route.
    if (segments[0] === 'assets' || extname(segments[segments.length - 1]) !== '') return { ...sendStatus(res, 404), reason: 'no such console file' };
  }
  try {
    const st = statSync(indexPath);
    return sendFile(req, res, indexPath, st.size, 'no-cache');
  } catch {
    return { ...sendStatus(res, 404), reason: 'console not built' };
  }
}
