/**
 * Worker-thread entry that computes bsdiff patches, so several modified files are diffed in
 * parallel and the main thread stays free to build and compress parts.
 */
import { parentPort } from 'node:worker_threads';
import { bsdiff } from './bsdiff.js';

interface Job {
  id: number;
  old: Uint8Array;
  nw: Uint8Array;
}

parentPort?.on('message', (job: Job) => {
  try {
    const patch = Buffer.concat(bsdiff(job.old, job.nw));
    const out = new Uint8Array(patch.buffer, patch.byteOffset, patch.byteLength);
    parentPort!.postMessage({ id: job.id, patch: out }, [out.buffer as ArrayBuffer]);
  } catch (e) {
    parentPort!.postMessage({ id: job.id, error: (e as Error).message });
  }
});
