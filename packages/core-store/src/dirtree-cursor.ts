/**
 * A dirtree read in place: its subdirectories decoded, its files visited one at a time straight
 * from the object's bytes.
 *
 * Why: a checkout walks every file of a tree, and the generic decoder (`_decodeDirTree`) builds
 * an array of entries per dirtree, each with a view, a name and a hex checksum, all alive until
 * the directory is done. For a walk that must not grow with the number of paths that is the
 * wrong shape: every garbage collection of the young generation finds the current directory's
 * entries alive, and V8 enlarges the young generation (up to 32 MiB) after enough such
 * survivors. Here a file entry is two short strings made when it is visited and dropped right
 * after, so a long walk keeps the young generation at its starting size.
 *
 * The framing rules are the GVariant ones for `(a(say)a(sayay))` (spec/gvariant.md section 3):
 * the outer tuple ends with the offset of the end of its first array; each array of
 * variable-size elements ends with a table of their end offsets; `(say)` ends with the end
 * offset of its name, `(sayay)` with the end offsets of its name and of its first checksum
 * (last-written first); offsets are 1, 2, 4 or 8 bytes wide depending on the container's size.
 * Every offset is bounds-checked before use. Names are validated (`validatePathComponent`) and
 * checksums must be 32 bytes. On any fault the reference decoder (`_decodeDirTree`) is run over
 * the object and its error is thrown, so every reader reports a damaged dirtree the same way
 * (OBJECT_CORRUPTED, INVALID_NAME, INVALID_CHECKSUM, naming the dirtree). Callers that must
 * reject a hostile tree before acting on any of it (checkout's phase 1) still read it whole
 * first.
 */
import { LarchError } from './errors.js';
import { validatePathComponent } from './fs-safety.js';
import { _decodeDirTree } from './repo-traverse.js';
import type { Checksum, DirTreeDir } from './types.js';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Width of each framing offset in a container of `size` bytes. */
function offsetWidth(size: number): number {
  if (size === 0) return 0;
  if (size <= 0xff) return 1;
  if (size <= 0xffff) return 2;
  if (size <= 0xffffffff) return 4;
  return 8;
}

/** An array of variable-size elements: [start, tableStart) holds the elements, then the offsets. */
interface ArrayFrame {
  start: number;
  tableStart: number;
  width: number;
  count: number;
}

export class _DirTreeCursor {
  /** Subdirectories, decoded and validated. */
  readonly dirs: DirTreeDir[];
  /** Number of files. */
  readonly fileCount: number;
  /** After {@link nextFile} returned true: the file's name, its length in bytes, and its content checksum. */
  name = '';
  nameBytes = 0;
  checksum: Checksum = '';
  private readonly buf: Buffer;
  private files: ArrayFrame = { start: 0, tableStart: 0, width: 0, count: 0 };
  private index = 0;
  private pos: number;

  constructor(
    bytes: Uint8Array,
    private readonly tree: Checksum,
  ) {
    this.buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    try {
      this.dirs = this.readDirs();
    } catch (e) {
      throw this.reference(e);
    }
    this.fileCount = this.files.count;
    this.pos = this.files.start;
  }

  private readDirs(): DirTreeDir[] {
    const size = this.buf.length;
    const w = offsetWidth(size);
    if (size === 0) throw this.corrupt('tuple too small for its offset table');
    const bodyEnd = size - w;
    const filesEnd = this.offset(size - w, w);
    if (filesEnd > bodyEnd) throw this.corrupt(`framing offset of member 0 is out of order or out of range`);
    this.files = this.array(0, filesEnd);
    const dirs = this.array(filesEnd, bodyEnd);
    const out = new Array<DirTreeDir>(dirs.count);
    let p = dirs.start;
    for (let i = 0; i < dirs.count; i++) {
      const end = this.elementEnd(dirs, i, p);
      const ew = offsetWidth(end - p);
      const body = end - 2 * ew;
      if (end === p || body < p) throw this.corrupt('tuple too small for its offset table');
      const nameEnd = p + this.offset(end - ew, ew);
      if (nameEnd < p || nameEnd > body) throw this.corrupt('framing offset of member 0 is out of order or out of range');
      const treeEnd = p + this.offset(end - 2 * ew, ew);
      if (treeEnd < nameEnd || treeEnd > body) throw this.corrupt('framing offset of member 1 is out of order or out of range');
      const name = this.string(p, nameEnd);
      validatePathComponent(name, { dirtree: this.tree, checksum: this.tree });
      out[i] = { name, treeChecksum: this.hex(nameEnd, treeEnd, name), metaChecksum: this.hex(treeEnd, body, name) };
      p = end;
    }
    return out;
  }

