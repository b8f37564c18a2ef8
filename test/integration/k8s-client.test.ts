import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKubeApiServer, type KubeApiServer } from '../helpers/kube-api-server/index.js';
import { createKubeClients } from '../../src/k8s/client.js';
import { classifyKubeError } from '../../src/k8s/api-errors.js';
import { ConfigError } from '../../src/core/errors.js';

let api: KubeApiServer;
let dir: string;

before(async () => {
  api = await startKubeApiServer();
  dir = await mkdtemp(join(tmpdir(), 'rampart-k8s-client-'));
});
after(async () => {
  await api.close();
  await rm(dir, { recursive: true, force: true });
});

test('in-cluster: service-account token file, ca.crt and namespace from the mounted directory', async () => {
  const sa = join(dir, 'sa');
  await mkdir(sa);
  const token = await api.mintServiceAccountToken({ namespace: 'rampart-system', serviceAccount: 'rampart-ca' });
  await writeFile(join(sa, 'token'), token);
  await writeFile(join(sa, 'ca.crt'), api.caPem);
  await writeFile(join(sa, 'namespace'), 'rampart-system');
  const clients = createKubeClients({ kind: 'in-cluster', host: '127.0.0.1', port: api.port, serviceAccountDir: sa });
  assert.equal(clients.namespace, 'rampart-system');
  api.clearRequestLog();
  const list = await clients.core.listNamespace();
  assert.ok(list.items.some((n) => n.metadata?.name === 'default'));
  assert.equal(api.requests[0]?.user, 'system:serviceaccount:rampart-system:rampart-ca');
});

test('in-cluster without the mounted files or with a bad port is a ConfigError', () => {
  assert.throws(() => createKubeClients({ kind: 'in-cluster', host: '127.0.0.1', port: 443, serviceAccountDir: join(dir, 'missing') }), (e: unknown) => e instanceof ConfigError && e.code === 'RAMPART_ERR_CONFIG_INVALID');
  assert.throws(() => createKubeClients({ kind: 'in-cluster', host: '127.0.0.1', port: 'https', serviceAccountDir: join(dir, 'sa') }), ConfigError);
});

test('kubeconfig file: loads, honours an explicit context, refuses unknown ones and missing files', async () => {
  const path = await api.writeKubeconfig(join(dir, 'kubeconfig'));
  const clients = createKubeClients({ kind: 'kubeconfig', path });
  assert.equal(clients.namespace, 'default');
  const version = await clients.core.listNamespace();
  assert.ok(version.items.length >= 4);
  assert.throws(() => createKubeClients({ kind: 'kubeconfig', path, context: 'nope' }), ConfigError);
  assert.throws(() => createKubeClients({ kind: 'kubeconfig', path: join(dir, 'absent') }), ConfigError);
});

test('explicit KubeConfig, and errors are classified as transient or not', async () => {
  const clients = createKubeClients({ kind: 'explicit', kubeConfig: api.kubeConfig() });
  const notFound = await clients.core.readNamespace({ name: 'nope' }).catch((e: unknown) => e);
  assert.deepEqual({ ...classifyKubeError(notFound), summary: '' }, { httpStatus: 404, reason: 'NotFound', transient: false, summary: '' });
  api.injectFault({ verb: 'list', resource: 'namespaces', status: 503 });
  const unavailable = await clients.core.listNamespace().catch((e: unknown) => e);
  assert.equal(classifyKubeError(unavailable).transient, true);
  await api.goDown();
  try {
    const refused = classifyKubeError(await clients.core.listNamespace().catch((e: unknown) => e));
    assert.equal(refused.httpStatus, undefined);
    assert.equal(refused.transient, true);
  } finally {
    await api.comeBack();
  }
});
