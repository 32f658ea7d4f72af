#!/usr/bin/env node
// Size check: every source file (packages/*/src/**/*.ts, apps/*/src/**/*.ts, tests excluded)
// over 600 lines and every function over 150 lines is listed, and the check fails unless the
// item is in the allowlist (tooling/size-check-allow.txt) with a count at least its size.
//
// Functions are found with the TypeScript compiler API: function declarations and expressions,
// arrow functions, methods, constructors and accessors that have a body. A function's size is
// the lines from its first token to its closing brace; nested functions count in their own
// right and inside their parent.
//
// The allowlist may only shrink. Each line is `PATH COUNT` for a file, or `PATH#FUNCTION COUNT`
// for a function (FUNCTION is the dotted name: `Class.method`, `outer.inner`, `(anonymous)` for
// an unnamed one, with `~2`, `~3` for later ones of the same name in the file). An item that
// has grown past its count fails; so does an entry whose item is now smaller than its count
// (lower the count, or remove the line when the item is within the limit: `--update` does
// both) or no longer exists. `--update` never adds an entry and never raises a count.
//
// Usage: node tooling/scripts/size-check.mjs [--root DIR] [--allow FILE] [--update]
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export const MAX_FILE_LINES = 600;
export const MAX_FUNCTION_LINES = 150;

/** Source files below `root`, relative with `/` separators, sorted. */
export function sourceFiles(root) {
  const out = [];
  for (const top of ['packages', 'apps']) {
    const base = join(root, top);
    if (!existsSync(base)) continue;
    for (const pkg of readdirSync(base, { withFileTypes: true })) {
      if (!pkg.isDirectory()) continue;
      const src = join(base, pkg.name, 'src');
      if (existsSync(src)) walk(src, out);
    }
  }
  return out.map((p) => relative(root, p).split(sep).join('/')).sort();
}

function walk(dir, out) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'node_modules' && e.name !== '__tests__' && e.name !== 'test') walk(p, out);
    } else if (e.isFile() && e.name.endsWith('.ts') && !/\.(test|spec)\.ts$/.test(e.name)) out.push(p);
  }
}

/** Number of lines of `text`, as `wc -l` counts them for a file ending in a newline. */
export function lineCount(text) {
  if (text === '') return 0;
  const n = text.split('\n').length;
  return text.endsWith('\n') ? n - 1 : n;
}

function nameOf(node) {
  if (node.name && (ts.isIdentifier(node.name) || ts.isPrivateIdentifier(node.name) || ts.isStringLiteral(node.name) || ts.isNumericLiteral(node.name))) return node.name.text;
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  const p = node.parent;
  if (p && ts.isVariableDeclaration(p) && ts.isIdentifier(p.name)) return p.name.text;
  if (p && ts.isPropertyAssignment(p) && (ts.isIdentifier(p.name) || ts.isStringLiteral(p.name))) return p.name.text;
  if (p && ts.isPropertyDeclaration(p) && ts.isIdentifier(p.name)) return p.name.text;
  if (p && ts.isBinaryExpression(p) && ts.isPropertyAccessExpression(p.left)) return p.left.name.text;
  return '(anonymous)';
}

function isFunctionLike(node) {
  return (
    (ts.isFunctionDeclaration(node) ||
      ts.isFunctionExpression(node) ||
      ts.isArrowFunction(node) ||
      ts.isMethodDeclaration(node) ||
      ts.isConstructorDeclaration(node) ||
      ts.isGetAccessorDeclaration(node) ||
      ts.isSetAccessorDeclaration(node)) &&
    node.body !== undefined
  );
}

/** Every function of a source text with its dotted name and its size in lines. */
export function functionSizes(fileName, text) {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out = [];
  const seen = new Map();
  const visit = (node, scope) => {
    let inner = scope;
    if (ts.isClassDeclaration(node) || ts.isClassExpression(node)) inner = [...scope, node.name ? node.name.text : '(class)'];
    else if (isFunctionLike(node)) {
      inner = [...scope, nameOf(node)];
      const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
      const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
      let name = inner.join('.');
      const k = (seen.get(name) ?? 0) + 1;
      seen.set(name, k);
      if (k > 1) name = `${name}~${k}`;
      out.push({ name, line: start + 1, lines: end - start + 1 });
    }
    ts.forEachChild(node, (c) => visit(c, inner));
  };
  visit(sf, []);
  return out;
}

