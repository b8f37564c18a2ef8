import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import pino from 'pino';
import { startKubeApiServer, type KubeApiServer } from '../helpers/kube-api-server/index.js';
import { waitFor } from '../helpers/kube-api-server/testing.js';
import { KubernetesStateStore } from '../../src/store/kubernetes-store.js';
import { ConflictError, StateError, isRampartError, type RampartError } from '../../src/core/errors.js';
import type { CaState, StoredState } from '../../src/core/ports.js';

let api: KubeApiServer;
const logger = pino({ level: 'silent' });
const stores: KubernetesStateStore[] = [];

before(async () => {
  api = await startKubeApiServer();
});
after(async () => {
  for (const s of stores) await s.close();
  await api.close();
});

async function freshNamespace(name: string): Promise<void> {
  await api.kubeConfig().makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name } } });
}

function store(namespace: string): KubernetesStateStore {
  const kc = api.kubeConfig();
  const s = new KubernetesStateStore({ core: kc.makeApiClient(k8s.CoreV1Api), kubeConfig: kc, namespace, logger, watchRetryMs: 50 });
  stores.push(s);
  return s;
}

function state(updatedAt: number): CaState {
  return { schemaVersion: 1, trustDomain: 'cluster.local', sequence: 0, nextGeneration: 1, roots: [], updatedAt };
}

test('load is null before the first save; save creates the Secret and load reads it back', async () => {
  await freshNamespace('store-basic');
  const s = store('store-basic');
  assert.equal(await s.load(), null);
  const rev = await s.save(state(1), null);
  const loaded = await s.load();
  assert.deepEqual(loaded, { state: state(1), revision: rev });
  const secret = await api.kubeConfig().makeApiClient(k8s.CoreV1Api).readNamespacedSecret({ name: 'rampart-ca', namespace: 'store-basic' });
  assert.deepEqual(JSON.parse(Buffer.from(secret.data?.['state.json'] ?? '', 'base64').toString()), state(1));
  await assert.rejects(s.save(state(2), null), (e: unknown) => e instanceof ConflictError && e.code === 'RAMPART_ERR_STATE_CONFLICT');
});

test('two replicas racing from the same revision: exactly one wins, the other gets STATE_CONFLICT', async () => {
  await freshNamespace('store-race');
  const a = store('store-race');
  const b = store('store-race');
  const base = await a.save(state(1), null);
  const results = await Promise.allSettled([a.save(state(10), base), b.save(state(20), base)]);
  const won = results.filter((r) => r.status === 'fulfilled');
  const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  assert.equal(won.length, 1);
  assert.equal(lost.length, 1);
  assert.equal((lost[0]?.reason as RampartError).code, 'RAMPART_ERR_STATE_CONFLICT');
  const winner = results[0]?.status === 'fulfilled' ? 10 : 20;
  assert.equal((await b.load())?.state.updatedAt, winner);
});

test('watch delivers writes by the other replica, not our own, and survives dropped watches and an outage', async () => {
  await freshNamespace('store-watch');
  const a = store('store-watch');
  const b = store('store-watch');
  let rev = await a.save(state(1), null);
  const seenByB: Array<StoredState | null> = [];
  const seenByA: Array<StoredState | null> = [];
  b.watch((s) => seenByB.push(s));
  a.watch((s) => seenByA.push(s));
  // Let both watches establish (their list shows up in the request log).
  await waitFor('both watches open', () => api.requests.filter((r) => r.verb === 'watch' && r.namespace === 'store-watch').length >= 2);
  rev = await a.save(state(2), rev);
  await waitFor('B sees A\'s write', () => seenByB.some((s) => s?.state.updatedAt === 2));
  assert.equal(seenByB.at(-1)?.revision, rev);

  api.closeWatches(); // server-side watch timeout
  rev = await a.save(state(3), rev);
  await waitFor('B sees the write made while its watch was down', () => seenByB.some((s) => s?.state.updatedAt === 3));

  await api.goDown();
  await assert.rejects(a.load(), (e: unknown) => (e as RampartError).code === 'RAMPART_ERR_NOT_READY');
  await api.comeBack();
  rev = await a.save(state(4), rev);
  await waitFor('B sees the write after the outage', () => seenByB.some((s) => s?.state.updatedAt === 4), 8000);
  assert.deepEqual(seenByA, [], 'a replica is not told about its own writes');
  assert.deepEqual(seenByB.map((s) => s?.state.updatedAt), [2, 3, 4]);
});

