/**
 * The `larch` command: builds the verb table, parses, runs one verb, maps any failure to exactly
 * one `error: MESSAGE` line on stderr and exit status 1 (the stack trace only with --verbose).
 *
 * Options follow ostree's forms: `--repo=PATH` and `--repo PATH` are accepted after the verb
 * (and before it), $OSTREE_REPO is the fallback. Unknown verbs and options are usage errors.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { interruptedBy, processIo, UsageError, type Io } from './context.js';
import { formatHelp, installHelp, SubcommandError, versionRequested } from './help.js';
import { oneLine } from './format.js';
import { versionText } from './commands/version.js';

/** Everything a verb module gets at registration time. */
export interface VerbContext {
  io: Io;
}

type Register = (program: Command, ctx: VerbContext) => void;

/**
 * The verbs, in `--help` order. Each module is loaded only when its verb runs (or for help and
 * unknown verbs, which need them all): a verb then pays for its own dependencies alone, which
 * matters for quick ones such as a hardlink checkout, where process start-up is a large share.
 */
const VERBS: Record<string, () => Promise<Register>> = {
  init: async () => (await import('./commands/init.js')).registerInit,
  commit: async () => (await import('./commands/commit.js')).registerCommit,
  log: async () => (await import('./commands/log.js')).registerLog,
  show: async () => (await import('./commands/show.js')).registerShow,
  ls: async () => (await import('./commands/ls.js')).registerLs,
  cat: async () => (await import('./commands/cat.js')).registerCat,
  checkout: async () => (await import('./commands/checkout.js')).registerCheckout,
  refs: async () => (await import('./commands/refs.js')).registerRefs,
  'rev-parse': async () => (await import('./commands/rev-parse.js')).registerRevParse,
  reset: async () => (await import('./commands/reset.js')).registerReset,
  checksum: async () => (await import('./commands/checksum.js')).registerChecksum,
  export: async () => (await import('./commands/export.js')).registerExport,
  fsck: async () => (await import('./commands/fsck.js')).registerFsck,
  prune: async () => (await import('./commands/prune.js')).registerPrune,
  summary: async () => (await import('./commands/summary.js')).registerSummary,
  diff: async () => (await import('./commands/diff.js')).registerDiff,
  config: async () => (await import('./commands/config.js')).registerConfig,
  remote: async () => (await import('./commands/remote.js')).registerRemote,
  pull: async () => (await import('./commands/pull.js')).registerPull,
  'pull-local': async () => (await import('./commands/pull-local.js')).registerPullLocal,
  admin: async () => (await import('./commands/admin.js')).registerAdmin,
  'static-delta': async () => (await import('./commands/static-delta.js')).registerStaticDelta,
  'gpg-sign': async () => (await import('./commands/gpg-sign.js')).registerGpgSign,
  sign: async () => (await import('./commands/sign.js')).registerSign,
  push: async () => (await import('./commands/push.js')).registerPush,
  publish: async () => (await import('./commands/publish.js')).registerPublish,
  image: async () => (await import('./commands/image.js')).registerImage,
};

/** The verb named on the command line (the first word that is not an option), if any. */
function verbOf(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') return argv[i + 1];
    if (a === '--repo') {
      i++;
      continue;
    }
    if (!a.startsWith('-')) return a;
  }
  return undefined;
}

/**
 * The version in this package's package.json (what `--version` prints): one directory up from
 * dist/ (the compiled modules), or two from the bundle's chunks (dist/chunks/).
 */
export function packageVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    let pkg: { name?: string; version?: string };
    try {
      pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as typeof pkg;
    } catch {
      continue;
    }
    if (pkg.name === '@larch/cli' && pkg.version !== undefined) return pkg.version;
  }
  throw new Error('package.json of @larch/cli not found');
}

/**
 * What the `larch` binary runs: the command line of this process, its status as the exit code
 * (set, not exited with, so that output still queued for stdout is written first).
 */
export async function main(): Promise<void> {
  // `larch log | head` closes stdout early: stop quietly, as a shell tool should.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  process.exitCode = await runCli(process.argv.slice(2));
}

async function buildProgram(ctx: VerbContext, argv: string[]): Promise<Command> {
  const program = new Command('larch')
    .description('larch: OSTree-compatible repository tool')
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.io.out(s),
      writeErr: (s) => ctx.io.err(s),
      outputError: () => {
        /* reported once, by runCli */
      },
    })
    .option('--repo <path>', 'Path to OSTree repository')
    .option('-v, --verbose', 'Print debug information (stack traces) on errors')
    .option('--version', 'Print version information and exit')
    .argument('[command]')
    .allowExcessArguments(true)
    .helpCommand(false)
    .action((command: string | undefined, opts: { version?: boolean }) => {
      if (command !== undefined) throw new SubcommandError(`Unknown command '${command}'`, program);
      if (opts.version) {
        ctx.io.out(versionText(packageVersion()));
        return;
      }
      throw new SubcommandError('No command specified', program);
    });
  const verb = verbOf(argv);
  const loaders =
    verb !== undefined && Object.hasOwn(VERBS, verb)
      ? [VERBS[verb]]
      : verb === undefined && argv.includes('--version')
        ? []
        : Object.values(VERBS);
  for (const register of await Promise.all(loaders.map((load) => load()))) register(program, ctx);
  installHelp(program, () => ctx.io.out(versionText(packageVersion())));
  return program;
}

