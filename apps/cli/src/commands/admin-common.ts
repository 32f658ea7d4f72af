/**
 * What the `larch admin` sub-verb modules share: the sub-verb declaration with ostree's admin
 * options, where the sysroot is, and lazy loading of @larch/sysroot.
 */
import type { Command } from 'commander';
import { integer, parseOption } from '../options.js';

export interface SysrootOpts {
  sysroot?: string;
  json?: boolean;
  /** Larch: treat PATH as the running root (a device image or a simulated device). */
  bootedRoot?: string;
}

/**
 * Declare `admin NAME` with the options every admin sub-verb takes (`--sysroot`, `-v`). A hidden
 * sub-verb is left out of `admin --help`'s list, as ostree leaves out its internal ones.
 */
export function sub(parent: Command, name: string, description: string, opts: { hidden?: boolean } = {}): Command {
  return parent
    .command(name, { hidden: opts.hidden === true })
    .description(description)
    .option('--sysroot <path>', 'Use system root PATH (default: $OSTREE_SYSROOT, else /)')
    .option('-v, --verbose', 'Print debug information on errors')
    .allowExcessArguments(false);
}

/** `--sysroot`, else $OSTREE_SYSROOT, else `/`: where ostree looks (ostree_sysroot_new). */
export function sysrootOf(opts: SysrootOpts): string {
  const env = process.env.OSTREE_SYSROOT;
  return opts.sysroot ?? (env !== undefined && env !== '' ? env : '/');
}

/** The sysroot options a `--booted-root` gives (none: OSTree's own detection). */
export function bootedOf(opts: SysrootOpts): { bootedRoot?: string } {
  return opts.bootedRoot !== undefined ? { bootedRoot: opts.bootedRoot } : {};
}

/** A deployment index argument (`0`, `1`, …), in ostree's wording when it is not one. */
export function index(value: string): number {
  return parseOption(integer('INDEX', { min: 0 }), value);
}

/** @larch/sysroot, loaded when an admin verb runs. */
export async function lib(): Promise<typeof import('@larch/sysroot')> {
  return import('@larch/sysroot');
}

/** The `--booted-root` option (a Larch addition) on a sub-verb that acts on the running system. */
export function bootedRootOption(cmd: Command): Command {
  return cmd.option('--booted-root <path>', 'Treat PATH as the running root (a device image or a simulated device); default: / when the sysroot is / and /run/ostree-booted exists');
}
