/**
 * Memory policy for the verbs that walk every path of a tree (checkout, ls -R).
 *
 * The walks in @larch/core-store keep nothing per path, so what is left alive stays flat however
 * many paths a tree has. What still grows on a long walk is V8's young generation: each time
 * enough objects have survived a minor collection it doubles the space (from 1 MiB up to 16 MiB
 * per semi-space, 32 MiB in all), whether or not they are garbage a moment later. A walk of
 * 200,000 files allocates a few hundred MB of short-lived strings and buffers, enough for every
 * doubling; that alone took a hardlink checkout from about 60 to about 78 MB of peak RSS.
 *
 * A CLI process runs one verb and exits, so it can fix the young generation at the size it has
 * after start-up: V8 reads `--semi-space-growth-factor` each time it would grow the space, so
 * setting it to 1 here stops the growth without affecting anything else. Minor collections then
 * run more often over a small space whose survivors are few (measured: no slower). A library
 * user embedding @larch/core-store keeps its own heap policy. (fsck is left alone: its memory is
 * its set of verified objects and its worker threads, and holding the young generation there
 * measured no different.)
 */
import v8 from 'node:v8';

/** Keep V8's young generation at its current size for the rest of this process. */
export function holdYoungGeneration(): void {
  v8.setFlagsFromString('--semi-space-growth-factor=1');
}
