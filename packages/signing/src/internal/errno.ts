/**
 * The C library's wording of the errno values a key lookup can meet, so messages read as
 * OSTree's (`opendir(PATH): No such file or directory`); other codes fall back to Node's text.
 */
const STRERROR: Record<string, string> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  ELOOP: 'Too many levels of symbolic links',
  ENAMETOOLONG: 'File name too long',
  EMFILE: 'Too many open files',
  EIO: 'Input/output error',
};

/** `strerror(errno)` for a Node system error. */
export function strerror(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return (err?.code !== undefined && STRERROR[err.code]) || (err?.message ?? String(e));
}
