import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import sqlite from 'node-sqlite3-wasm';
import { Database, DatabaseError, DatabaseWriter } from '@larch/db';

const dirs: string[] = [];
function scratch(): string {
  const d = mkdtempSync(join(tmpdir(), 'larch-db-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('Database', () => {
  it('persists rows across reopen, with positional and named parameters', () => {
    const path = join(scratch(), 'x.db');
    const db = Database.open(path);
    db.migrate('t', ['CREATE TABLE t_items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, data BLOB)']);
    const r = db.run('INSERT INTO t_items (name, data) VALUES (?, ?)', ['a', new Uint8Array([1, 2, 3])]);
    expect(r).toEqual({ changes: 1, lastInsertRowid: 1 });
    db.run('INSERT INTO t_items (name) VALUES ($n)', { $n: 'b' });
    db.close();
    db.close();
    const again = Database.open(path);
    expect(again.all('SELECT id, name FROM t_items ORDER BY id')).toEqual([
      { id: 1, name: 'a' },
      { id: 2, name: 'b' },
    ]);
    expect(again.get<{ data: Uint8Array }>('SELECT data FROM t_items WHERE name = ?', ['a'])!.data).toEqual(new Uint8Array([1, 2, 3]));
    expect(again.get('SELECT * FROM t_items WHERE name = ?', ['zz'])).toBeUndefined();
    again.close();
  });

  it('rolls a failed transaction back, joins nested ones, and refuses async callbacks', () => {
    const db = Database.open(':memory:');
    db.exec('CREATE TABLE t (k TEXT PRIMARY KEY)');
    expect(() =>
      db.transaction(() => {
        db.run('INSERT INTO t VALUES (?)', ['one']);
        db.transaction(() => db.run('INSERT INTO t VALUES (?)', ['two']));
        db.run('INSERT INTO t VALUES (?)', ['one']);
      }),
    ).toThrow(/UNIQUE constraint failed/);
    expect(db.all('SELECT k FROM t')).toEqual([]);
    expect(db.inTransaction).toBe(false);
    expect(() => db.transaction(() => Promise.resolve(1))).toThrow(/must be synchronous/);
    expect(db.all('SELECT k FROM t')).toEqual([]);
    db.transaction(() => db.run('INSERT INTO t VALUES (?)', ['three']));
    expect(db.all('SELECT k FROM t')).toEqual([{ k: 'three' }]);
    db.close();
  });

  it('applies only new migration steps, per component, and refuses a newer schema', () => {
    const path = join(scratch(), 'm.db');
    let db = Database.open(path);
    db.migrate('a', ['CREATE TABLE a_one (x)']);
    db.migrate('b', ['CREATE TABLE b_one (x)']);
    db.close();
    db = Database.open(path);
    db.migrate('a', ['CREATE TABLE a_one (x)', 'CREATE TABLE a_two (y)']);
    const tables = db.all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").map((r) => r.name);
    expect(tables).toEqual(['a_one', 'a_two', 'b_one', 'larch_migrations']);
    expect(() => db.migrate('a', ['CREATE TABLE a_one (x)'])).toThrow(/schema of a is at version 2, newer than this program's 1/);
    db.close();
  });

  it('names the statement and the missing directory in errors', () => {
    const db = Database.open(':memory:');
    expect(() => db.all('SELECT * FROM nowhere')).toThrow(DatabaseError);
    expect(() => db.all('SELECT * FROM nowhere')).toThrow(/SQL error in "SELECT \* FROM nowhere": .*no such table: nowhere/);
    db.close();
    expect(() => Database.open(join(scratch(), 'missing', 'x.db'))).toThrow(/directory .*missing does not exist/);
  });

  it('writes many rows inside one transaction, preparing each statement once (cached statements)', () => {
    const db = Database.open(join(scratch(), 'speed.db'));
    db.exec('CREATE TABLE s (i INTEGER PRIMARY KEY, v TEXT)');
    // What makes it fast, counted rather than timed: 5000 runs of one SQL text, one prepare.
    const prepare = vi.spyOn(sqlite.Database.prototype, 'prepare');
    const insert = 'INSERT OR REPLACE INTO s (i, v) VALUES (?, ?)';
    try {
      db.transaction(() => {
        for (let i = 0; i < 5000; i++) db.run(insert, [i % 1000, `v${i}`]);
      });
      expect(prepare.mock.calls.filter(([sql]) => sql === insert)).toHaveLength(1);
    } finally {
      prepare.mockRestore();
    }
    expect(db.get('SELECT count(*) AS n FROM s')).toEqual({ n: 1000 });
    db.close();
  });
});

describe('Database locks', () => {
  it('releases the file after get(), run() and all(), so another connection can write', () => {
    const path = join(scratch(), 'lock.db');
    const a = Database.open(path);
    a.exec('CREATE TABLE t (k TEXT PRIMARY KEY); INSERT INTO t VALUES (\'x\'), (\'y\')');
    expect(a.get('SELECT k FROM t ORDER BY k')).toEqual({ k: 'x' });
    a.all('SELECT k FROM t');
    a.run('INSERT INTO t VALUES (?)', ['z']);
    const b = Database.open(path);
    b.exec('PRAGMA busy_timeout = 100');
    b.run('INSERT INTO t VALUES (?)', ['w']);
    expect(a.get('SELECT count(*) AS n FROM t')).toEqual({ n: 4 });
    b.close();
    a.close();
  });
});

describe('DatabaseWriter', () => {
  it('commits batches on its own thread, in order, visible to another connection; a failing batch rolls back', async () => {
    const path = join(scratch(), 'w.db');
    const db = Database.open(path);
    db.exec('CREATE TABLE w (k TEXT PRIMARY KEY, v INTEGER)');
    const writer = DatabaseWriter.open(path);
    const first = writer.batch([
      ['INSERT INTO w VALUES (?, ?)', ['a', 1]],
      ['INSERT INTO w VALUES ($k, $v)', { $k: 'b', $v: 2 }],
    ]);
    const second = writer.batch([['UPDATE w SET v = v + 10 WHERE k = ?', ['a']]]);
    await Promise.all([first, second]);
    expect(db.all('SELECT k, v FROM w ORDER BY k')).toEqual([
      { k: 'a', v: 11 },
      { k: 'b', v: 2 },
    ]);
    await expect(
      writer.batch([
        ['INSERT INTO w VALUES (?, ?)', ['c', 3]],
        ['INSERT INTO w VALUES (?, ?)', ['a', 0]],
      ]),
    ).rejects.toThrow(/UNIQUE constraint failed/);
    expect(db.get('SELECT count(*) AS n FROM w')).toEqual({ n: 2 });
    await writer.close();
    await writer.close();
    await expect(writer.batch([['DELETE FROM w']])).rejects.toThrow(DatabaseError);
    db.close();
    expect(() => DatabaseWriter.open(':memory:')).toThrow(/needs a database file/);
  });
});
