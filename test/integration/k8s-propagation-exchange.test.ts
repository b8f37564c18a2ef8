/** The sightings exchange against the API test server: stopping it does not wait for hung calls. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import pino from 'pino';
import { startKubeApiServer, type KubeApiServer } from '../helpers/kube-api-server/index.js';
import { waitFor } from '../helpers/kube-api-server/testing.js';
import { ConfigMapPropagationExchange } from '../../src/k8s/propagation-exchange.js';
import { systemClock } from '../../src/core/clock.js';

let api: KubeApiServer;

before(async () => {
  api = await startKubeApiServer();
  await api.kubeConfig().makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: 'rampart-system' } } });
});
after(async () => {
  await api.close();
});

test('stop() ends the round\'s hung calls at once, without a warning, instead of waiting out their timeouts', { timeout: 8_000 }, async () => {
  api.addToken('exchange-token', 'exchange-user');
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  const exchange = new ConfigMapPropagationExchange({
    core: api.kubeConfig('exchange-token').makeApiClient(k8s.CoreV1Api),
    namespace: 'rampart-system',
    replica: 'rampart-ca-a',
    clock: systemClock,
    logger,
    intervalMs: 100,
  });
  exchange.start(() => ({ replica: 'rampart-ca-a', updatedAt: Date.now(), agentsSeen: 0, behind: [], behindOmitted: 0 }));
  await waitFor('a round shared its sightings', async () => {
    const list = await api.kubeConfig().makeApiClient(k8s.CoreV1Api).listNamespacedConfigMap({ namespace: 'rampart-system' });
    return list.items.some((c) => c.metadata?.name === 'rampart-ca-agents-rampart-ca-a');
  });
  const stall = api.stall({ resource: 'configmaps', namespace: 'rampart-system', user: 'exchange-user' });
  try {
    await waitFor('a call of the next round held', () => stall.held >= 1);
    // Each call may take 10 s; resolving under the test's 8 s bound means it was ended.
    await exchange.stop();
  } finally {
    stall.release();
  }
  assert.deepEqual(lines.filter((l) => Number(l['level']) >= 40), [], 'stopping is not a failed exchange');
});
