#!/usr/bin/env node
// The table in apps/cli/README.md of every `ostree` 2022.7 verb and long option, and what `larch`
// does with each.
//
// The verbs come from the real `ostree --help` and, recursively, from each verb's own
// `Builtin "VERB" Commands:` list (admin, remote, static-delta, admin instutil), plus the few
// verbs ostree hides from its lists (named in the notes file). The options come from each verb's
// `Application Options:`. For larch the same help texts are read from apps/cli/dist/main.js, and
// every ostree option is then tried on larch: an option counts as supported only when larch's
// help lists it (with the same short form, if ostree has one) and larch does not answer
// `Unknown option` to it. Every other row needs a reason in tooling/conformance/option-notes.json.
//
// The tries run in a scratch directory with --repo / --sysroot (and $OSTREE_REPO /
// $OSTREE_SYSROOT) pointing below a regular file, so a verb that parses its options and goes on to
// run fails at once on the missing repository instead of touching anything.
//
//   node tooling/scripts/ostree-option-table.mjs            print the README section
//   node tooling/scripts/ostree-option-table.mjs --write    rewrite the section in apps/cli/README.md
//   node tooling/scripts/ostree-option-table.mjs --check    exit 1 if the README's section differs
//   node tooling/scripts/ostree-option-table.mjs --json     the section, the rows and the problems
//
// Problems (rows neither supported nor explained, notes for rows that no longer need one) are
// printed on stderr and make every mode exit 1. Build larch first:
// `pnpm turbo run build --filter=@larch/cli...`.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const LARCH = join(root, 'apps/cli/dist/main.js');
const OSTREE = process.env.OSTREE_BIN ?? 'ostree';
const README = join(root, 'apps/cli/README.md');
const NOTES = join(root, 'tooling/conformance/option-notes.json');
const BEGIN = '<!-- ostree-option-table:begin -->';
const END = '<!-- ostree-option-table:end -->';
/** Options every ostree verb has: one row each for all verbs, instead of one per verb. */
const COMMON = ['--verbose', '--version'];
/** larch processes at once: each is a short node start-up, and the machine is shared. */
const JOBS = 3;

function fail(message) {
  console.error(`ostree-option-table: ${message}`);
  process.exit(2);
}

/**
 * One help text parsed: the sub-verbs of its `Builtin … Commands:` list and the options of its
 * `Application Options:` (long name, short name, whether it shows a value). GLib's layout, which
 * larch's help also follows.
 */
export function parseHelp(text) {
  const subverbs = [];
  const options = [];
  let section = '';
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      section = '';
      continue;
    }
    if (/^Builtin (".*" )?Commands:$/.test(line)) section = 'verbs';
    else if (line === 'Application Options:') section = 'options';
    else if (/^\S/.test(line)) section = '';
    else if (section === 'verbs') subverbs.push(line.trim().split(/\s+/)[0]);
    else if (section === 'options') {
      const m = /^\s+(?:(-[A-Za-z0-9]), )?(--[A-Za-z0-9][\w-]*)(=\S+)?/.exec(line);
      if (m) options.push({ long: m[2], short: m[1] ?? '', value: m[3] !== undefined });
    }
  }
  return { subverbs, options };
}

function runHelp(command, words) {
  const r = spawnSync(command[0], [...command.slice(1), ...words, '--help'], { encoding: 'utf8', env: scratchEnv(), timeout: 120_000 });
  if (r.error) fail(`cannot run ${command.join(' ')}: ${r.error.message}`);
  return r;
}

let scratch = '';
function scratchEnv() {
  const env = { ...process.env, LC_ALL: 'C.UTF-8', OSTREE_REPO: join(scratch, 'file/repo'), OSTREE_SYSROOT: join(scratch, 'file/sysroot') };
  delete env.SOURCE_DATE_EPOCH;
  return env;
}

/** The real ostree's verbs (as word lists, `[]` being ostree itself) with their help parsed. */
function ostreeVerbs(hidden) {
  const verbs = [];
  const visit = (words) => {
    const r = runHelp([OSTREE], words);
    if (r.status !== 0) fail(`\`ostree ${words.join(' ')} --help\` failed: ${r.stderr.trim().split('\n')[0]}`);
    const help = parseHelp(r.stdout);
    verbs.push({ words, options: help.options });
    const here = words.join(' ');
    const unlisted = hidden.filter((h) => h.split(' ').slice(0, -1).join(' ') === here).map((h) => h.split(' ').at(-1));
    for (const sub of [...help.subverbs, ...unlisted.filter((u) => !help.subverbs.includes(u))]) visit([...words, sub]);
  };
  visit([]);
  for (const h of hidden) {
    if (!verbs.some((v) => v.words.join(' ') === h)) fail(`hidden verb "${h}" in ${NOTES}: its parent is not an ostree verb`);
  }
  return verbs;
}

