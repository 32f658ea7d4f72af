/**
 * Admission of connections at the connection limit, so that a flood of connections cannot shut
 * ordinary clients out.
 *
 * Node's own `server.maxConnections` refuses every new connection once the limit is reached. A
 * client that opens connections and never finishes a request (slowloris) then holds the server
 * for as long as it likes: the header timeout frees its connections only when it fires, and the
 * attacker simply opens new ones. Here each connection is in one of three states instead:
 *
 * - `waiting`: connected, the headers of its first request not complete yet;
 * - `active`:  at least one request received and its response not finished;
 * - `idle`:    every response finished (a keep-alive connection between requests, or one whose
 *              unread request body is being discarded).
 *
 * A connection arriving at the limit takes the place of an idle one (the one idle the longest)
 * or, when none is idle, of the connection that has been waiting for its headers the longest.
 * An ordinary client sends its request as soon as it has connected, so it leaves `waiting`
 * within a round trip, while a flood's connections grow old there and are the ones evicted.
 * Only when every connection is serving a request is the new one refused. This mirrors what
 * nginx does when it runs out of worker connections (it closes reusable connections, idle
 * keep-alive ones and those still waiting for a request, to make room).
 *
 * The states are Sets, whose iteration order is insertion order: moving a connection from one
 * state to another re-inserts it, so the first element of each Set is its oldest. Every
 * operation is O(1).
 */
import type { Socket } from 'node:net';

/** State of one connection; see the file comment. */
export type ConnectionState = 'waiting' | 'active' | 'idle';

/** Counters since the table was created. */
export interface ConnectionStats {
  /** Connections open now. */
  open: number;
  waiting: number;
  active: number;
  idle: number;
  /** Connections closed to make room for a new one. */
  evicted: number;
  /** New connections closed because every connection was serving a request. */
  refused: number;
}

function oldest(set: Set<Socket>): Socket | undefined {
  for (const s of set) return s;
  return undefined;
}

/** The connections of one server, by state, with the eviction policy at the limit. */
export class ConnectionTable {
  readonly #max: number;
  readonly #sets: Record<ConnectionState, Set<Socket>> = { waiting: new Set(), active: new Set(), idle: new Set() };
  /** Requests received and not yet answered, per connection (more than one when pipelined). */
  readonly #inFlight = new Map<Socket, number>();
  #evicted = 0;
  #refused = 0;

  constructor(maxConnections: number) {
    if (!Number.isInteger(maxConnections) || maxConnections < 1) throw new RangeError(`maxConnections must be a positive integer, not ${maxConnections}`);
    this.#max = maxConnections;
  }

  /** Number of connections tracked. */
  get size(): number {
    return this.#inFlight.size;
  }

  /**
   * Take a new connection. At the limit, first destroy the connection idle the longest, else
   * the one waiting for its headers the longest; when every connection is active, destroy
   * `socket` itself and return false.
   */
  admit(socket: Socket): boolean {
    if (this.size >= this.#max) {
      const victim = oldest(this.#sets.idle) ?? oldest(this.#sets.waiting);
      if (victim === undefined) {
        this.#refused++;
        socket.destroy();
        return false;
      }
      this.#evicted++;
      this.#forget(victim);
      victim.destroy();
    }
    this.#inFlight.set(socket, 0);
    this.#sets.waiting.add(socket);
    socket.once('close', () => this.#forget(socket));
    return true;
  }

  /** The headers of a request on `socket` are complete: the connection is active. */
  requestStarted(socket: Socket): void {
    const n = this.#inFlight.get(socket);
    if (n === undefined) return;
    this.#inFlight.set(socket, n + 1);
    if (n === 0) this.#move(socket, 'active');
  }

  /** A response on `socket` finished or was abandoned; with none left the connection is idle. */
  requestDone(socket: Socket): void {
    const n = this.#inFlight.get(socket);
    if (n === undefined || n === 0) return;
    this.#inFlight.set(socket, n - 1);
    if (n === 1) this.#move(socket, 'idle');
  }

  /** State of `socket`, undefined when it is not (or no longer) tracked. */
  stateOf(socket: Socket): ConnectionState | undefined {
    for (const state of ['waiting', 'active', 'idle'] as const) if (this.#sets[state].has(socket)) return state;
    return undefined;
  }

  stats(): ConnectionStats {
    const { waiting, active, idle } = this.#sets;
    return { open: this.size, waiting: waiting.size, active: active.size, idle: idle.size, evicted: this.#evicted, refused: this.#refused };
  }

  #move(socket: Socket, to: ConnectionState): void {
    for (const set of Object.values(this.#sets)) set.delete(socket);
    this.#sets[to].add(socket);
  }

  #forget(socket: Socket): void {
    if (!this.#inFlight.delete(socket)) return;
    for (const set of Object.values(this.#sets)) set.delete(socket);
  }
}
