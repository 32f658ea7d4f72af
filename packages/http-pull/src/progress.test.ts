import { describe, expect, it } from 'vitest';
import { ProgressTracker, type PullProgress } from './progress.js';

describe('ProgressTracker', () => {
  it('says estimating (no totals, no ETA) while scans are open, then gives exact object totals and an ETA', () => {
    let now = 0;
    const seen: PullProgress[] = [];
    const t = new ProgressTracker((p) => seen.push(p), () => now, 0);
    t.phase = 'objects';
    t.openScans = 1;
    t.outstanding = 3;
    now = 1000;
    t.addBytes(1000);
    t.objectDone('metadata', 1000);
    let p = t.snapshot();
    expect(p).toMatchObject({ estimating: true, objectsTotal: null, bytesTotal: null, etaSeconds: null, objectsDone: 1 });
    t.openScans = 0;
    now = 2000;
    t.addBytes(1000);
    t.objectDone('content', 1000);
    t.outstanding = 2;
    p = t.snapshot();
    // 2 done + 2 outstanding; mean 1000 bytes per object -> 4000 bytes estimated.
    expect(p).toMatchObject({ estimating: false, objectsTotal: 4, bytesTotal: 4000, bytesTotalIsEstimate: true });
    expect(p.bytesPerSecond).toBe(1000);
    expect(p.etaSeconds).toBe(2);
    expect(seen.length).toBeGreaterThan(0);
  });

  it('throttles callbacks but emit() always reports', () => {
    let now = 1000;
    let calls = 0;
    const t = new ProgressTracker(() => calls++, () => now, 100);
    t.addBytes(1);
    t.addBytes(1);
    now = 1050;
    t.addBytes(1);
    expect(calls).toBe(1);
    t.emit();
    expect(calls).toBe(2);
    now = 1300;
    t.addBytes(1);
    expect(calls).toBe(3);
  });
});
