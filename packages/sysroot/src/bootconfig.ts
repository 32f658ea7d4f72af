/**
 * Boot Loader Spec entries as OSTree reads and writes them (`OstreeBootconfigParser`): one
 * `key value` per line; a line starting with a letter is split at the first space or tab; a
 * second `initrd` line is an overlay initrd. Written with the known keys first in a fixed order
 * (title, version, options, devicetree, linux, initrd + overlays), then every other key in the
 * order it was read or set. Unknown keys survive a rewrite.
 */

const FIXED = ['title', 'version', 'options', 'devicetree', 'linux', 'initrd'] as const;

export class BootConfig {
  private readonly map = new Map<string, string>();
  overlayInitrds: string[] = [];

  static parse(text: string): BootConfig {
    const b = new BootConfig();
    for (const line of text.split('\n')) {
      if (!/^[A-Za-z]/.test(line)) continue;
      const m = /^([^ \t]+)[ \t](.*)$/s.exec(line);
      if (!m) continue;
      const [, key, value] = m;
      if (key === 'initrd' && b.map.has('initrd')) b.overlayInitrds.push(value);
      else b.map.set(key, value);
    }
    return b;
  }

  get(key: string): string | undefined {
    return this.map.get(key);
  }

  set(key: string, value: string): void {
    this.map.set(key, value);
  }

  delete(key: string): void {
    this.map.delete(key);
  }

  keys(): string[] {
    return [...this.map.keys()];
  }

  clone(): BootConfig {
    const b = new BootConfig();
    for (const [k, v] of this.map) b.map.set(k, v);
    b.overlayInitrds = [...this.overlayInitrds];
    return b;
  }

  serialize(): string {
    let out = '';
    for (const k of FIXED) {
      const v = this.map.get(k);
      if (v === undefined) continue;
      out += `${k} ${v}\n`;
      if (k === 'initrd') for (const o of this.overlayInitrds) out += `initrd ${o}\n`;
    }
    for (const [k, v] of this.map) {
      if ((FIXED as readonly string[]).includes(k)) continue;
      out += `${k} ${v}\n`;
    }
    return out;
  }
}

/** glibc strverscmp: compare strings treating digit runs as numbers (leading zeros as fractions). */
export function strverscmp(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const ca = a[i];
    const cb = b[j];
    const da = ca >= '0' && ca <= '9';
    const db = cb >= '0' && cb <= '9';
    if (da && db) {
      let ei = i;
      while (ei < a.length && a[ei] >= '0' && a[ei] <= '9') ei++;
      let ej = j;
      while (ej < b.length && b[ej] >= '0' && b[ej] <= '9') ej++;
      const ra = a.slice(i, ei);
      const rb = b.slice(j, ej);
      const fa = ra.length > 1 && ra[0] === '0';
      const fb = rb.length > 1 && rb[0] === '0';
      let c: number;
      if (fa !== fb) {
        // a fractional part (leading zero) sorts before an integral one
        c = fa ? -1 : 1;
      } else if (fa) {
        // both fractional: more leading zeros is smaller, then digit by digit
        const za = ra.length - ra.replace(/^0+/, '').length;
        const zb = rb.length - rb.replace(/^0+/, '').length;
        c = za !== zb ? zb - za : ra < rb ? -1 : ra > rb ? 1 : 0;
      } else {
        const na = ra.replace(/^0+/, '');
        const nb = rb.replace(/^0+/, '');
        c = na.length !== nb.length ? na.length - nb.length : na < nb ? -1 : na > nb ? 1 : 0;
      }
      if (c !== 0) return c < 0 ? -1 : 1;
      i = ei;
      j = ej;
      continue;
    }
    if (ca !== cb) return ca < cb ? -1 : 1;
    i++;
    j++;
  }
  return a.length - i === b.length - j ? 0 : a.length - i < b.length - j ? -1 : 1;
}
