import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CaState, StoredState } from '../../src/core/ports.js';
import { writeFileAtomic } from '../../src/store/atomic-file.js';
import { FileStateStore } from '../../src/store/file-store.js';
import { encodeState } from '../../src/store/state-codec.js';

function pem(label: string): string {
  return `-----BEGIN ${label}-----\n${randomBytes(90).toString('base64')}\n-----END ${label}-----\n`;
}

function sampleState(sequence = 1): CaState {
  return {
    schemaVersion: 1,
    trustDomain: 'cluster.local',
    sequence,
    nextGeneration: 2,
    updatedAt: 1_000 + sequence,
    roots: [
      {
        fingerprint: createHash('sha256').update('root1').digest('hex'),
        generation: 1,
        phase: 'active',
        certPem: pem('CERTIFICATE'),
        keyPem: pem('PRIVATE KEY'),
        notBefore: 0,
        notAfter: 10_000_000,
        plugged: false,
        addedAtSequence: 1,
        preparedAt: 0,
        activatedAt: 0,
        intermediate: { certPem: pem('CERTIFICATE'), keyPem: pem('EC PRIVATE KEY'), notBefore: 0, notAfter: 5_000_000, chainPems: [] },
      },
    ],
  };
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'rampart-store-file-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function withStore(fn: (store: FileStateStore, dir: string) => Promise<void>, pollIntervalMs?: number): Promise<void> {
  await withTempDir(async (parent) => {
    const dir = join(parent, 'certs');
    const store = await FileStateStore.open(dir, pollIntervalMs === undefined ? {} : { pollIntervalMs });
    try {
      await fn(store, dir);
    } finally {
      await store.close();
    }
  });
}

const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

test('open creates the directory 0700; empty store loads null', async () => {
  await withStore(async (store, dir) => {
    assert.equal(await mode(dir), 0o700);
    assert.equal(await store.load(), null);
    assert.deepEqual(await readdir(dir), ['ca.lock']);
  });
});

test('save and load round trip; revision is the SHA-256 of the file; modes 0600 and 0644', async () => {
  await withStore(async (store, dir) => {
    const state = sampleState();
    const revision = await store.save(state, null);
    const bytes = await readFile(join(dir, 'state.json'));
    assert.equal(revision, createHash('sha256').update(bytes).digest('hex'));
    assert.equal(await mode(join(dir, 'state.json')), 0o600);
    assert.deepEqual(await store.load(), { state, revision });

    const next = sampleState(2);
    const revision2 = await store.save(next, revision);
    assert.notEqual(revision2, revision);
    assert.deepEqual((await store.load())?.state, next);

    const bundle = state.roots[0]!.certPem + next.roots[0]!.certPem;
    await store.publishBundle(bundle);
    assert.equal(await readFile(join(dir, 'root-cert.pem'), 'utf8'), bundle);
    assert.equal(await mode(join(dir, 'root-cert.pem')), 0o644);
  });
});

test('save detects conflicts and leaves the file untouched', async () => {
  await withStore(async (store, dir) => {
    const first = await store.save(sampleState(1), null);
    await assert.rejects(store.save(sampleState(2), null), { code: 'RAMPART_ERR_STATE_CONFLICT', name: 'ConflictError' });
    const second = await store.save(sampleState(2), first);
    await assert.rejects(store.save(sampleState(3), first), { code: 'RAMPART_ERR_STATE_CONFLICT' });
    assert.equal((await store.load())?.revision, second);
    // Another writer (simulated by writing the file directly) bumps the revision.
    await writeFile(join(dir, 'state.json'), encodeState(sampleState(4)));
    await assert.rejects(store.save(sampleState(5), second), { code: 'RAMPART_ERR_STATE_CONFLICT' });
    await rm(join(dir, 'state.json'));
    await assert.rejects(store.save(sampleState(5), second), { code: 'RAMPART_ERR_STATE_CONFLICT' });
  });
});

test('concurrent saves from one instance: exactly one wins per revision', async () => {
  await withStore(async (store) => {
    const results = await Promise.allSettled([1, 2, 3, 4].map((n) => store.save(sampleState(n), null)));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  });
});

test('a corrupt or invalid state file is a coded error', async () => {
  await withStore(async (store, dir) => {
    await writeFile(join(dir, 'state.json'), '{"schemaVersion": 1, "trust');
    await assert.rejects(store.load(), { code: 'RAMPART_ERR_STATE_CORRUPT', name: 'StateError' });
    await writeFile(join(dir, 'state.json'), JSON.stringify({ ...sampleState(), sequence: -4 }));
    await assert.rejects(store.load(), (error: Error & { code?: string }) => error.code === 'RAMPART_ERR_STATE_CORRUPT' && error.message.includes('sequence'));
  });
});

