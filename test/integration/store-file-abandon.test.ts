/**
 * FileStateStore.abandon(), which closes the store of a CA start that failed: what it puts back,
 * and what it must never touch (state found at open, files not named, a lock no longer its own).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CaState } from '../../src/core/ports.js';
import { FileStateStore } from '../../src/store/file-store.js';

function state(updatedAt: number): CaState {
  return { schemaVersion: 1, trustDomain: 'cluster.local', sequence: 0, nextGeneration: 1, roots: [], updatedAt };
}
const PEM = '-----BEGIN CERTIFICATE-----\nMQ==\n-----END CERTIFICATE-----\n';

function scratch(): string {
  return mkdtempSync(join(tmpdir(), 'rampart-abandon-'));
}

test('a store that created the state removes it, its bundle and the named start files; a directory holding anything else stays', async () => {
  const base = scratch();
  try {
    const dir = join(base, 'a', 'b');
    mkdirSync(join(base, 'a'));
    writeFileSync(join(base, 'a', 'keep.txt'), 'not the CA\'s\n');
    const store = await FileStateStore.open(dir, { startFiles: ['extra.json'] });
    await store.save(state(1), null);
    await store.publishBundle(PEM);
    writeFileSync(join(dir, 'extra.json'), '{}');
    writeFileSync(join(dir, 'unnamed.txt'), 'someone else\'s');
    const report = await store.abandon();
    assert.deepEqual(report?.removed, ['state.json', 'root-cert.pem', 'extra.json']);
    assert.deepEqual(report?.failed, []);
    // b holds a file nobody named, so it stays (and with it a, which this start did not create anyway).
    assert.deepEqual(readdirSync(dir), ['unnamed.txt']);
    assert.deepEqual(report?.removedDirectories, []);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('the directories open() created go too, innermost first; a parent that existed stays', async () => {
  const base = scratch();
  try {
    const dir = join(base, 'x', 'y');
    const store = await FileStateStore.open(dir);
    await store.save(state(1), null);
    const report = await store.abandon();
    assert.deepEqual(report?.removedDirectories, [dir, join(base, 'x')]);
    assert.deepEqual(readdirSync(base), []);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('a directory open() tightened to 0700 gets its old mode back; one that held state keeps 0700 (outside QA)', async () => {
  const base = scratch();
  try {
    const dir = join(base, 'certs');
    mkdirSync(dir, { mode: 0o750 });
    chmodSync(dir, 0o750);
    const store = await FileStateStore.open(dir);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    await store.save(state(1), null);
    const report = await store.abandon();
    assert.equal(statSync(dir).mode & 0o777, 0o750);
    assert.deepEqual(report?.restored, [`${dir} (mode 750)`]);
    // With state found at open, nothing is rolled back: a CA that ran there wants 0700 anyway.
    const again = await FileStateStore.open(dir);
    await again.save(state(2), null);
    await again.close();
    chmodSync(dir, 0o750);
    const third = await FileStateStore.open(dir);
    assert.equal(await third.abandon(), null);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('files that existed before the start get their old bytes and mode back', async () => {
  const dir = scratch();
  try {
    writeFileSync(join(dir, 'root-cert.pem'), 'old bundle\n', { mode: 0o640 });
    const store = await FileStateStore.open(dir);
    await store.save(state(1), null);
    await store.publishBundle(PEM);
    const report = await store.abandon();
    assert.deepEqual(report?.restored, ['root-cert.pem']);
    assert.equal(readFileSync(join(dir, 'root-cert.pem'), 'utf8'), 'old bundle\n');
    assert.equal(statSync(join(dir, 'root-cert.pem')).mode & 0o777, 0o640);
    assert.deepEqual(readdirSync(dir), ['root-cert.pem']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a store that found state leaves everything as it is', async () => {
  const dir = scratch();
  try {
    const first = await FileStateStore.open(dir);
    await first.save(state(1), null);
    await first.close();
    const store = await FileStateStore.open(dir);
    const loaded = await store.load();
    await store.save(state(2), loaded?.revision ?? null);
    assert.equal(await store.abandon(), null);
    assert.ok(existsSync(join(dir, 'state.json')));
    assert.deepEqual(readdirSync(dir), ['state.json'], 'lock released');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a lock that is no longer this store\'s: nothing is removed, and the report says why', async () => {
  const dir = scratch();
  try {
    const store = await FileStateStore.open(dir);
    await store.save(state(1), null);
    // Another live holder's record (this test process's parent stands in for it).
    const other = { pid: process.ppid, hostname: (await import('node:os')).hostname(), startedAt: new Date().toISOString(), nonce: 'other' };
    writeFileSync(join(dir, 'ca.lock'), `${JSON.stringify(other)}\n`);
    const report = await store.abandon();
    assert.deepEqual(report?.removed, []);
    assert.match(report?.failed[0] ?? '', /^ca\.lock: .*held by pid/);
    assert.ok(existsSync(join(dir, 'state.json')), 'the state, now perhaps another CA\'s, stays');
    assert.ok(existsSync(join(dir, 'ca.lock')), 'the other holder keeps its lock');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
