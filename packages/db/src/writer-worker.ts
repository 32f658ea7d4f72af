/**
 * The thread behind DatabaseWriter: owns one connection to the database file and runs each
 * batch it is sent in one transaction, answering with the batch's id and an error message if it
 * failed (then rolled back).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Database, type SqlParams } from './index.js';

interface Batch {
  id: number;
  statements: Array<[string, SqlParams | undefined]>;
}

const db = Database.open((workerData as { path: string }).path);
parentPort!.on('message', (m: Batch | { close: true }) => {
  if ('close' in m) {
    db.close();
    parentPort!.close();
    return;
  }
  try {
    db.transaction(() => {
      for (const [sql, params] of m.statements) db.run(sql, params);
    });
    parentPort!.postMessage({ id: m.id, error: null });
  } catch (e) {
    parentPort!.postMessage({ id: m.id, error: (e as Error).message });
  }
});
