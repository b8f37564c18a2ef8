import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { FileStateStore } from '../../src/store/file-store.js';
import { decodeState } from '../../src/store/state-codec.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const storeModule = join(repoRoot, 'src/store/file-store.ts');

// A second CA process. "hold": open the store and keep it until stdin closes. "churn": save a
// new state as fast as possible, announcing each durable save, until killed.
const CHILD = `
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
const { FileStateStore } = await import(${JSON.stringify(storeModule)});
const [dir, mode] = process.argv.slice(1);
const pem = (label, n) => '-----BEGIN ' + label + '-----\\n' + randomBytes(n).toString('base64').replace(/.{64}/g, '$&\\n') + '\\n-----END ' + label + '-----\\n';
// Large enough that a non-atomic write would spend real time half-written.
const chain = pem('CERTIFICATE', 150000);
const state = (sequence) => ({
  schemaVersion: 1, trustDomain: 'cluster.local', sequence, nextGeneration: 2, updatedAt: sequence,
  roots: [{ fingerprint: 'ab'.repeat(32), generation: 1, phase: 'active', certPem: pem('CERTIFICATE', 3000),
    keyPem: pem('PRIVATE KEY', 3000), notBefore: 0, notAfter: 1e12, plugged: false, addedAtSequence: 1, preparedAt: 0,
    intermediate: { certPem: pem('CERTIFICATE', 3000), keyPem: pem('PRIVATE KEY', 3000), notBefore: 0, notAfter: 1e12,
      chainPems: [chain] } }],
});
let store;
try { store = await FileStateStore.open(dir); }
catch (error) { console.log('refused ' + error.code + ' ' + error.message); process.exit(0); }
if (mode === 'hold') {
  console.log('ready');
  for await (const _ of createInterface({ input: process.stdin }));
  await store.close();
} else {
  let stored = await store.load();
  let revision = stored?.revision ?? null;
  for (let sequence = (stored?.state.sequence ?? 0) + 1; ; sequence++) {
    revision = await store.save(state(sequence), revision);
    console.log('saved ' + sequence);
  }
}
`;

interface Child {
  child: ChildProcessWithoutNullStreams;
  next: () => Promise<string>;
}

const started: ChildProcessWithoutNullStreams[] = [];

function startChild(dir: string, mode: 'hold' | 'churn'): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD, dir, mode], { cwd: repoRoot });
  started.push(child);
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return { child, next: async () => String((await lines.next()).value) };
}

async function stop(child: ChildProcessWithoutNullStreams, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  await exited;
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'rampart-store-proc-'));
  try {
    await fn(dir);
  } finally {
    for (const child of started.splice(0)) await stop(child);
    await rm(dir, { recursive: true, force: true });
  }
}

test('a store held by another process refuses a second opener in either direction', async () => {
  await withTempDir(async (dir) => {
    const holder = startChild(dir, 'hold');
    assert.equal(await holder.next(), 'ready');
    await assert.rejects(FileStateStore.open(dir), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'RAMPART_ERR_STATE_LOCKED');
      assert.equal(error.message, `state directory ${dir} is in use by pid ${holder.child.pid}; stop that CA or use another --state-dir`);
      return true;
    });
    // A clean shutdown releases the lock, after which this process can open and hold it...
    const exited = once(holder.child, 'exit');
    holder.child.stdin.end();
    await exited;
    const store = await FileStateStore.open(dir);
    try {
      // ...and now the other process is the one refused.
      const second = startChild(dir, 'hold');
      assert.match(await second.next(), new RegExp(`^refused RAMPART_ERR_STATE_LOCKED .* in use by pid ${process.pid};`));
    } finally {
      await store.close();
    }
  });
});

test('SIGKILL in the middle of many saves never leaves a torn state file; the stale lock is taken over', async () => {
  await withTempDir(async (dir) => {
    let lastAnnounced = 0;
    for (let round = 0; round < 3; round++) {
      const churner = startChild(dir, 'churn');
      // Meanwhile another reader keeps decoding the file: it must never catch it half-written.
      let churning = true;
      let reads = 0;
      const reader = (async () => {
        while (churning) {
          const text = await readFile(join(dir, 'state.json'), 'utf8').catch((error: NodeJS.ErrnoException) => {
            if (error.code === 'ENOENT') return null;
            throw error;
          });
          if (text !== null) {
            decodeState(text);
            reads++;
          }
        }
      })();
      // Kill after a number of saves that varies per round, so the kill lands at varied points.
      const target = lastAnnounced + 8 + round * 5;
      try {
        for (;;) {
          const line = await churner.next();
          assert.match(line, /^saved \d+$/);
          lastAnnounced = Number(line.slice(6));
          if (lastAnnounced >= target) break;
        }
      } finally {
        churning = false;
        await reader;
      }
      assert.ok(reads > 0);
      await stop(churner.child);
      assert.equal(churner.child.signalCode, 'SIGKILL');

      // The killed process left its lock behind; a new CA takes it over and reads whole state.
      assert.ok((await readdir(dir)).includes('ca.lock'));
      const raw = await readFile(join(dir, 'state.json'), 'utf8');
      const state = decodeState(raw);
      assert.ok(state.sequence >= lastAnnounced, `state sequence ${state.sequence} lost an announced save ${lastAnnounced}`);
      const store = await FileStateStore.open(dir);
      try {
        const loaded = await store.load();
        assert.equal(loaded?.state.sequence, state.sequence);
        assert.deepEqual((await readdir(dir)).filter((name) => name.endsWith('.tmp')), [], 'temp files swept');
        lastAnnounced = state.sequence;
      } finally {
        await store.close();
      }
    }
  });
});
