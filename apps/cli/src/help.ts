/**
 * Help in the layout of ostree's (GLib's option parser): `Usage:`, the description, the
 * `Builtin "VERB" Commands:` list for verbs with sub-verbs, `Help Options:` and `Application
 * Options:`, all on stdout for `--help`. A verb with sub-verbs run without one (or with an unknown
 * one) prints the same text on stderr, then `error: No "VERB" subcommand specified` /
 * `error: Unknown "VERB" subcommand 'X'`, and fails — what scripts and ostree's own tests check.
 */
import { basename } from 'node:path';
import { CommanderError, type Command, type Help, type Option } from 'commander';
import { UsageError } from './context.js';

/**
 * The name the binary was run as (`larch`, or `ostree` through a link of that name), which the
 * usage lines print as GLib prints its program name.
 */
export function programName(): string {
  const script = process.argv[1];
  if (script === undefined) return 'larch';
  const name = basename(script).replace(/\.(m?js|cjs)$/, '');
  return name === 'main' || name === 'entry' || name === '' ? 'larch' : name;
}

/** `larch admin deploy`: the words that lead to `cmd` (the program's own name first). */
function commandPath(cmd: Command): string {
  const words: string[] = [];
  for (let c: Command | null = cmd; c !== null; c = c.parent) words.unshift(c.parent === null ? programName() : c.name());
  return words.join(' ');
}

/** The positional arguments as ostree's usage lines spell them: `REFSPEC`, `[REFS…]`. */
function argumentsText(cmd: Command): string {
  const args = (cmd as unknown as { registeredArguments: readonly { name(): string; required: boolean; variadic: boolean }[] }).registeredArguments;
  return args
    .map((a) => {
      const n = a.name().replace(/[-_]/g, '_').toUpperCase() + (a.variadic ? '…' : '');
      return a.required ? n : `[${n}]`;
    })
    .join(' ');
}

/** `--repo=PATH`, `-v, --verbose`: an option's flags in GLib's form. */
function optionTerm(o: Option): string {
  const value = /<([^>]+)>|\[([^\]]+)\]/.exec(o.flags);
  const name = value ? (value[1] ?? value[2]).replace(/[-\s]/g, '_').toUpperCase() : '';
  const long = o.long ?? '';
  const short = o.short ? `${o.short}, ` : '';
  return `${short}${long}${name ? `=${name}` : ''}`;
}

function rows(list: [string, string][], indent: number, width = Math.max(0, ...list.map(([t]) => t.length)) + 4): string[] {
  return list.map(([t, d]) => `${' '.repeat(indent)}${d ? t.padEnd(width) + d : t}`.trimEnd());
}

/** The whole help text of one command, ostree's layout. */
export function formatHelp(cmd: Command, helper: Help): string {
  const subs = helper.visibleCommands(cmd).filter((c) => c.name() !== 'help');
  const args = subs.length > 0 ? 'COMMAND' : argumentsText(cmd);
  const out: string[] = ['Usage:', `  ${commandPath(cmd)} [OPTION…]${args ? ` ${args}` : ''}`, ''];
  const description = cmd.parent === null ? '' : cmd.description();
  if (description) out.push(description, '');
  if (subs.length > 0) {
    out.push(cmd.parent === null ? 'Builtin Commands:' : `Builtin "${commandPath(cmd).split(' ').slice(1).join(' ')}" Commands:`);
    out.push(...rows(subs.map((c) => [c.name(), c.description()]), 2), '');
  }
  const options = helper
    .visibleOptions(cmd)
    .filter((o) => o.long !== '--help')
    .map((o): [string, string] => [optionTerm(o), o.description]);
  // One column for both groups, as GLib aligns them.
  const help: [string, string][] = [['-h, --help', 'Show help options']];
  const width = Math.max(...[...help, ...options].map(([t]) => t.length)) + 4;
  out.push('Help Options:', ...rows(help, 2, width), '', 'Application Options:', ...rows(options, 2, width), '');
  return `${out.join('\n')}\n`;
}

/** A verb with sub-verbs run without a known one: its help goes to stderr before the error line. */
export class SubcommandError extends UsageError {
  constructor(
    message: string,
    readonly command: Command,
  ) {
    super(message);
    this.name = 'SubcommandError';
  }
}

/**
 * Commands with sub-verbs that also act on their own (`admin --print-current-dir`, `admin kargs`):
 * installHelp leaves their action alone; it throws SubcommandError itself when it has nothing to do.
 */
export const OWN_ACTION = new WeakSet<Command>();

/**
 * Verbs whose sub-verb dispatch runs before any option is parsed, so that `--version` there is
 * just a missing sub-verb (`ostree static-delta --version`: its usage, `No command specified`).
 */
export const NO_OWN_OPTIONS = new WeakSet<Command>();

/** Commands on which `--version` was given (see {@link versionRequested}). */
const versionGiven = new WeakSet<Command>();

/**
 * Whether `--version` was given to the command that is running (or to the program before the
 * verb): ostree's option parser prints the version and exits 0 then, whatever else the verb needs,
 * once every option on the line is known.
 */
export function versionRequested(program: Command): boolean {
  const visit = (cmd: Command): boolean => versionGiven.has(cmd) || cmd.commands.some(visit);
  return visit(program);
}

/**
 * Give every command under `program` ostree's help layout, `--version` (last, as GLib lists it)
 * and every command with sub-verbs ostree's behaviour when run without one. Call after all verbs
 * are registered. `onVersion` prints the version; it runs instead of the verb's action.
 */
export function installHelp(program: Command, onVersion: () => void = () => {}): void {
  const visit = (cmd: Command): void => {
    cmd.configureHelp({ formatHelp });
    cmd.helpOption('-h, --help', 'Show help options');
    if (!cmd.options.some((o) => o.long === '--version')) cmd.option('--version', 'Print version information and exit');
    cmd.on('option:version', () => versionGiven.add(cmd));
    const subs = cmd.commands.filter((c) => c.name() !== 'help');
    if (cmd.parent !== null && subs.length > 0 && !OWN_ACTION.has(cmd)) {
      const label = commandPath(cmd).split(' ').slice(1).join(' ');
      const declared = (cmd as unknown as { registeredArguments: readonly unknown[] }).registeredArguments;
      if (declared.length === 0) cmd.argument('[command]');
      cmd.allowExcessArguments(true);
      cmd.action((given: string | undefined) => {
        throw new SubcommandError(given === undefined ? `No "${label}" subcommand specified` : `Unknown "${label}" subcommand '${given}'`, cmd);
      });
    }
    for (const c of cmd.commands) visit(c);
  };
  visit(program);
  program.hook('preAction', (_program, action) => {
    if (NO_OWN_OPTIONS.has(action) || !(versionGiven.has(action) || versionGiven.has(program))) return;
    onVersion();
    throw new CommanderError(0, 'commander.version', '');
  });
}