test('invalid state is never written', async () => {
  await withStore(async (store) => {
    const revision = await store.save(sampleState(), null);
    await assert.rejects(store.save({ ...sampleState(), roots: [] }, revision), { code: 'RAMPART_ERR_STATE_CORRUPT' });
    assert.equal((await store.load())?.revision, revision);
  });
});

test('publishBundle refuses anything but PEM certificates', async () => {
  await withStore(async (store, dir) => {
    for (const bad of ['', 'hello', pem('PRIVATE KEY'), `${pem('CERTIFICATE')}${pem('EC PRIVATE KEY')}`, `${pem('CERTIFICATE')}junk`]) {
      await assert.rejects(store.publishBundle(bad), (error: Error & { code?: string }) => error.code === 'RAMPART_ERR_STATE_CORRUPT' && !error.message.includes('-----'));
    }
    assert.deepEqual(await readdir(dir), ['ca.lock']);
  });
});

test('a second store on the same directory in this process is refused until the first closes', async () => {
  await withTempDir(async (dir) => {
    const first = await FileStateStore.open(dir);
    await assert.rejects(FileStateStore.open(dir), { code: 'RAMPART_ERR_STATE_LOCKED' });
    await first.close();
    await first.close();
    await assert.rejects(first.load(), { code: 'RAMPART_ERR_INTERNAL' });
    const second = await FileStateStore.open(dir);
    await second.close();
    assert.deepEqual(await readdir(dir), []);
  });
});

test('open sweeps temp files left by an interrupted write but keeps the state', async () => {
  await withTempDir(async (dir) => {
    const store = await FileStateStore.open(dir);
    const revision = await store.save(sampleState(), null);
    await store.close();
    await writeFile(join(dir, '.state.json.99999.abcdef.tmp'), '{"half');
    await writeFile(join(dir, '.root-cert.pem.99999.abcdef.tmp'), '---');
    await writeFile(join(dir, 'operator-notes.txt'), 'keep me');
    const reopened = await FileStateStore.open(dir);
    try {
      assert.deepEqual((await readdir(dir)).sort(), ['ca.lock', 'operator-notes.txt', 'state.json']);
      assert.equal((await reopened.load())?.revision, revision);
    } finally {
      await reopened.close();
    }
  });
});

test('open on a path that is a file is a coded config error', async () => {
  await withTempDir(async (dir) => {
    await writeFile(join(dir, 'file'), 'x');
    await assert.rejects(FileStateStore.open(join(dir, 'file')), { code: 'RAMPART_ERR_CONFIG_INVALID' });
  });
});

test('an existing directory others can read is tightened to 0700 (a checkout\'s certs/ is 0755)', async () => {
  await withTempDir(async (dir) => {
    await chmod(dir, 0o755);
    const store = await FileStateStore.open(dir);
    await store.close();
    assert.equal(await mode(dir), 0o700);
  });
});

test('watch reports changes written by others, not by this instance', async () => {
  await withStore(async (store, dir) => {
    const seen: Array<StoredState | null> = [];
    let wake: () => void = () => undefined;
    const unsubscribe = store.watch((stored) => {
      seen.push(stored);
      wake();
    });
    const arrived = new Promise<void>((resolve) => (wake = resolve));
    const own = await store.save(sampleState(1), null);
    // Give the 10 ms poller many chances to (wrongly) announce our own write first.
    await new Promise((resolve) => setTimeout(resolve, 100));
    // An external writer replaces the file after our own save.
    const external = encodeState(sampleState(7));
    await writeFileAtomic(join(dir, 'state.json'), external, { mode: 0o600 });
    // The poller's timer is unref'd; a ref'd deadline keeps the loop alive while we wait.
    let deadline: NodeJS.Timeout | undefined;
    await Promise.race([arrived, new Promise((_, reject) => (deadline = setTimeout(() => reject(new Error('watch never reported the external write')), 10_000)))]);
    clearTimeout(deadline);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.state.sequence, 7);
    assert.notEqual(seen[0]!.revision, own);
    assert.equal(seen[0]!.revision, createHash('sha256').update(external).digest('hex'));
    // The announced revision is current, so saving on top of it succeeds.
    await store.save(sampleState(8), seen[0]!.revision);
    unsubscribe();
  }, 10);
});
