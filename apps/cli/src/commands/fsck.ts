/**
 * `larch fsck [--all] [--delete] [--add-tombstones] [--verify-bindings] [--verify-back-refs] [-q]
 * [--json]`: verify the repository.
 *
 * Output follows ostree 2022.7: the phase lines on stdout (not with -q); on stderr each missing
 * object (`Object missing in commits C: X.file`) and each commit it makes partial (`Marking
 * commit as partial: C`), which do not stop the check; a corrupted object stops it with
 * `error: MESSAGE` unless --all or --delete (then it is listed on stderr and, with --delete,
 * removed). A repository with problems ends with `error: Repository corruption encountered`;
 * a clean one with `object fsck of N commits completed successfully - no errors found.`
 */
import type { Command } from 'commander';
import { fsck, type FsckError, type FsckOptions } from '@larch/core-store';
import type { VerbContext } from '../cli.js';
import { CommandError, openRepo } from '../context.js';
import { oneLine, toJson } from '../format.js';
import { allOptions, verb } from './common.js';

interface FsckOpts {
  all?: boolean;
  delete?: boolean;
  quiet?: boolean;
  addTombstones?: boolean;
  verifyBindings?: boolean;
  verifyBackRefs?: boolean;
  json?: boolean;
}

/** Register `fsck`: verify the repository. */
export function registerFsck(program: Command, ctx: VerbContext): void {
  verb(program, 'fsck', 'Check the repository for consistency')
    .option('--add-tombstones', 'Add tombstones for missing commits')
    .option('-q, --quiet', 'Only print error messages')
    .option('-a, --all', "Don't stop on first error")
    .option('--delete', 'Remove corrupted objects')
    .option('--verify-bindings', 'Verify ref bindings')
    .option('--verify-back-refs', 'Verify back-references (implies --verify-bindings)')
    .option('--json', 'Print the report as JSON (see README); exit status as without it')
    .action(async (_o: FsckOpts, cmd: Command) => {
      const opts = allOptions<FsckOpts>(cmd);
      const repo = await openRepo(opts);
      const { io } = ctx;
      const say = (s: string): void => {
        if (!opts.quiet) io.out(`${s}\n`);
      };
      const warn = (s: string): void => io.err(`${oneLine(s)}\n`);
      let found = false;
      // The error that ends the run, as ostree stops at it; set by the phase callbacks.
      let fatal: string | null = null;

      /** Ref problems: a missing commit ends the run; a corrupted one unless --all or --delete. */
      const refPhase = (errors: readonly FsckError[]): boolean => {
        for (const e of errors.filter((x) => x.ref !== undefined && !isBackRef(x))) {
          if (e.code === 'OBJECT_MISSING') {
            warn(`Object missing: ${e.checksum}.commit`);
            fatal = e.message;
            return false;
          }
          if (e.code === 'INVALID_REF' || !(opts.all || opts.delete)) {
            fatal = e.message;
            return false;
          }
          warn(e.message);
          found = true;
        }
        return true;
      };
      const progress = opts.json ? null : progressLines(ctx);
      const report = await fsck(repo, {
        all: Boolean(opts.all),
        delete: Boolean(opts.delete),
        addTombstones: Boolean(opts.addTombstones),
        verifyBindings: Boolean(opts.verifyBindings),
        verifyBackRefs: Boolean(opts.verifyBackRefs),
        ...(progress
          ? {
              onProgress: progress.update,
              onPhase: ((phase, info) => {
                if (phase === 'refs') say('Validating refs...');
                else if (phase === 'commits') {
                  if (!refPhase(info.errors)) return false;
                  say('Validating refs in collections...');
                  say('Enumerating commits...');
                } else {
                  const backRef = info.errors.find(isBackRef);
                  if (backRef) {
                    fatal = backRef.message;
                    return false;
                  }
                  say(`Verifying content integrity of ${info.commits} commit objects...`);
                }
                return true;
              }) satisfies FsckOptions['onPhase'],
            }
          : {}),
      });
      progress?.end();
      if (opts.json) {
        io.out(toJson(report));
        if (report.errors.length > 0) throw new CommandError('Repository corruption encountered');
        return;
      }
      if (fatal !== null) throw new CommandError(fatal);

      const objectErrors = report.errors.filter((e) => e.ref === undefined);
      const marked = new Set(report.markedPartial);
      const markFor = (e: FsckError): void => {
        for (const c of e.commits ?? []) {
          if (!marked.has(c)) continue;
          marked.delete(c);
          warn(`Marking commit as partial: ${c}`);
        }
      };
      // Missing objects never stop the check; a corrupted one does unless --all or --delete.
      for (const e of objectErrors.filter((x) => x.code === 'OBJECT_MISSING')) {
        warn(e.message);
        found = true;
        markFor(e);
      }
      for (const e of objectErrors.filter((x) => x.code !== 'OBJECT_MISSING')) {
        if (!(opts.all || opts.delete)) throw new CommandError(e.message);
        warn(e.message);
        found = true;
        if (opts.delete) markFor(e);
      }
      for (const c of marked) warn(`Marking commit as partial: ${c}`);

      const verified = report.commits - report.partial;
      if (opts.addTombstones) for (const c of report.tombstoned) io.out(`Adding tombstone for commit ${c}\n`);
      else if (report.partial > 0) io.out(`${report.partial} partial commits not verified\n`);
      if (found) throw new CommandError('Repository corruption encountered');
      if (report.fsckPartial > 0) throw new CommandError(`${report.partial} partial commits from fsck-detected corruption`);
      io.out(`object fsck of ${verified} commits completed successfully - no errors found.\n`);
    });
}

/** Lines per second at most, as ostree's console output (libglnx) on a terminal and elsewhere. */
const TTY_HZ = 5;
const NONTTY_HZ = 1;

/**
 * ostree's `fsck objects (I/N) P%` lines, on stdout even with -q: the first object, then at most
 * NONTTY_HZ lines a second, and always the last (100%). On a terminal the line is redrawn in place.
 */
function progressLines(ctx: VerbContext): { update: (p: { objectsChecked: number; total: number }) => void; end: () => void } {
  const tty = process.stdout.isTTY === true;
  const minMs = 1000 / (tty ? TTY_HZ : NONTTY_HZ);
  let last = -Infinity;
  let drawn = false;
  return {
    update: ({ objectsChecked: i, total }) => {
      const now = performance.now();
      if (i !== total && now - last < minMs) return;
      last = now;
      const pct = i === total ? 100 : Math.floor((i / total) * 100);
      const line = `fsck objects (${i}/${total}) ${pct}%`;
      if (tty) {
        ctx.io.out(`\r${line}\x1b[K`);
        drawn = true;
      } else ctx.io.out(`${line}\n`);
    },
    end: () => {
      if (drawn) ctx.io.out('\n');
    },
  };
}

/** A `--verify-back-refs` finding (ref bindings of a commit that do not resolve back to it). */
function isBackRef(e: FsckError): boolean {
  return e.code === 'INVALID_REF' && e.message.includes(' in bindings for commit ');
}