/**
 * larch's help for one verb, or null when larch has no such verb (it then prints its parent's
 * help). Anything else (a crash, a build being rewritten under us) stops the run rather than
 * turning into a wrong row.
 */
function larchHelp(words) {
  const r = runHelp([process.execPath, LARCH], words);
  const usage = (w) => `larch${w.length ? ` ${w.join(' ')}` : ''} [OPTION…]`;
  const line = r.stdout.split('\n')[1]?.trim() ?? '';
  if (r.status === 0 && line.startsWith(usage(words))) return parseHelp(r.stdout);
  if (r.status === 0 && line.startsWith(usage(words.slice(0, -1)))) return null;
  fail(`unexpected answer from \`larch ${words.join(' ')} --help\` (status ${r.status}): ${(r.stderr.trim() || line).split('\n')[0]}`);
}

/** Whether larch knows `flag` on this verb: anything but `Unknown option FLAG` counts. */
function larchAccepts(words, safety, flag) {
  return new Promise((resolveTry, reject) => {
    const args = [LARCH, ...words, ...safety, flag];
    const child = spawn(process.execPath, args, { cwd: scratch, env: scratchEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status, signal) => {
      // A crash is not an answer about the option (a rebuild in progress makes chunks vanish).
      if (signal !== null || /ERR_MODULE_NOT_FOUND|Cannot find module/.test(stderr)) {
        reject(new Error(`larch ${[...words, flag].join(' ')} crashed (${signal ?? `status ${status}`}): ${stderr.trim().split('\n')[0]}`));
        return;
      }
      const unknown = /Unknown option (\S+)/.exec(stderr);
      if (unknown && unknown[1] !== flag) reject(new Error(`larch ${words.join(' ')} rejected ${unknown[1]}, not the option tried (${flag})`));
      else resolveTry(!unknown);
    });
  });
}

async function pool(tasks, jobs) {
  const results = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]();
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, tasks.length) }, worker));
  return results;
}

function readNotes() {
  let notes;
  try {
    notes = JSON.parse(readFileSync(NOTES, 'utf8'));
  } catch (e) {
    fail(`${NOTES}: ${e.message}`);
  }
  const reasons = notes.reasons ?? {};
  for (const [verb, byOption] of Object.entries(reasons)) {
    for (const [option, reason] of Object.entries(byOption)) {
      if (typeof reason !== 'string' || !/^(missing|deliberately different): \S/.test(reason)) {
        fail(`${NOTES}: the reason for "${verb}" "${option}" must start with "missing: " or "deliberately different: "`);
      }
    }
  }
  return { hidden: notes.hidden ?? [], reasons };
}

const code = (s) => `\`${s}\``;

