// Seeded generator of random GVariant types and matching values, shared by the
// property tests and the interop tests. Deterministic for a given seed.
import { Variant, parseType, type GValue, type GVType } from '../src/index.js';

/** mulberry32: small, fast, deterministic. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Gen {
  constructor(readonly r: () => number) {}
  int(n: number): number {
    return Math.floor(this.r() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }

  type(depth: number): string {
    const basic = 'ybnqiuhxtdsogv';
    if (depth <= 0 || this.r() < 0.4) return this.pick([...basic]);
    switch (this.int(5)) {
      case 0:
        return 'a' + this.type(depth - 1);
      case 1:
        return 'm' + this.type(depth - 1);
      case 2: {
        const n = this.int(5);
        let s = '(';
        for (let i = 0; i < n; i++) s += this.type(depth - 1);
        return s + ')';
      }
      case 3:
        return `a{${this.pick([...'ybnqiuhxtdsog'])}${this.type(depth - 1)}}`;
      default:
        return `{${this.pick([...'ysut'])}${this.type(depth - 1)}}`;
    }
  }

  string(): string {
    const len = this.r() < 0.05 ? 250 + this.int(20) : this.int(8);
    let s = '';
    for (let i = 0; i < len; i++) {
      const k = this.int(10);
      if (k < 6) s += String.fromCharCode(0x20 + this.int(0x5f));
      else if (k === 6) s += this.pick(['\n', '\t', '\x01', "'", '"', '\\']);
      else if (k === 7) s += String.fromCodePoint(0xa0 + this.int(0x700));
      else if (k === 8) s += String.fromCodePoint(0x1f600 + this.int(0x40));
      else s += this.pick(['\u200b', '\ufeff', '\u0378', 'é', '中']);
    }
    return s;
  }

  value(t: GVType, depth: number): GValue {
    const r = this.r;
    switch (t.code) {
      case 'y':
        return this.int(256);
      case 'b':
        return r() < 0.5;
      case 'n':
        return this.int(65536) - 32768;
      case 'q':
        return this.int(65536);
      case 'i':
      case 'h':
        return (this.int(2 ** 32) | 0) as number;
      case 'u':
        return this.int(2 ** 32);
      case 'x':
        return BigInt.asIntN(64, (BigInt(this.int(2 ** 32)) << 32n) | BigInt(this.int(2 ** 32)));
      case 't':
        return BigInt.asUintN(64, (BigInt(this.int(2 ** 32)) << 32n) | BigInt(this.int(2 ** 32)));
      case 'd':
        return this.pick([0, -0, 1, -1.5, 0.1, 1e300, 2.2250738585072014e-308, Number.NaN, Infinity, -Infinity, r() * 1e6 - 5e5, 123456789]);
      case 's':
        return this.string();
      case 'o':
        return this.pick(['/', '/a', '/org/freedesktop/Foo_1', '/x/y/z']);
      case 'g':
        return this.pick(['', 'i', 'a{sv}', '(ii)as', 'v']);
      case 'v': {
        const ct = parseType(depth > 0 ? this.type(2) : this.pick(['u', 's', 'ay']));
        return new Variant(ct.str, this.value(ct, depth - 1));
      }
      case 'm': {
        if (r() < 0.3) return null;
        const el = t.element as GVType;
        const v = this.value(el, depth - 1);
        return el.code === 'm' ? [v] : v;
      }
      case 'a': {
        const el = t.element as GVType;
        const n = r() < 0.05 ? 40 + this.int(60) : this.int(4);
        if (el.code === 'y') {
          const b = new Uint8Array(n);
          for (let i = 0; i < n; i++) b[i] = this.int(256);
          if (r() < 0.3 && n > 0) b.fill(0x61).set([0], n - 1); // a bytestring
          return b;
        }
        const out: GValue[] = [];
        for (let i = 0; i < n; i++) out.push(this.value(el, depth - 1));
        return out;
      }
      default:
        return t.members.map((m) => this.value(m, depth - 1));
    }
  }
}

export function samples(seed: number, count: number): Array<{ t: GVType; v: GValue }> {
  const g = new Gen(rng(seed));
  const out: Array<{ t: GVType; v: GValue }> = [];
  for (let i = 0; i < count; i++) {
    const t = parseType(g.type(4));
    out.push({ t, v: g.value(t, 4) });
  }
  return out;
}

