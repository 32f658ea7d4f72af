/**
 * GKeyFile (the INI dialect of GLib that OSTree uses for `config` and remote files).
 *
 * Why our own parser: generic INI libraries split `[remote "a.b"]` at the dot, turn `true` into
 * a boolean and cut `a;b;` lists. This one keeps the file as a list of lines, so rewriting it
 * preserves unknown keys, comments, blank lines and order byte for byte; only the lines that
 * were set or removed change. Values follow GKeyFile escaping (`\s \n \t \r \\`, and `\;` in
 * lists).
 */
import { LarchError } from './errors.js';

type Line =
  | { kind: 'other'; text: string } // comment or blank
  | { kind: 'kv'; key: string; value: string; text: string };

interface Group {
  name: string;
  header: string;
  lines: Line[];
}

const GROUP_RE = /^\[([^\[\]]+)\]\s*$/;

export class KeyFile {
  private preamble: Line[] = [];
  private groupList: Group[] = [];

  /** Parse GKeyFile text; throws BAD_CONFIG naming the line for anything that is not a comment, group or key=value. */
  static parse(text: string, source = 'config'): KeyFile {
    const kf = new KeyFile();
    const lines = text.split('\n');
    if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    let current: Group | null = null;
    lines.forEach((raw, i) => {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      const trimmed = line.trim();
      if (trimmed === '' || trimmed.startsWith('#')) {
        (current ? current.lines : kf.preamble).push({ kind: 'other', text: line });
        return;
      }
      const g = GROUP_RE.exec(trimmed);
      if (g) {
        if (kf.groupList.some((x) => x.name === g[1])) {
          // GKeyFile merges duplicate groups; keep lines in place by continuing the first one.
          current = kf.groupList.find((x) => x.name === g[1])!;
          current.lines.push({ kind: 'other', text: '' });
          return;
        }
        current = { name: g[1], header: line, lines: [] };
        kf.groupList.push(current);
        return;
      }
      const eq = line.indexOf('=');
      if (eq <= 0 || !current) {
        throw new LarchError('BAD_CONFIG', `${source}:${i + 1}: Key file contains line “${line}” which is not a key-value pair, group, or comment`, { source, line: i + 1 });
      }
      const key = line.slice(0, eq).trim();
      let value = line.slice(eq + 1);
      value = value.replace(/^[ \t]+/, '');
      if (key === '') throw new LarchError('BAD_CONFIG', `${source}:${i + 1}: empty key`, { source, line: i + 1 });
      (current as Group).lines.push({ kind: 'kv', key, value, text: line });
    });
    return kf;
  }

  /** Serialize back to text; untouched lines come out exactly as read. */
  toString(): string {
    const out: string[] = [];
    for (const l of this.preamble) out.push(l.text);
    for (const g of this.groupList) {
      out.push(g.header);
      for (const l of g.lines) out.push(l.text);
    }
    return out.length ? out.join('\n') + '\n' : '';
  }

  groups(): string[] {
    return this.groupList.map((g) => g.name);
  }

  hasGroup(group: string): boolean {
    return this.groupList.some((g) => g.name === group);
  }

  keys(group: string): string[] {
    const g = this.group(group);
    if (!g) return [];
    const seen = new Set<string>();
    for (const l of g.lines) if (l.kind === 'kv') seen.add(l.key);
    return [...seen];
  }

  hasKey(group: string, key: string): boolean {
    return this.findKv(group, key) !== undefined;
  }

  /** The raw (still escaped) value, or undefined. The last occurrence wins, as in GKeyFile. */
  getRaw(group: string, key: string): string | undefined {
    return this.findKv(group, key)?.value;
  }

  /** The unescaped string value, or undefined when absent. */
  get(group: string, key: string): string | undefined {
    const raw = this.getRaw(group, key);
    return raw === undefined ? undefined : unescapeValue(raw);
  }

  /** A GKeyFile boolean (`true`/`false`/`1`/`0`); `def` when absent; BAD_CONFIG when malformed. */
  getBoolean(group: string, key: string, def: boolean): boolean {
    const raw = this.getRaw(group, key);
    if (raw === undefined) return def;
    const v = raw.trim();
    if (v === 'true' || v === '1') return true;
    if (v === 'false' || v === '0') return false;
    throw new LarchError('BAD_CONFIG', `Key file contains key “${key}” in group “${group}” which has a value that cannot be interpreted.`, { group, key, value: raw });
  }

  /** A decimal integer; `def` when absent; BAD_CONFIG when malformed. */
  getInteger(group: string, key: string, def: number): number {
    const raw = this.getRaw(group, key);
    if (raw === undefined) return def;
    const v = raw.trim();
    if (!/^[-+]?\d+$/.test(v) || !Number.isSafeInteger(Number(v))) {
      throw new LarchError('BAD_CONFIG', `Key file contains key “${key}” in group “${group}” which has a value that cannot be interpreted.`, { group, key, value: raw });
    }
    return Number(v);
  }