/** Measure every source file below `root`: the items over their limits. */
export function measure(root) {
  const over = new Map();
  const present = new Map();
  for (const rel of sourceFiles(root)) {
    const text = readFileSync(join(root, rel), 'utf8');
    const n = lineCount(text);
    present.set(rel, n);
    if (n > MAX_FILE_LINES) over.set(rel, { kind: 'file', count: n, limit: MAX_FILE_LINES });
    for (const f of functionSizes(rel, text)) {
      const key = `${rel}#${f.name}`;
      present.set(key, f.lines);
      if (f.lines > MAX_FUNCTION_LINES) over.set(key, { kind: 'function', count: f.lines, limit: MAX_FUNCTION_LINES, line: f.line });
    }
  }
  return { over, present };
}

/** Parse the allowlist: Map of item → count. Throws with the line at fault. */
export function parseAllowlist(text, file = 'allowlist') {
  const out = new Map();
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = /^(\S+)\s+(\d+)$/.exec(line);
    if (!m) throw new Error(`${file}:${i + 1}: expected "PATH COUNT" or "PATH#FUNCTION COUNT", got ${JSON.stringify(line.slice(0, 120))}`);
    if (out.has(m[1])) throw new Error(`${file}:${i + 1}: ${m[1]} is listed twice`);
    out.set(m[1], Number(m[2]));
  });
  return out;
}

/** Compare measurements with the allowlist: problems (one line each) and the shrunk allowlist. */
export function check({ over, present }, allow) {
  const problems = [];
  for (const [key, o] of over) {
    const allowed = allow.get(key);
    const what = o.kind === 'file' ? `${key}: ${o.count} lines (limit ${o.limit})` : `${key.replace('#', `:${o.line}: function `)} is ${o.count} lines (limit ${o.limit})`;
    if (allowed === undefined) problems.push(`${what}; split it`);
    else if (o.count > allowed) problems.push(`${what}, grown past its allowlisted ${allowed}; split it`);
  }
  const shrunk = new Map();
  for (const [key, allowed] of allow) {
    const now = present.get(key);
    const limit = key.includes('#') ? MAX_FUNCTION_LINES : MAX_FILE_LINES;
    if (now === undefined) problems.push(`allowlist: ${key} no longer exists; remove its line`);
    else if (now <= limit) problems.push(`allowlist: ${key} is ${now} lines, within the limit of ${limit}; remove its line`);
    else if (now < allowed) {
      problems.push(`allowlist: ${key} is ${now} lines, below its allowlisted ${allowed}; lower the count to ${now}`);
      shrunk.set(key, now);
    } else shrunk.set(key, allowed);
  }
  return { problems, shrunk };
}

function formatAllowlist(header, entries) {
  return header + [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, n]) => `${k} ${n}\n`).join('');
}

function main(argv) {
  const here = dirname(fileURLToPath(import.meta.url));
  let root = resolve(here, '../..');
  let allowFile = null;
  let update = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--root' && i + 1 < argv.length) root = resolve(argv[++i]);
    else if (a === '--allow' && i + 1 < argv.length) allowFile = resolve(argv[++i]);
    else if (a === '--update') update = true;
    else {
      console.error(`size-check: unknown argument ${JSON.stringify(a)} (usage: size-check.mjs [--root DIR] [--allow FILE] [--update])`);
      return 2;
    }
  }
  allowFile ??= join(root, 'tooling', 'size-check-allow.txt');
  let allowText = '';
  if (existsSync(allowFile)) allowText = readFileSync(allowFile, 'utf8');
  let allow;
  try {
    allow = parseAllowlist(allowText, relative(process.cwd(), allowFile) || allowFile);
  } catch (e) {
    console.error(`size-check: ${e.message}`);
    return 2;
  }
  const { problems, shrunk } = check(measure(root), allow);
  if (update) {
    const header = allowText.split('\n').filter((l) => l.startsWith('#')).map((l) => `${l}\n`).join('');
    writeFileSync(allowFile, formatAllowlist(header, shrunk));
    const left = check(measure(root), shrunk).problems;
    for (const p of left) console.log(p);
    return left.length === 0 ? 0 : 1;
  }
  for (const p of problems) console.log(p);
  if (problems.length > 0) {
    console.log(`size-check: ${problems.length} problem(s); files may have at most ${MAX_FILE_LINES} lines, functions ${MAX_FUNCTION_LINES}`);
    return 1;
  }
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
