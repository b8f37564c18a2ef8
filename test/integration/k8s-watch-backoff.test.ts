/**
 * Watches during a Kubernetes API outage: the CA state Secret's watch (KubernetesStateStore) and
 * the list-watch loop behind the root-cert publisher. Both used to retry at a fixed pace (1 s in
 * production) and log a warning per attempt for as long as the outage lasted (QA: 33 lines in
 * 12 s); they now back off exponentially to a ceiling, warn once per outage, and start over at
 * the first delay once the watch is established again.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import pino from 'pino';
import { startKubeApiServer, type KubeApiServer } from '../helpers/kube-api-server/index.js';
import { waitFor } from '../helpers/kube-api-server/testing.js';
import { KubernetesStateStore } from '../../src/store/kubernetes-store.js';
import { startListWatch } from '../../src/k8s/list-watch.js';
import type { CaState, StoredState } from '../../src/core/ports.js';

const NAMESPACE = 'watch-backoff';
// Scaled down from production's 1 s doubling to 30 s.
const FIRST_MS = 100;
const MAX_MS = 1000;
const OUTAGE_MS = 3000;

type Line = { level: number; msg: string; retryInMs?: number };
const WARN = 40;
const DEBUG = 20;

let api: KubeApiServer;
before(async () => {
  api = await startKubeApiServer();
  await api.kubeConfig().makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: NAMESPACE } } });
});
after(async () => {
  await api.close();
});

function capture(): { logger: pino.Logger; lines: Line[] } {
  const lines: Line[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Line) });
  return { logger, lines };
}

function state(updatedAt: number): CaState {
  return { schemaVersion: 1, trustDomain: 'cluster.local', sequence: 0, nextGeneration: 1, roots: [], updatedAt };
}

const FAILURE_MESSAGES = new Set(['CA state watch dropped; re-establishing', 'cannot list the CA state Secret; retrying', 'watch dropped; re-establishing', 'list failed; retrying']);
const failures = (lines: Line[]): Line[] => lines.filter((l) => FAILURE_MESSAGES.has(l.msg));

test('during an API outage the watches back off and warn once; after it they start over', async () => {
  const kc = api.kubeConfig();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const writer = new KubernetesStateStore({ core, kubeConfig: kc, namespace: NAMESPACE });
  let rev = await writer.save(state(1), null);

  const storeLog = capture();
  const store = new KubernetesStateStore({ core, kubeConfig: kc, namespace: NAMESPACE, logger: storeLog.logger, watchRetryMs: FIRST_MS, watchRetryMaxMs: MAX_MS });
  const seen: Array<StoredState | null> = [];
  store.watch((s) => seen.push(s));

  const loopLog = capture();
  const namespacesSeen = new Set<string>();
  const loop = startListWatch<k8s.V1Namespace>({
    what: 'namespaces',
    kubeConfig: kc,
    path: '/api/v1/namespaces',
    list: () => core.listNamespace(),
    onSync: (items) => items.forEach((n) => namespacesSeen.add(n.metadata?.name ?? '')),
    onEvent: (_type, n) => namespacesSeen.add(n.metadata?.name ?? ''),
    retryMs: FIRST_MS,
    retryMaxMs: MAX_MS,
    logger: loopLog.logger,
  });
  try {
    await waitFor('both watches open', () => api.requests.filter((r) => r.verb === 'watch').length >= 2);

    await api.goDown();
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    await api.comeBack();
    rev = await writer.save(state(2), rev);
    await waitFor('the store sees the write after the outage', () => seen.some((s) => s?.state.updatedAt === 2), 2 * MAX_MS + 2000);
    await core.createNamespace({ body: { metadata: { name: 'after-outage' } } });
    await waitFor('the list-watch sees a namespace created after the outage', () => namespacesSeen.has('after-outage'), 2 * MAX_MS + 2000);

    for (const [what, lines] of [['state store', storeLog.lines], ['list-watch', loopLog.lines]] as const) {
      const failed = failures(lines);
      // At a fixed 100 ms this is about 30 attempts; doubling to 1 s (jitter takes up to half off)
      // leaves at most 9 in 3 s.
      assert.ok(failed.length >= 3 && failed.length <= 12, `${what}: ${failed.length} failed attempts in a ${OUTAGE_MS} ms outage`);
      assert.deepEqual(failed.filter((l) => l.level >= WARN).length, 1, `${what}: one warning per outage`);
      assert.ok(failed.slice(1).every((l) => l.level === DEBUG), `${what}: repeats are at debug`);
      const delays = failed.map((l) => l.retryInMs ?? 0);
      assert.ok(delays.every((d) => d >= FIRST_MS / 2 && d <= MAX_MS), `${what}: delays within bounds: ${delays.join(', ')}`);
      assert.ok((delays.at(-1) ?? 0) >= MAX_MS / 2, `${what}: delays grew to the ceiling: ${delays.join(', ')}`);
      assert.ok(lines.some((l) => l.msg.endsWith('re-established') && l.level === 30), `${what}: the recovery is logged`);
    }

    // A second outage is a new one: warned again, and its retries start from the first delay.
    const before = { store: failures(storeLog.lines).length, loop: failures(loopLog.lines).length };
    await api.goDown();
    await new Promise((r) => setTimeout(r, 300));
    await api.comeBack();
    for (const [what, lines, from] of [['state store', storeLog.lines, before.store], ['list-watch', loopLog.lines, before.loop]] as const) {
      const first = failures(lines)[from];
      assert.ok(first !== undefined, `${what}: the second outage was noticed`);
      assert.equal(first.level, WARN, `${what}: the second outage is warned about`);
      assert.ok((first.retryInMs ?? Infinity) <= FIRST_MS, `${what}: the backoff started over (${first.retryInMs} ms)`);
    }
  } finally {
    loop.stop();
    await store.close();
    await writer.close();
  }
});
