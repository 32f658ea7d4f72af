/**
 * A synthetic tree shaped like a Debian root filesystem: for each package a shared library
 * (with its soname symlink), a tool, a man page, documentation, and translations in nested
 * directories; a few large files. Contents are deterministic (seeded), text-like where Debian's
 * are text and incompressible where they are compressed.
 */
import { createHash } from 'node:crypto';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const LOCALES = ['de', 'es', 'fr', 'it', 'ja', 'nl', 'pl', 'pt_BR', 'ru', 'sv', 'tr', 'uk', 'zh_CN', 'zh_TW', 'cs', 'da'];
const WORDS = ['package', 'library', 'system', 'version', 'copyright', 'license', 'debian', 'free', 'software', 'the', 'and', 'of', 'with', 'for'];

/** Deterministic bytes: sha256 counter stream. */
export function seeded(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  let off = 0;
  for (let i = 0; off < size; i++) {
    const h = createHash('sha256').update(`${seed}:${i}`).digest();
    off += h.copy(out, off);
  }
  return out;
}

function text(seed: string, size: number): string {
  const r = seeded(seed, Math.ceil(size / 4));
  const parts: string[] = [];
  let n = 0;
  for (let i = 0; n < size; i++) {
    const w = WORDS[r[i % r.length] % WORDS.length];
    parts.push(w);
    n += w.length + 1;
  }
  return `${parts.join(' ')}\n`;
}

/** Write the tree for `packages` packages; returns the number of regular files written. */
export async function writeDebianTree(root: string, packages: number, opts: { version?: number; changed?: (i: number) => boolean } = {}): Promise<number> {
  let files = 0;
  const put = async (rel: string, data: string | Buffer, mode = 0o644): Promise<void> => {
    await writeFile(join(root, rel), data, { mode });
    files++;
  };
  for (const d of ['usr/bin', 'usr/lib/x86_64-linux-gnu', 'usr/share/doc', 'usr/share/man/man1', 'etc']) await mkdir(join(root, d), { recursive: true });
  for (const loc of LOCALES) await mkdir(join(root, 'usr/share/locale', loc, 'LC_MESSAGES'), { recursive: true });
  for (let i = 0; i < packages; i++) {
    const name = `pkg${String(i).padStart(4, '0')}`;
    const v = opts.changed?.(i) ? (opts.version ?? 0) : 0;
    await mkdir(join(root, 'usr/share/doc', name), { recursive: true });
    await put(`usr/share/doc/${name}/copyright`, text(`${name}-copyright`, 600 + (i % 7) * 100));
    await put(`usr/share/doc/${name}/changelog.Debian.gz`, seeded(`${name}-changelog-${v}`, 800 + (i % 5) * 300));
    await put(`usr/lib/x86_64-linux-gnu/lib${name}.so.1.0.0`, seeded(`${name}-lib-${v}`, 4000 + (i % 11) * 2500));
    await symlink(`lib${name}.so.1.0.0`, join(root, `usr/lib/x86_64-linux-gnu/lib${name}.so.1`));
    await put(`usr/share/man/man1/${name}.1.gz`, seeded(`${name}-man`, 700 + (i % 3) * 400));
    if (i % 2 === 0) await put(`usr/bin/${name}`, text(`${name}-bin-${v}`, 2000), 0o755);
    for (const loc of LOCALES) await put(`usr/share/locale/${loc}/LC_MESSAGES/${name}.mo`, text(`${name}-${loc}`, 200 + (i % 9) * 40));
  }
  for (let k = 0; k < 4; k++) await put(`usr/lib/x86_64-linux-gnu/libbig${k}.so`, seeded(`big${k}-${opts.changed?.(-1 - k) ? (opts.version ?? 0) : 0}`, 1_500_000 + k * 250_000));
  await put('etc/os-release', `NAME="Synthetic"\nVERSION_ID="${opts.version ?? 0}"\n`);
  return files;
}

/** Remove a file of the tree. */
export async function removeFile(root: string, rel: string): Promise<void> {
  await rm(join(root, rel));
}
