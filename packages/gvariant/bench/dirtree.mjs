// Measures encode / decode / isNormalForm on a dirtree with 10,000 files and 1,000
// subdirectories (about 600 KB). Run after building: node packages/gvariant/bench/dirtree.mjs
import { randomBytes } from 'node:crypto';
import { decode, encode, isNormalForm } from '../dist/index.js';

const DIRTREE = '(a(say)a(sayay))';
const files = [];
const dirs = [];
for (let i = 0; i < 10_000; i++) files.push([`file-${String(i).padStart(6, '0')}.txt`, randomBytes(32)]);
for (let i = 0; i < 1_000; i++) dirs.push([`dir-${i}`, randomBytes(32), randomBytes(32)]);
const bytes = encode(DIRTREE, [files, dirs]);

function bench(name, fn) {
  const times = [];
  for (let r = 0; r < 40; r++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  console.log(`${name.padEnd(12)} min ${times[0].toFixed(2)} ms  median ${times[20].toFixed(2)} ms`);
}

console.log(`dirtree: ${files.length} files, ${dirs.length} dirs, ${bytes.length} bytes`);
bench('encode', () => encode(DIRTREE, [files, dirs]));
bench('decode', () => decode(DIRTREE, bytes));
bench('isNormalForm', () => isNormalForm(DIRTREE, bytes));
