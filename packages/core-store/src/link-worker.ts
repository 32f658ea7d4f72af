/**
 * A worker thread that makes hard links, so that a large hardlink checkout runs link(2) on two
 * threads at once: the worker links lists handed to it while the main thread goes on reading
 * metadata and linking the rest.
 *
 * Why: on a hardlink checkout the time is the system calls; link(2) runs in the calling thread
 * and the kernel lets links into different directories proceed in parallel, while a round-trip
 * through the libuv threadpool per link costs more than the call itself. A worker given a few
 * thousand links in one message needs no per-link hand-off.
 *
 * The worker only calls link(2) (which never follows or replaces the final component) and
 * reports the indices of the links that failed; the caller sends those through its general path
 * (copy fallback, union handling, error messages). The source uses node built-ins only and is
 * evaluated from a string, so it runs the same from the compiled package and under test.
 */
import { Worker } from 'node:worker_threads';
import { LarchError } from './errors.js';

// process.getBuiltinModule works whether the evaluated code is taken as CommonJS or, when the
// process runs with --input-type=module (inherited by workers), as an ES module.
const LINK_WORKER_SOURCE = `
const { parentPort } = process.getBuiltinModule('node:worker_threads');
const { linkSync } = process.getBuiltinModule('node:fs');
parentPort.on('message', (pairs) => {
  const failed = [];
  for (let i = 0; i < pairs.length; i += 2) {
    try {
      linkSync(pairs[i], pairs[i + 1]);
    } catch {
      failed.push(i >> 1);
    }
  }
  parentPort.postMessage(failed);
});
`;

/** One worker thread making hard links; start it early, it boots while the caller prepares work. */
export class LinkWorker {
  private readonly worker: Worker;
  /** Answers come back in the order the lists were sent. */
  private readonly waiting: Array<{ resolve: (failed: number[]) => void; reject: (e: unknown) => void }> = [];
  private dead: unknown = null;

  constructor() {
    this.worker = new Worker(LINK_WORKER_SOURCE, { eval: true });
    this.worker.on('message', (failed: number[]) => this.waiting.shift()?.resolve(failed));
    const fail = (e: unknown): void => {
      if (this.dead === null) this.dead = e;
      for (const w of this.waiting.splice(0)) w.reject(e);
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new LarchError('IO_ERROR', `Link worker exited with code ${code}`, { code })));
  }

  /** Link `pairs[2i]` to `pairs[2i + 1]` for every i; resolves with the indices i that failed. */
  link(pairs: string[]): Promise<number[]> {
    if (this.dead !== null) return Promise.reject(this.dead);
    return new Promise<number[]>((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.worker.postMessage(pairs);
    });
  }

  /** Stop the thread; lists still queued are dropped unanswered. */
  async close(): Promise<void> {
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }
}
