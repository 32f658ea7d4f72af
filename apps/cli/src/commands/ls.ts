/**
 * `larch ls [-R] [-C] [-d] [-X] [--nul-filenames-only] [--json] REV [PATH...]`: ostree's columns,
 * one entry per line:
 *   TYPE+MODE UID GID SIZE [CHECKSUM [METACHECKSUM]] [{ XATTRS }] PATH [-> TARGET]
 * e.g. `d00755 0 0      0 /` and `l00777 0 0      0 /link -> hello.txt`; the size is padded
 * to six columns, the mode is the permission bits in five octal digits. With -X the extended
 * attributes follow as the GVariant text of their `a(ayay)` (`{ @a(ayay) [] }` when there are
 * none). With --nul-filenames-only only the paths are printed, each followed by a NUL byte.
 */
import type { Command } from 'commander';
import { formatLsEntry, LarchError, lsEntryXattrs, lsStream, type LsEntry, type Repo } from '@larch/core-store';
import { print } from '@larch/gvariant';
import type { VerbContext } from '../cli.js';
import type { Io } from '../context.js';
import { openRepo, UsageError } from '../context.js';
import { allOptions, verb } from './common.js';
import { holdYoungGeneration } from './walk-memory.js';
import { asciiJson } from '../output-charset.js';

interface LsOptions {
  recursive?: boolean;
  checksum?: boolean;
  dironly?: boolean;
  json?: boolean;
  xattrs?: boolean;
  nulFilenamesOnly?: boolean;
}

/** Output is handed to stdout in pieces of about this many characters. */
const CHUNK = 64 * 1024;
/** Above this much output queued in stdout, the walk waits until it is written. */
const HIGH_WATER = 1024 * 1024;

/**
 * Hands text to stdout a chunk at a time and lets the walk wait while stdout is behind, so a
 * listing of any length is printed as it is read, never held whole.
 */
class Printer {
  private buf = '';
  constructor(private readonly io: Io) {}
  async write(text: string): Promise<void> {
    this.buf += text;
    if (this.buf.length >= CHUNK) await this.flush();
  }
  async flush(): Promise<void> {
    if (this.buf.length > 0) {
      this.io.out(this.buf);
      this.buf = '';
    }
    const out = this.io.stdout as NodeJS.WritableStream & { writableLength?: number };
    if ((out.writableLength ?? 0) > HIGH_WATER) await this.io.flush();
  }
}

/**
 * `toJson` of an array, one element at a time: the same bytes as `toJson(array)` (two-space
 * indentation), without the array.
 */
class JsonArrayPrinter {
  private first = true;
  constructor(private readonly out: Printer) {}
  async element(value: unknown): Promise<void> {
    const body = asciiJson(JSON.stringify(value, null, 2)).replace(/\n/g, '\n  ');
    await this.out.write(`${this.first ? '[\n' : ',\n'}  ${body}`);
    this.first = false;
  }
  async end(): Promise<void> {
    await this.out.write(this.first ? '[]\n' : '\n]\n');
    await this.out.flush();
  }
}

/** Register `ls`: list paths inside a commit. */
export function registerLs(program: Command, ctx: VerbContext): void {
  verb(program, 'ls', 'List file paths')
    .argument('<rev>', 'Commit or ref')
    .argument('[paths...]', 'Paths inside the commit (default /)')
    .option('-R, --recursive', 'Print directories recursively')
    .option('-C, --checksum', 'Print checksum')
    .option('-d, --dironly', 'Do not recurse into directory arguments')
    .option('-X, --xattrs', 'Print extended attributes')
    .option('--nul-filenames-only', 'Print only filenames, NUL separated')
    .option('--json', 'Print JSON (see README)')
    .action(async (rev: string, paths: string[], _o: LsOptions, cmd: Command) => {
      const opts = allOptions<LsOptions>(cmd);
      if (opts.json && opts.nulFilenamesOnly) throw new UsageError('--json and --nul-filenames-only cannot be combined');
      const repo = await openRepo(opts);
      const commit = await repo.revParse(rev);
      if (opts.recursive) holdYoungGeneration();
      const printer = new Printer(ctx.io);
      const checksums = Boolean(opts.checksum);
      const list = paths.length > 0 ? paths : ['/'];
      // As ostree, an error under a path given on the command line names it ("Inspecting path '/x': …").
      const open = (p: string): AsyncGenerator<LsEntry> => {
        const g = lsStream(repo, commit, p, { recursive: Boolean(opts.recursive), directoryOnly: Boolean(opts.dironly) });
        return paths.length > 0 ? inspecting(p, g) : g;
      };
      try {
        if (!opts.json) {
          // Entries are printed as they are read; a path that does not exist fails after the
          // paths before it were listed, as with ostree.
          const line = async (e: LsEntry): Promise<string> => {
            if (opts.nulFilenamesOnly) return `${e.path}\0`;
            const text = formatLsEntry(e, { checksums });
            if (!opts.xattrs) return `${text}\n`;
            return `${withXattrs(text, e, await xattrsText(repo, e))}\n`;
          };
          for (const p of list) for await (const e of open(p)) await printer.write(await line(e));
          return;
        }
        // JSON: every path is looked up before anything is printed, so a missing one prints no
        // partial array.
        const started: Array<[AsyncGenerator<LsEntry>, IteratorResult<LsEntry>]> = [];
        for (const p of list) {
          const g = open(p);
          started.push([g, await g.next()]);
        }
        const json = new JsonArrayPrinter(printer);
        for (const [g, first] of started) {
          for (let r = first; r.done !== true; r = await g.next()) await json.element(lsJson(r.value));
        }
        await json.end();
      } finally {
        await printer.flush();
      }
    });
}

const utf8 = new TextEncoder();

/** GVariant text of an entry's xattrs as ostree prints them (`g_variant_print(xattrs, TRUE)`). */
async function xattrsText(repo: Repo, e: LsEntry): Promise<string> {
  const xattrs = await lsEntryXattrs(repo, e);
  const value = xattrs.map((x) => {
    const name = utf8.encode(x.name);
    const z = new Uint8Array(name.length + 1);
    z.set(name);
    return [z, x.value];
  });
  return print('a(ayay)', value, { typeAnnotate: true });
}

/** `line` (formatLsEntry's) with `{ XATTRS } ` put before the path, where ostree prints it. */
function withXattrs(line: string, e: LsEntry, xattrs: string): string {
  const tail = e.type === 'l' ? `${e.path} -> ${e.target}` : e.path;
  return `${line.slice(0, line.length - tail.length)}{ ${xattrs} } ${tail}`;
}

async function* inspecting(path: string, entries: AsyncGenerator<LsEntry>): AsyncGenerator<LsEntry> {
  try {
    yield* entries;
  } catch (e) {
    if (e instanceof LarchError) throw new LarchError(e.code, `Inspecting path '${path}': ${e.message}`, e.data, { cause: e });
    throw e;
  }
}

function lsJson(e: LsEntry): Record<string, unknown> {
  return {
    path: e.path,
    type: e.type === 'd' ? 'directory' : e.type === 'l' ? 'symlink' : 'file',
    mode: e.mode & 0o7777,
    uid: e.uid,
    gid: e.gid,
    size: e.size,
    checksum: e.checksum,
    ...(e.type === 'd' ? { metaChecksum: e.metaChecksum ?? null } : {}),
    ...(e.type === 'l' ? { target: e.target ?? '' } : {}),
  };
}