  /** A `;`-separated list (trailing `;` optional, `\;` escapes a separator); undefined when absent. */
  getStringList(group: string, key: string): string[] | undefined {
    const raw = this.getRaw(group, key);
    if (raw === undefined) return undefined;
    const items: string[] = [];
    let cur = '';
    for (let i = 0; i < raw.length; i++) {
      const c = raw[i];
      if (c === '\\' && raw[i + 1] === ';') {
        cur += ';';
        i++;
      } else if (c === '\\' && i + 1 < raw.length) {
        cur += c + raw[i + 1];
        i++;
      } else if (c === ';') {
        items.push(unescapeValue(cur));
        cur = '';
      } else cur += c;
    }
    if (cur !== '') items.push(unescapeValue(cur));
    return items;
  }

  /** Set a value (strings are escaped as GKeyFile does); a new key goes after the group's last key, a new group at the end. */
  set(group: string, key: string, value: string | number | boolean): void {
    this.setRaw(group, key, typeof value === 'string' ? escapeValue(value) : String(value));
  }

  setStringList(group: string, key: string, values: string[]): void {
    this.setRaw(group, key, values.map((v) => escapeValue(v).replace(/;/g, '\\;') + ';').join(''));
  }

  setRaw(group: string, key: string, raw: string): void {
    if (!GROUP_RE.test(`[${group}]`)) throw new LarchError('BAD_CONFIG', `Invalid group name ${group}`, { group });
    if (key === '' || /[=\n\[\]]/.test(key) || key.trim() !== key) throw new LarchError('BAD_CONFIG', `Invalid key name ${key}`, { key });
    if (raw.includes('\n')) throw new LarchError('BAD_CONFIG', `Invalid value for ${group}.${key}: contains a newline`, { group, key });
    let g = this.group(group);
    if (!g) {
      const last = this.lastLine();
      if (last !== undefined && last.trim() !== '') {
        const target = this.groupList.length ? this.groupList[this.groupList.length - 1].lines : this.preamble;
        target.push({ kind: 'other', text: '' });
      }
      g = { name: group, header: `[${group}]`, lines: [] };
      this.groupList.push(g);
    }
    const text = `${key}=${raw}`;
    let found = false;
    for (let i = g.lines.length - 1; i >= 0; i--) {
      const l = g.lines[i];
      if (l.kind === 'kv' && l.key === key) {
        if (!found) {
          g.lines[i] = { kind: 'kv', key, value: raw, text };
          found = true;
        } else g.lines.splice(i, 1); // drop shadowed duplicates
      }
    }
    if (found) return;
    let at = g.lines.length;
    while (at > 0 && g.lines[at - 1].kind === 'other') at--;
    g.lines.splice(at, 0, { kind: 'kv', key, value: raw, text });
  }

  removeKey(group: string, key: string): boolean {
    const g = this.group(group);
    if (!g) return false;
    const before = g.lines.length;
    g.lines = g.lines.filter((l) => !(l.kind === 'kv' && l.key === key));
    return g.lines.length !== before;
  }

  removeGroup(group: string): boolean {
    const i = this.groupList.findIndex((g) => g.name === group);
    if (i < 0) return false;
    this.groupList.splice(i, 1);
    return true;
  }

  private group(name: string): Group | undefined {
    return this.groupList.find((g) => g.name === name);
  }

  private findKv(group: string, key: string): Extract<Line, { kind: 'kv' }> | undefined {
    const g = this.group(group);
    if (!g) return undefined;
    for (let i = g.lines.length - 1; i >= 0; i--) {
      const l = g.lines[i];
      if (l.kind === 'kv' && l.key === key) return l;
    }
    return undefined;
  }

  private lastLine(): string | undefined {
    if (this.groupList.length) {
      const g = this.groupList[this.groupList.length - 1];
      return g.lines.length ? g.lines[g.lines.length - 1].text : g.header;
    }
    return this.preamble.length ? this.preamble[this.preamble.length - 1].text : undefined;
  }
}

function unescapeValue(raw: string): string {
  if (!raw.includes('\\')) return raw;
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c !== '\\' || i + 1 >= raw.length) {
      out += c;
      continue;
    }
    const n = raw[++i];
    out += n === 's' ? ' ' : n === 'n' ? '\n' : n === 't' ? '\t' : n === 'r' ? '\r' : n === '\\' ? '\\' : '\\' + n;
  }
  return out;
}

function escapeValue(v: string): string {
  let out = '';
  for (let i = 0; i < v.length; i++) {
    const c = v[i];
    if (c === ' ' && i === 0) out += '\\s';
    else if (c === '\n') out += '\\n';
    else if (c === '\t') out += '\\t';
    else if (c === '\r') out += '\\r';
    else if (c === '\\') out += '\\\\';
    else out += c;
  }
  return out;
}
