/**
 * Access log: one line per request, JSON (default) or a Common-Log-like text line.
 *
 * Memory stays bounded when the log destination is slower than the traffic: once more than
 * MAX_PENDING_BYTES are queued in the stream, lines are dropped and counted, and the count is
 * logged with the next batch that gets through. Request paths come from the network, so they are escaped
 * (JSON) or stripped of control characters (text) and capped in length.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import type { Writable } from 'node:stream';

/** Output format of the access log. */
export type LogFormat = 'json' | 'text';

/** One request as logged. */
export interface AccessLogEntry {
  time: string;
  method: string;
  path: string;
  status: number;
  bytes: number;
  durationMs: number;
  remote: string;
  /** Why the request was refused or cut short, when it was. */
  reason?: string;
}

/** Longest request path written to the log. */
export const MAX_LOGGED_PATH = 1024;
/** Queued log bytes beyond which lines are dropped. */
export const MAX_PENDING_BYTES = 4 * 1024 * 1024;

function capPath(p: string): string {
  return p.length > MAX_LOGGED_PATH ? `${p.slice(0, MAX_LOGGED_PATH)}…` : p;
}

/** Lines are written in batches of about this many bytes… */
export const FLUSH_BYTES = 64 * 1024;
/** …or after this many milliseconds, whichever comes first. */
export const FLUSH_INTERVAL_MS = 200;

/**
 * Writes access-log lines, batched: one write per FLUSH_BYTES or FLUSH_INTERVAL_MS instead of
 * one per request (a write per request through fs.WriteStream cost a fifth of the server's CPU).
 * Files are appended with synchronous write(2) calls on an O_APPEND descriptor; streams (stderr)
 * get one stream write per batch. See the file comment for the memory bound.
 */
export class AccessLog {
  private dropped = 0;
  private batch: string[] = [];
  private batchBytes = 0;
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly sink: { fd: number } | { stream: Writable },
    private readonly format: LogFormat,
  ) {
    if ('stream' in sink) sink.stream.on('error', () => undefined); // a broken log must not take the server down
  }

  /** Log to an existing stream (stderr by default). The stream is not closed by close(). */
  static toStream(out: Writable, format: LogFormat): AccessLog {
    return new AccessLog({ stream: out }, format);
  }

  /** Log to a file, appending (created 0644 if missing). */
  static toFile(path: string, format: LogFormat): AccessLog {
    return new AccessLog({ fd: openSync(path, 'a', 0o644) }, format);
  }

  /** Record one request. Never throws, never blocks for long. */
  write(e: AccessLogEntry): void {
    if (this.format === 'json') {
      this.push(JSON.stringify(e.path.length > MAX_LOGGED_PATH ? { ...e, path: capPath(e.path) } : e));
    } else {
      // eslint-disable-next-line no-control-regex
      const path = capPath(e.path).replace(/[\x00-\x20\x7f"\\]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
      this.push(`${e.remote} [${e.time}] "${e.method} ${path}" ${e.status} ${e.bytes} ${e.durationMs}ms${e.reason ? ` (${e.reason})` : ''}`);
    }
  }

  private push(line: string): void {
    this.batch.push(line);
    this.batchBytes += line.length + 1;
    if (this.batchBytes >= FLUSH_BYTES) this.flush();
    else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), FLUSH_INTERVAL_MS);
      this.timer.unref();
    }
  }

  /** Write out the current batch now. */
  flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.batch.length === 0) return;
    if (this.dropped > 0) {
      const n = this.dropped;
      this.dropped = 0;
      this.batch.push(this.format === 'json' ? JSON.stringify({ time: new Date().toISOString(), event: 'log-lines-dropped', count: n }) : `log: ${n} lines dropped`);
    }
    const text = `${this.batch.join('\n')}\n`;
    const lines = this.batch.length;
    this.batch = [];
    this.batchBytes = 0;
    if ('fd' in this.sink) {
      try {
        writeSync(this.sink.fd, text);
      } catch {
        this.dropped += lines;
      }
    } else if (this.sink.stream.writableLength > MAX_PENDING_BYTES) {
      this.dropped += lines;
    } else {
      this.sink.stream.write(text);
    }
  }

  /** Flush, and close the file; for a borrowed stream, wait until its queue has drained. */
  async close(): Promise<void> {
    this.flush();
    if ('fd' in this.sink) {
      closeSync(this.sink.fd);
    } else {
      const stream = this.sink.stream;
      if (stream.writableLength > 0) await new Promise<void>((resolve) => stream.once('drain', resolve));
    }
  }
}