/** Every verb and option, what larch does, and the problems that keep the table from being true. */
export async function buildTable() {
  if (!existsSync(LARCH)) fail(`${LARCH} is missing: run \`pnpm turbo run build --filter=@larch/cli...\` first`);
  const version = spawnSync(OSTREE, ['--version'], { encoding: 'utf8' });
  if (version.error || version.status !== 0) fail(`cannot run ${OSTREE} --version: ${version.error?.message ?? version.stderr.trim()}`);
  // The table is of this release's verbs and options; another one would rewrite it.
  if (!/^\s*Version: '?2022\.7'?$/m.test(version.stdout)) fail(`the table is of ostree 2022.7, and ${OSTREE} is another version`);
  const notes = readNotes();
  scratch = mkdtempSync(join(tmpdir(), 'larch-option-table-'));
  writeFileSync(join(scratch, 'file'), '');
  try {
    const verbs = ostreeVerbs(notes.hidden);
    const tries = [];
    for (const verb of verbs) {
      verb.name = verb.words.join(' ') || '(no verb)';
      verb.larch = larchHelp(verb.words);
      if (!verb.larch) continue;
      const listed = new Set(verb.larch.options.map((o) => o.long));
      const safety = [];
      if (listed.has('--repo')) safety.push(`--repo=${join(scratch, 'file/repo')}`);
      if (listed.has('--sysroot')) safety.push(`--sysroot=${join(scratch, 'file/sysroot')}`);
      for (const o of verb.options) {
        const mine = verb.larch.options.find((l) => l.long === o.long);
        o.listed = mine !== undefined;
        o.shortListed = o.short === '' || mine?.short === o.short;
        // The short form is tried only where the long one is taken (otherwise the row is not
        // supported whatever it answers), which saves a process for each.
        tries.push(async () => {
          o.accepted = await larchAccepts(verb.words, safety, o.long);
          o.shortAccepted = o.short === '' || (o.accepted && (await larchAccepts(verb.words, safety, o.short)));
        });
      }
    }
    await pool(tries, JOBS);
    return tabulate(verbs, notes);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

function tabulate(verbs, notes) {
  const rows = [];
  const problems = [];
  const used = new Set();
  const reasonFor = (verb, option) => {
    const r = notes.reasons[verb]?.[option];
    if (r !== undefined) used.add(`${verb}\u0000${option}`);
    return r;
  };
  const add = (verb, option, supported, fact) => {
    let larch = 'supported';
    if (!supported) {
      const reason = reasonFor(verb, option) ?? (option && reasonFor(verb, '') ? 'missing: the verb (above)' : undefined);
      if (reason === undefined) problems.push(`no reason for ${verb}${option ? ` ${option}` : ''} (${fact}) in tooling/conformance/option-notes.json`);
      larch = `${reason ?? 'MISSING, NO REASON'}${fact ? ` (${fact})` : ''}`;
    }
    rows.push({ verb, option, larch, supported });
  };
  for (const verb of verbs) {
    if (verb.words.length > 0) add(verb.name, '', verb.larch !== null, '');
    for (const o of verb.options) {
      if (COMMON.includes(o.long)) continue;
      const option = o.short ? `${o.short}, ${o.long}` : o.long;
      if (!verb.larch) {
        add(verb.name, option, false, '');
        continue;
      }
      const facts = [];
      if (o.accepted && !o.listed) facts.push("accepted, but larch's help does not list it");
      if (!o.accepted && o.listed) facts.push("listed in larch's help, but rejected");
      if (o.accepted && o.listed && !(o.shortListed && o.shortAccepted)) facts.push(`larch has no ${o.short}`);
      add(verb.name, option, o.accepted && o.listed && o.shortListed && o.shortAccepted, facts.join('; '));
    }
  }
  // The options of every verb: one row each, naming the verbs where larch falls short.
  for (const long of COMMON) {
    const short = verbs[0].options.find((o) => o.long === long)?.short ?? '';
    const lacking = [];
    const present = verbs.filter((v) => v.larch);
    for (const v of present) {
      const o = v.options.find((x) => x.long === long);
      if (o && !(o.accepted && o.listed && o.shortListed && o.shortAccepted)) lacking.push(v.name);
    }
    const taking = present.filter((v) => v.options.some((x) => x.long === long) && !lacking.includes(v.name)).map((v) => v.name);
    let fact = '';
    if (taking.length === 0) fact = 'no verb takes it';
    else if (lacking.length > taking.length) fact = `taken only by: ${taking.join(', ')}`;
    else if (lacking.length > 0) fact = `not taken by: ${lacking.join(', ')}`;
    add('every verb', short ? `${short}, ${long}` : long, lacking.length === 0, fact);
  }
  for (const [verb, byOption] of Object.entries(notes.reasons)) {
    for (const option of Object.keys(byOption)) {
      if (!used.has(`${verb}\u0000${option}`)) problems.push(`stale note in tooling/conformance/option-notes.json: ${verb} ${option || '(the verb)'} needs no reason now`);
    }
  }
  const lines = [
    BEGIN,
    '<!-- Generated by `node tooling/scripts/ostree-option-table.mjs --write`; do not edit by hand. -->',
    '',
    '| verb | option | larch |',
    '| --- | --- | --- |',
    ...rows.map((r) => `| ${code(r.verb)} | ${r.option ? code(r.option) : ''} | ${r.larch.replace(/\|/g, '\\|')} |`),
    '',
    `${rows.filter((r) => r.supported).length} of ${rows.length} rows supported.`,
    END,
  ];
  return { section: lines.join('\n'), rows, problems };
}

/** The generated section as it stands in the README, or null when the README has none. */
export function readmeSection(text) {
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a < 0 || b < a) return null;
  return text.slice(a, b + END.length);
}

async function main() {
  const mode = process.argv[2] ?? '';
  if (!['', '--write', '--check', '--json'].includes(mode) || process.argv.length > 3) fail(`unknown argument ${process.argv.slice(2).join(' ')}`);
  const { section, rows, problems } = await buildTable();
  for (const p of problems) console.error(`ostree-option-table: ${p}`);
  const readme = readFileSync(README, 'utf8');
  const current = readmeSection(readme);
  if (mode === '--write') {
    if (current === null) fail(`${README} has no ${BEGIN} … ${END} section to rewrite`);
    writeFileSync(README, readme.replace(current, () => section));
  } else if (mode === '--check') {
    if (current !== section) {
      console.error('ostree-option-table: the table in apps/cli/README.md is out of date: run `node tooling/scripts/ostree-option-table.mjs --write`');
      process.exitCode = 1;
    }
  } else if (mode === '--json') {
    process.stdout.write(`${JSON.stringify({ section, readme: current, rows, problems }, null, 2)}\n`);
  } else {
    process.stdout.write(`${section}\n`);
  }
  if (problems.length > 0) process.exitCode = 1;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => fail(e.message));
}
