/**
 * @larch/console: the built web console (static files made by `vite build` into `dist/`).
 * larch-server serves `consoleDir()` at `/console/`; nothing here runs in the browser.
 */
import { fileURLToPath } from 'node:url';

/**
 * Absolute path of the built console (`apps/console/dist`, with `index.html` and `assets/`).
 * No I/O: the directory exists once `pnpm --filter @larch/console build` has run.
 */
export function consoleDir(): string {
  return fileURLToPath(new URL('../dist/', import.meta.url));
}

/** The URL prefix the console's assets are built for (vite `base`). */
export const CONSOLE_BASE = '/console/';