  /**
   * Move to the next file, validating its name and checksum length; false after the last one.
   * Without `withChecksum` the checksum is only checked, not converted (`checksum` is then '').
   */
  nextFile(withChecksum = true): boolean {
    if (this.index >= this.files.count) return false;
    try {
      this.readFile(withChecksum);
    } catch (e) {
      throw this.reference(e);
    }
    return true;
  }

  private readFile(withChecksum: boolean): void {
    const p = this.pos;
    const end = this.elementEnd(this.files, this.index, p);
    const ew = offsetWidth(end - p);
    const body = end - ew;
    if (end === p || body < p) throw this.corrupt('tuple too small for its offset table');
    const nameEnd = p + this.offset(end - ew, ew);
    if (nameEnd < p || nameEnd > body) throw this.corrupt('framing offset of member 0 is out of order or out of range');
    const name = this.string(p, nameEnd);
    validatePathComponent(name, { dirtree: this.tree, checksum: this.tree });
    this.name = name;
    this.nameBytes = nameEnd - 1 - p;
    if (withChecksum) this.checksum = this.hex(nameEnd, body, name);
    else if (body - nameEnd !== 32) this.hex(nameEnd, body, name);
    this.pos = end;
    this.index++;
  }

  /**
   * The error to report for a fault the cursor met: the reference decoder's, which checks the
   * whole object in a fixed order (structure, then names, then checksum lengths), so a dirtree
   * with several faults is reported the same way by every reader.
   */
  private reference(e: unknown): unknown {
    try {
      _decodeDirTree(this.buf, this.tree);
    } catch (ref) {
      return ref;
    }
    return e;
  }

  private corrupt(detail: string): LarchError {
    return new LarchError('OBJECT_CORRUPTED', `Corrupted dirtree object ${this.tree}: ${detail}`, { type: 'dirtree', checksum: this.tree, dirtree: this.tree });
  }

  private offset(p: number, w: number): number {
    const b = this.buf;
    switch (w) {
      case 1:
        return b[p];
      case 2:
        return b.readUInt16LE(p);
      case 4:
        return b.readUInt32LE(p);
      default: {
        const v = b.readBigUInt64LE(p);
        return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
      }
    }
  }

  private array(s: number, e: number): ArrayFrame {
    const size = e - s;
    if (size === 0) return { start: s, tableStart: s, width: 0, count: 0 };
    const w = offsetWidth(size);
    if (size < w) throw this.corrupt('array too small for its offset table');
    const last = this.offset(e - w, w);
    if (last > size - w) throw this.corrupt(`last framing offset ${last} points outside the array`);
    const tableBytes = size - last;
    if (tableBytes % w !== 0) throw this.corrupt('offset table size is not a multiple of the offset width');
    return { start: s, tableStart: s + last, width: w, count: tableBytes / w };
  }

  /** End of element `i` of `a`, which starts at `start` (elements are byte-aligned). */
  private elementEnd(a: ArrayFrame, i: number, start: number): number {
    const end = a.start + this.offset(a.tableStart + i * a.width, a.width);
    if (end < start || end > a.tableStart) throw this.corrupt(`framing offset of element ${i} is out of order or out of range`);
    return end;
  }

  private string(s: number, e: number): string {
    const b = this.buf;
    if (e <= s || b[e - 1] !== 0) throw this.corrupt('string is not NUL-terminated');
    if (b.indexOf(0, s) !== e - 1) throw this.corrupt('string contains an embedded NUL');
    for (let i = s; i < e - 1; i++) {
      if (b[i] >= 0x80) {
        try {
          return utf8.decode(b.subarray(s, e - 1));
        } catch {
          throw this.corrupt('string is not valid UTF-8');
        }
      }
    }
    return b.toString('latin1', s, e - 1);
  }

  private hex(s: number, e: number, name: string): Checksum {
    if (e - s !== 32) {
      throw new LarchError('INVALID_CHECKSUM', `Corrupted dirtree object ${this.tree}: Invalid checksum of length ${e - s} expected 32 for ${name}`, {
        type: 'dirtree',
        checksum: this.tree,
        dirtree: this.tree,
        name,
      });
    }
    return this.buf.toString('hex', s, e);
  }
}
