/**
 * A `--store kubernetes` CA's log lines each carry one `component`. The Kubernetes wiring got a
 * logger already named `kubernetes` and named its parts again, so lines read
 * `"component":"kubernetes","component":"leader-election"`: JSON.parse keeps the last, others
 * may keep the first.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { startKubeApiServer, type KubeApiServer } from '../helpers/kube-api-server/index.js';
import { waitFor } from '../helpers/kube-api-server/testing.js';
import { startTestCa, type TestCa } from '../helpers/ca.js';
import { duplicateKeys } from '../helpers/json-keys.js';

let api: KubeApiServer | undefined;
let ca: TestCa | undefined;
const dir = mkdtempSync(join(tmpdir(), 'rampart-log-components-'));

after(async () => {
  await ca?.close();
  await api?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('the duplicate-key check finds a repeated key and passes nested repeats in other objects', () => {
  assert.deepEqual(duplicateKeys('{"component":"kubernetes","component":"leader-election","msg":"x"}'), ['component']);
  assert.deepEqual(duplicateKeys('{"a":{"b":1},"c":{"b":2},"s":"\\"a\\":1,\\"a\\":2"}'), []);
});

test('every log line of a Kubernetes-store CA has one component and no other repeated key', async () => {
  api = await startKubeApiServer();
  await api.kubeConfig().makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: 'rampart-system' } } });
  const kubeconfig = await api.writeKubeconfig(join(dir, 'kubeconfig'));
  ca = await startTestCa({ store: 'kubernetes', kubeconfig, authn: 'kubernetes' });
  const lines = ca.logLines;
  const componentOf = (msg: string) => waitFor(`a "${msg}" line`, () => lines.find((l) => (JSON.parse(l) as { msg?: string }).msg === msg), 15_000);
  assert.equal(JSON.parse(await componentOf('became leader')).component, 'leader-election');
  assert.match(await componentOf('this replica leads: running rotations and publishing root-cert ConfigMaps'), /"component":"kubernetes"/);
  const offenders = lines.filter((l) => duplicateKeys(l).length > 0);
  assert.deepEqual(offenders, [], 'lines with a repeated key');
});
