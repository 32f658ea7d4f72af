#!/usr/bin/env node
// Bundles the `larch` binary after `tsc -b`: dist/main.js becomes one entry module plus chunks in
// dist/chunks/ (each verb's code is still loaded only when the verb runs), so a command starts
// without resolving and reading some eighty separate modules. Native add-ons (koffi,
// lzma-native) stay external. Worker entry points are emitted next to the chunks, where the
// modules that start them look for them (`new URL('./x-worker.js', import.meta.url)`). The
// compiled modules in dist/ stay as they are for `@larch/cli` as a library (dist/index.js).
import { build } from 'esbuild';
import { chmodSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(here, 'package.json'));
const deltaDist = join(dirname(require.resolve('@larch/delta/package.json')), 'dist');

await build({
  absWorkingDir: here,
  entryPoints: [
    { in: 'scripts/entry.js', out: 'main' },
    { in: join(deltaDist, 'bsdiff-worker.js'), out: 'chunks/bsdiff-worker' },
    { in: join(deltaDist, 'copy-part-worker.js'), out: 'chunks/copy-part-worker' },
  ],
  outdir: 'dist',
  entryNames: '[dir]/[name]',
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['koffi', 'lzma-native'],
  // Bundled CommonJS dependencies call require() for Node's built-in modules.
  // The #! line makes dist/main.js runnable as the `larch` bin (npm links it; scripts call it).
  banner: { js: "#!/usr/bin/env node\nimport { createRequire as __larchRequire } from 'node:module';\nconst require = __larchRequire(import.meta.url);" },
  legalComments: 'none',
  logLevel: 'warning',
  write: true,
  allowOverwrite: true,
}).catch(() => process.exit(1));
chmodSync(join(here, 'dist/main.js'), 0o755);
