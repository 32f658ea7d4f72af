// Build step: copy the sample OS tree from test-fixtures into dist/demo-tree, the tree the
// embedded demo repository is committed from. Symlinks are copied as symlinks, modes kept.
import { cpSync, existsSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const src = fileURLToPath(new URL('../../../test-fixtures/sample-os', import.meta.url));
const dst = fileURLToPath(new URL('../dist/demo-tree', import.meta.url));
if (!existsSync(src)) {
  console.error(`copy-demo-tree: ${src} is missing`);
  process.exit(1);
}
rmSync(dst, { recursive: true, force: true });
cpSync(src, dst, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