/** Options the program itself takes before a verb; every other option there is the verb's. */
const PROGRAM_OPTIONS = /^(--repo(=.*)?|-v|--verbose|--version|-h|--help)$/;

/**
 * ostree hands every option on the command line to the verb, wherever it stands
 * (`ostree --repo=R --print-metadata-key=K show REV`): move a verb's options given before the verb
 * to the end (before a `--`), where the verb (or its sub-verb) parses them.
 */
export function verbOptionsAfterVerb(argv: string[]): string[] {
  const verb = verbOf(argv);
  if (verb === undefined) return argv;
  const at = argv.indexOf(verb);
  const before: string[] = [];
  const moved: string[] = [];
  for (let i = 0; i < at; i++) {
    const a = argv[i];
    if (a === '--repo') before.push(a, argv[++i]);
    else if (PROGRAM_OPTIONS.test(a) || a === '--') before.push(a);
    else moved.push(a);
  }
  if (moved.length === 0) return argv;
  const rest = argv.slice(at);
  const dashes = rest.indexOf('--');
  return dashes < 0 ? [...before, ...rest, ...moved] : [...before, ...rest.slice(0, dashes), ...moved, ...rest.slice(dashes)];
}

/**
 * GLib's option parser takes `--flag=VALUE` for an option without a value and ignores the value
 * (`pull-local --gpg-verify=true` turns verification on): drop such values where no loaded command
 * has an option of that name that takes a value.
 */
export function flagValuesDropped(program: Command, argv: string[]): string[] {
  const flags = new Set<string>();
  const valued = new Set<string>();
  const visit = (cmd: Command): void => {
    for (const o of cmd.options) {
      if (o.long === undefined || o.negate) continue;
      (o.required || o.optional ? valued : flags).add(o.long);
    }
    for (const c of cmd.commands) visit(c);
  };
  visit(program);
  const end = argv.indexOf('--');
  return argv.map((a, i) => {
    if ((end >= 0 && i > end) || !a.startsWith('--')) return a;
    const eq = a.indexOf('=');
    if (eq < 0) return a;
    const name = a.slice(0, eq);
    return flags.has(name) && !valued.has(name) ? name : a;
  });
}

/** Map commander's own errors to ostree's wording, one line. */
function commanderMessage(e: CommanderError): string {
  const first = e.message.split('\n')[0].replace(/^error: /, '');
  const m = /^unknown option '([^']*)'/.exec(first);
  if (m) return `Unknown option ${m[1]}`;
  const c = /^unknown command '([^']*)'/.exec(first);
  if (c) return `Unknown command '${c[1]}'`;
  if (/^too many arguments/.test(first)) return 'Too many arguments given';
  const a = /^option '([^']*)' argument missing/.exec(first);
  if (a) {
    const flags = a[1].split(/[ ,]+/).filter((f) => f.startsWith('-'));
    return `Missing argument for ${flags[flags.length - 1] ?? a[1]}`;
  }
  return first.charAt(0).toUpperCase() + first.slice(1);
}

/**
 * Run the CLI on `argv` (without the node and script paths) and return the exit status.
 * Never throws; never calls process.exit, so pending output is flushed by Node.
 */
export async function runCli(argv: string[], io: Io = processIo()): Promise<number> {
  // `larch help VERB [SUB]` is `larch VERB [SUB] --help`.
  if (argv[0] === 'help') argv = argv.length > 1 ? [...argv.slice(1), '--help'] : ['--help'];
  argv = verbOptionsAfterVerb(argv);
  // Known before parsing, so that parse errors honour it too. `summary -v` means --view.
  const verbose = argv.includes('--verbose') || (argv.includes('-v') && !argv.includes('summary'));
  let program: Command | undefined;
  try {
    program = await buildProgram({ io }, argv);
    await program.parseAsync(flagValuesDropped(program, argv), { from: 'user' });
    await io.flush();
    return 0;
  } catch (e) {
    // Stopped by SIGINT/SIGTERM: the verb has cleaned up; exit as a process killed by it would
    // look to a shell (130, 143), without an error line, as ostree does.
    const signal = interruptedBy();
    if (signal !== undefined) return 128 + (signal === 'SIGINT' ? 2 : 15);
    if (e instanceof SubcommandError) {
      io.err(formatHelp(e.command, e.command.createHelp()));
      io.err(`error: ${oneLine(e.message)}\n`);
      return 1;
    }
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.help' || e.code === 'commander.version') {
        return e.exitCode;
      }
      // `--version` wins over the verb's arguments (`ostree admin deploy --version`), as in
      // GLib's parser, which handles it before the verb looks at them.
      if ((e.code === 'commander.missingArgument' || e.code === 'commander.excessArguments') && program !== undefined && versionRequested(program)) {
        io.out(versionText(packageVersion()));
        await io.flush();
        return 0;
      }
      io.err(`error: ${oneLine(commanderMessage(e))}\n`);
      return 1;
    }
    // LarchError (repository problems, OSTree wording), UsageError and CommandError (this CLI)
    // and any other Error all print the same way: every failure exits 1.
    const message = e instanceof Error ? e.message : String(e);
    io.err(`error: ${oneLine(message)}\n`);
    if (verbose && e instanceof Error) {
      io.err(`${e.stack ?? ''}\n`);
      if (e.cause !== undefined) io.err(`caused by: ${e.cause instanceof Error ? (e.cause.stack ?? e.cause.message) : String(e.cause)}\n`);
    }
    return 1;
  }
}
