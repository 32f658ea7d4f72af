/**
 * A delta part holding one object copied in part out of a different FROM file (copydiff.ts),
 * built in one buffer of the exact size: the tables, the payload (the source's checksum, then the
 * literal runs, copied in place) and the op stream. `runCopyPart` does the work on a
 * one-shot worker thread, so the large inputs and the match table are released in full, at once,
 * when it ends (the part is then compressed while other work goes on).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { LarchError, type Xattr } from '@larch/core-store';
import { copyLiterals, copyMatches, writeCopyOps } from './copydiff.js';
import { partBodyFrame } from './format.js';
import { ByteSink, OP_CLOSE, OP_OPEN } from './ops.js';
import { wholeBuffers } from './pool.js';

export interface CopyPartJob {
  old: Uint8Array;
  nw: Uint8Array;
  /** Checksum (hex) of the FROM object copied from. */
  from: string;
  uid: number;
  gid: number;
  mode: number;
  xattrs: Xattr[];
  /** Smallest share of the new file that must be copied for the part to be worth building. */
  minShare: number;
}

/** The part body, or null when too little was copied; and the number of bytes copied. */
export interface CopyPartResult {
  body: Uint8Array | null;
  matched: number;
}

export function buildCopyPart(job: CopyPartJob): CopyPartResult {
  const m = copyMatches(job.old, job.nw);
  if (m.matched < job.nw.length * job.minShare) return { body: null, matched: m.matched };
  const literals = copyLiterals(job.nw, m);
  const literalBytes = job.nw.length - m.matched;
  // Payload: the source checksum at 0, the literal runs from 32. Tables: one mode, one xattr set.
  const ops = new ByteSink(64 + 12 * m.count).byte(OP_OPEN).varint(0).varint(0).varint(job.nw.length);
  writeCopyOps(job.nw, m, ops, 0, 32);
  ops.byte(OP_CLOSE);
  const { head, tail } = partBodyFrame([[job.uid, job.gid, job.mode]], [job.xattrs], 32 + literalBytes, ops.view());
  const body = Buffer.allocUnsafeSlow(head.length + 32 + literalBytes + tail.length);
  head.copy(body, 0);
  body.write(job.from, head.length, 'hex');
  let o = head.length + 32;
  for (const l of literals) {
    body.set(l, o);
    o += l.length;
  }
  tail.copy(body, o);
  return { body, matched: m.matched };
}

/** {@link buildCopyPart} on a one-shot worker thread (on the calling thread when running from sources). */
export function runCopyPart(job: CopyPartJob): Promise<CopyPartResult> {
  const url = new URL('./copy-part-worker.js', import.meta.url);
  if (!existsSync(fileURLToPath(url))) return Promise.resolve(buildCopyPart(job));
  return new Promise((resolve, reject) => {
    const w = new Worker(url);
    let done = false;
    const finish = (f: () => void): void => {
      if (done) return;
      done = true;
      void w.terminate();
      f();
    };
    w.once('message', (r: CopyPartResult & { error?: string }) =>
      finish(() => (r.error !== undefined ? reject(new LarchError('IO_ERROR', `copy diff failed: ${r.error}`)) : resolve(r))),
    );
    w.once('error', (e) => finish(() => reject(e)));
    w.once('exit', (code) => finish(() => reject(new LarchError('IO_ERROR', `copy diff worker exited with code ${code}`))));
    w.postMessage(job, wholeBuffers([job.old, job.nw]));
  });
}
