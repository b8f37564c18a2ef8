/**
 * A CA replica started while another replica writes the CA state Secret. The runtime loads the
 * state, then starts the store's watch; a root activation landing between the two used to reach
 * neither, so the new replica served the old bundle and signed under the retiring root until the
 * next write (QA: still stale 12 s later; the next write may be a day away).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import pino from 'pino';
import { Registry } from 'prom-client';
import { startKubeApiServer, type KubeApiServer } from '../helpers/kube-api-server/index.js';
import { waitFor } from '../helpers/kube-api-server/testing.js';
import { KubernetesStateStore } from '../../src/store/kubernetes-store.js';
import { CaRuntime } from '../../src/runtime/ca-runtime.js';
import { createCaMetrics } from '../../src/observability/ca-metrics.js';
import { systemClock } from '../../src/core/clock.js';
import { DEFAULT_TTL_POLICY } from '../../src/core/ca/policy.js';
import { activateRoot, bootstrapState, DEFAULT_LIFETIMES, prepareRoot, recordLeafTtlCeiling } from '../../src/core/ca/rotation.js';
import type { StateStore, StoredState, UnreadableState } from '../../src/core/ports.js';

const NAMESPACE = 'rampart-system';
const TRUST_DOMAIN = 'cluster.local';
let api: KubeApiServer;

before(async () => {
  api = await startKubeApiServer();
  await api.kubeConfig().makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: NAMESPACE } } });
});
after(async () => {
  await api.close();
});

function kubeStore(): KubernetesStateStore {
  const kc = api.kubeConfig();
  return new KubernetesStateStore({ core: kc.makeApiClient(k8s.CoreV1Api), kubeConfig: kc, namespace: NAMESPACE, watchRetryMs: 50 });
}

/** The store the starting replica uses: `beforeWatch` runs when the runtime asks to watch, before the watch starts. */
function writeBeforeWatch(inner: StateStore, beforeWatch: () => Promise<void>): StateStore {
  return {
    load: () => inner.load(),
    save: (next, expected) => inner.save(next, expected),
    publishBundle: (pem) => inner.publishBundle(pem),
    close: () => inner.close(),
    watch(listener: (stored: StoredState | null) => void, onUnreadable?: (u: UnreadableState) => void) {
      let unwatch: (() => void) | undefined;
      let stopped = false;
      void beforeWatch().then(() => {
        if (!stopped) unwatch = inner.watch(listener, onUnreadable);
      });
      return () => {
        stopped = true;
        unwatch?.();
      };
    },
  };
}

test('a replica that starts during a root activation by another replica adopts it', async () => {
  const now = Date.now();
  const maxLeafTtlMs = DEFAULT_TTL_POLICY.maxTtlMs;
  // Replica A's state: one active root with the leaf ceiling recorded (so the new replica has
  // nothing of its own to write at start), and a prepared root waiting for activation.
  const a = kubeStore();
  const bootstrapped = recordLeafTtlCeiling(bootstrapState(TRUST_DOMAIN, now, DEFAULT_LIFETIMES), maxLeafTtlMs, now);
  const prepared = prepareRoot(bootstrapped, now, DEFAULT_LIFETIMES);
  const preparedRevision = await a.save(prepared, null);
  const activated = activateRoot(prepared, now, { propagation: { propagated: false, reason: 'test' }, force: true, maxLeafTtlMs });
  const newRoot = activated.roots.find((r) => r.phase === 'active');
  assert.ok(newRoot);

  const c = kubeStore();
  const runtime = new CaRuntime({
    store: writeBeforeWatch(c, async () => void (await a.save(activated, preparedRevision))),
    trustDomain: TRUST_DOMAIN,
    clock: systemClock,
    logger: pino({ level: 'silent' }),
    metrics: createCaMetrics(new Registry()),
    ttlPolicy: DEFAULT_TTL_POLICY,
    lifetimes: DEFAULT_LIFETIMES,
    bundleRefreshIntervalMs: 60_000,
    autoRotate: false,
    isLeader: () => false,
  });
  try {
    await runtime.start();
    await waitFor('the starting replica adopts the activation written before its watch began', () => runtime.state().sequence === activated.sequence, 3000);
    assert.equal(runtime.current().activeRootFingerprint, newRoot.fingerprint, 'it signs under the new root');
  } finally {
    await runtime.stop();
    await c.close();
    await a.close();
  }
});
