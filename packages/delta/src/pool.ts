/**
 * A small pool of bsdiff worker threads. Jobs queue until a worker is free; each job's inputs are
 * loaded only when it starts, so memory holds at most one old/new pair per worker.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { bsdiff } from './bsdiff.js';
import { LarchError } from '@larch/core-store';

interface Pending {
  id: number;
  load: () => Promise<{ old: Uint8Array; nw: Uint8Array }>;
  resolve: (b: Uint8Array) => void;
  reject: (e: unknown) => void;
}

/**
 * The ArrayBuffers of those views that span their whole buffer: handed over to a worker instead of
 * copied (the caller keeps no reference). Views into a larger or shared buffer are copied.
 */
export function wholeBuffers(views: Uint8Array[]): ArrayBuffer[] {
  return views.filter((b) => b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer).map((b) => b.buffer as ArrayBuffer);
}

export class BsdiffPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: Pending[] = [];
  private readonly running = new Map<number, Pending>();
  private nextId = 0;

  private readonly inline: boolean;

  constructor(size: number) {
    const url = new URL('./bsdiff-worker.js', import.meta.url);
    // Running from sources (no compiled worker beside this module): diff on the calling thread.
    this.inline = size <= 0 || !existsSync(fileURLToPath(url));
    if (this.inline) return;
    for (let i = 0; i < size; i++) {
      const w = new Worker(url);
      w.on('message', (m: { id: number; patch?: Uint8Array; error?: string }) => {
        const p = this.running.get(m.id);
        this.running.delete(m.id);
        this.idle.push(w);
        if (p) {
          if (m.error !== undefined) p.reject(new LarchError('IO_ERROR', `bsdiff failed: ${m.error}`));
          else p.resolve(m.patch!);
        }
        this.pump();
      });
      w.on('error', (e) => {
        for (const p of this.running.values()) p.reject(e);
        this.running.clear();
      });
      this.workers.push(w);
      this.idle.push(w);
    }
  }

  /** Queue a diff; `load` reads the inputs when a worker becomes free. */
  diff(load: Pending['load']): Promise<Uint8Array> {
    if (this.inline) return load().then(({ old, nw }) => Buffer.concat(bsdiff(old, nw)));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, load, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const w = this.idle.pop()!;
      const job = this.queue.shift()!;
      this.running.set(job.id, job);
      job.load().then(
        ({ old, nw }) => {
          // Hand whole-buffer inputs over instead of copying them (the caller keeps no reference).
          w.postMessage({ id: job.id, old, nw }, wholeBuffers([old, nw]));
        },
        (e) => {
          this.running.delete(job.id);
          this.idle.push(w);
          job.reject(e);
          this.pump();
        },
      );
    }
  }

  /** Stop the workers (idempotent). */
  async close(): Promise<void> {
    const all = this.workers.splice(0);
    this.idle.length = 0;
    await Promise.all(all.map((w) => w.terminate()));
  }
}