test('a pre-created empty Secret (shipped so RBAC can name it) is filled by the first save', async () => {
  await freshNamespace('store-precreated');
  const core = api.kubeConfig().makeApiClient(k8s.CoreV1Api);
  await core.createNamespacedSecret({ namespace: 'store-precreated', body: { metadata: { name: 'rampart-ca', labels: { team: 'sec' } } } });
  const s = store('store-precreated');
  assert.equal(await s.load(), null);
  const rev = await s.save(state(5), null);
  assert.equal((await s.load())?.revision, rev);
  assert.equal((await core.readNamespacedSecret({ name: 'rampart-ca', namespace: 'store-precreated' })).metadata?.labels?.['team'], 'sec');
});

test('a Secret with invalid state is a STATE_CORRUPT error, never silently replaced', async () => {
  await freshNamespace('store-corrupt');
  const core = api.kubeConfig().makeApiClient(k8s.CoreV1Api);
  await core.createNamespacedSecret({ namespace: 'store-corrupt', body: { metadata: { name: 'rampart-ca' }, stringData: { 'state.json': '{"schemaVersion": 1' } } });
  await assert.rejects(store('store-corrupt').load(), (e: unknown) => e instanceof StateError && e.code === 'RAMPART_ERR_STATE_CORRUPT');
});

// A replica loads the state, then starts its watch; the watch's first list used to only note
// where to resume, so a write landing between the two was never delivered (QA: a replica started
// during a root activation kept signing under the old root until the next write).
test('watch delivers a write made between load() and watch(), and only that one', async () => {
  await freshNamespace('store-catch-up');
  const a = store('store-catch-up');
  const b = store('store-catch-up');
  const rev1 = await a.save(state(1), null);
  assert.equal((await b.load())?.revision, rev1);
  const rev2 = await a.save(state(2), rev1);
  const seenByB: Array<StoredState | null> = [];
  b.watch((s) => seenByB.push(s));
  await waitFor('B catches up with the write it missed', () => seenByB.length > 0);
  assert.deepEqual(seenByB, [{ state: state(2), revision: rev2 }]);

  // Nothing written since the load: the first list delivers nothing.
  const c = store('store-catch-up');
  await c.load();
  const seenByC: Array<StoredState | null> = [];
  c.watch((s) => seenByC.push(s));
  await waitFor('C\'s watch open', () => api.requests.filter((r) => r.verb === 'watch' && r.namespace === 'store-catch-up').length >= 2);
  const rev3 = await a.save(state(3), rev2);
  await waitFor('C sees the next write', () => seenByC.length > 0);
  assert.deepEqual(seenByC, [{ state: state(3), revision: rev3 }]);
});

test('watch reports a state deleted between load() and watch() as gone', async () => {
  await freshNamespace('store-catch-up-gone');
  const a = store('store-catch-up-gone');
  await a.save(state(1), null);
  const b = store('store-catch-up-gone');
  assert.notEqual(await b.load(), null);
  await api.kubeConfig().makeApiClient(k8s.CoreV1Api).deleteNamespacedSecret({ name: 'rampart-ca', namespace: 'store-catch-up-gone' });
  const seenByB: Array<StoredState | null> = [];
  b.watch((s) => seenByB.push(s));
  await waitFor('B learns the state is gone', () => seenByB.length > 0);
  assert.deepEqual(seenByB, [null]);
});

test('a Secret write or read the API server never answers fails as unreachable after the call timeout, and the next one works', { timeout: 30_000 }, async () => {
  await freshNamespace('store-stall');
  const kc = api.kubeConfig();
  const s = new KubernetesStateStore({ core: kc.makeApiClient(k8s.CoreV1Api), kubeConfig: kc, namespace: 'store-stall', logger, callTimeoutMs: 500 });
  stores.push(s);
  const first = await s.save(state(1), null);
  const stall = api.stall({ resource: 'secrets', namespace: 'store-stall' });
  try {
    for (const call of [() => s.save(state(2), first), () => s.load()]) {
      await assert.rejects(call(), (err: unknown) => {
        assert.ok(isRampartError(err), String(err));
        assert.equal(err.code, 'RAMPART_ERR_NOT_READY');
        assert.match(err.message, /cannot reach the Kubernetes API server at .* \(no answer in time\)/);
        return true;
      });
    }
    assert.ok(stall.held >= 2, `the stalled calls reached the server (${stall.held})`);
  } finally {
    stall.release();
  }
  assert.equal((await s.load())?.revision, first, 'the held write was dropped, not applied');
});
