/** One-shot worker entry for copy-part.ts: builds one part, posts it back, and is terminated. */
import { parentPort } from 'node:worker_threads';
import { buildCopyPart, type CopyPartJob } from './copy-part.js';

parentPort?.once('message', (job: CopyPartJob) => {
  try {
    const r = buildCopyPart(job);
    const transfer = r.body !== null ? [r.body.buffer as ArrayBuffer] : [];
    parentPort!.postMessage(r, transfer);
  } catch (e) {
    parentPort!.postMessage({ body: null, matched: 0, error: (e as Error).message });
  }
});
