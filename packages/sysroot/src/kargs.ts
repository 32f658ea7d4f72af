/**
 * Kernel command lines with OSTree's editing rules (`OstreeKernelArgs`): an ordered list of
 * `key` / `key=value` entries where a key may repeat. `replace` drops every value of the key and
 * puts the new one where the first used to be; `append` adds at the end; `delete` removes one
 * entry (`key=value` exactly, or `key` when it has a single value).
 */
import { sysrootError } from './errors.js';

interface Entry {
  key: string;
  value: string | null;
}

function splitKeyEq(arg: string): Entry {
  const i = arg.indexOf('=');
  return i < 0 ? { key: arg, value: null } : { key: arg.slice(0, i), value: arg.slice(i + 1) };
}

/** Split a command line at whitespace outside double quotes (quotes are kept in the words). */
export function splitCmdline(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of s) {
    if (ch === '"') quoted = !quoted;
    if (!quoted && (ch === ' ' || ch === '\t' || ch === '\n')) {
      if (cur !== '') out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur !== '') out.push(cur);
  return out;
}

export class KernelArgs {
  private order: Entry[] = [];

  static parse(cmdline: string): KernelArgs {
    const k = new KernelArgs();
    k.appendAll(splitCmdline(cmdline));
    return k;
  }

  append(arg: string): void {
    this.order.push(splitKeyEq(arg));
  }

  appendAll(args: Iterable<string>): void {
    for (const a of args) this.append(a);
  }

  /** Replace every value of the key with this one, at the position of its first value. */
  replace(arg: string): void {
    const e = splitKeyEq(arg);
    const first = this.order.findIndex((x) => x.key === e.key);
    if (first < 0) {
      this.order.push(e);
      return;
    }
    this.order = this.order.filter((x, i) => i < first || x.key !== e.key);
    this.order.splice(first, 0, e);
  }

  replaceAll(args: Iterable<string>): void {
    for (const a of args) this.replace(a);
  }

  /** Delete `key=value`, or `key` when it has exactly one value. Errors as OSTree words them. */
  delete(arg: string): void {
    const e = splitKeyEq(arg);
    const matches = this.order.filter((x) => x.key === e.key);
    if (matches.length === 0) throw sysrootError('INVALID_ARGUMENT', 'bad-karg', `No karg '${arg}' found`, { karg: arg });
    let victim: Entry | undefined;
    if (e.value === null) {
      if (matches.length > 1) throw sysrootError('INVALID_ARGUMENT', 'bad-karg', `Multiple values for key '${e.key}' found`, { karg: arg });
      victim = matches[0];
    } else {
      victim = matches.find((x) => x.value === e.value);
      if (!victim) throw sysrootError('INVALID_ARGUMENT', 'bad-karg', `No karg '${arg}' found`, { karg: arg });
    }
    this.order.splice(this.order.indexOf(victim), 1);
  }

  deleteAll(args: Iterable<string>): void {
    for (const a of args) this.delete(a);
  }

  has(key: string): boolean {
    return this.order.some((x) => x.key === key);
  }

  /** Every value of `key` (null for a bare key). */
  get(key: string): Array<string | null> {
    return this.order.filter((x) => x.key === key).map((x) => x.value);
  }

  /** A copy without any entry of `key`. */
  without(key: string): KernelArgs {
    const k = new KernelArgs();
    k.order = this.order.filter((x) => x.key !== key).map((x) => ({ ...x }));
    return k;
  }

  toArray(): string[] {
    return this.order.map((x) => (x.value === null ? x.key : `${x.key}=${x.value}`));
  }

  toString(): string {
    return this.toArray().join(' ');
  }
}
