// manifests/base renders with kubectl kustomize into valid, hardened Kubernetes objects that
// run the CA as DESIGN.md sections 2 and 9 describe.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1ConfigMap, V1Deployment, V1PodDisruptionBudget, V1Service } from '@kubernetes/client-node';
import { hardeningProblems } from '../helpers/manifests-hardening.js';
import { findKubectl, findObject, kubectlMissing, renderKustomize, validateObject } from '../helpers/manifests-render.js';

const kubectl = findKubectl();
const skip = kubectl ? false : kubectlMissing;
const render = () => renderKustomize('manifests/base', kubectl!);

test('base: every rendered object is a known kind, valid against the Kubernetes schema', { skip }, () => {
  const objects = render();
  assert.deepEqual(
    objects.map((o) => `${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`).sort(),
    [
      'ClusterRole /rampart-ca',
      'ClusterRoleBinding /rampart-ca',
      'ConfigMap rampart-system/rampart-ca-config',
      'Deployment rampart-system/rampart-ca',
      'Namespace /rampart-system',
      'PodDisruptionBudget rampart-system/rampart-ca',
      'Role rampart-system/rampart-ca',
      'RoleBinding rampart-system/rampart-ca',
      'Service rampart-system/rampart-ca',
      'ServiceAccount rampart-system/rampart-ca',
    ],
  );
  assert.deepEqual(objects.flatMap(validateObject), []);
});

test('base: the CA Deployment runs `rampart ca` with the cluster flags, 2 replicas spread by host', { skip }, () => {
  const d = findObject(render(), 'Deployment', 'rampart-ca', 'rampart-system') as unknown as V1Deployment;
  assert.equal(d.spec?.replicas, 2);
  const pod = d.spec!.template.spec!;
  assert.equal(pod.serviceAccountName, 'rampart-ca');
  const [c, ...others] = pod.containers;
  assert.equal(others.length, 0);
  assert.equal(c!.image, 'ghcr.io/rampart/rampart:0.1.0');
  assert.deepEqual(c!.args, [
    'ca',
    '--store', 'kubernetes',
    '--listen', '0.0.0.0:8443',
    '--monitoring-listen', '0.0.0.0:9090',
    '--authn', 'kubernetes,svid',
    '--trust-domain', 'cluster.local',
    '--config', '/etc/rampart/config.json',
    '--workers', 'auto',
    '--warm-up-requests', '1000',
    '--serving-name', 'rampart-ca',
    '--serving-name', 'rampart-ca.rampart-system',
    '--serving-name', 'rampart-ca.rampart-system.svc',
    '--serving-name', 'rampart-ca.rampart-system.svc.cluster.local',
  ]);
  const env = Object.fromEntries((c!.env ?? []).map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath]));
  assert.equal(env.POD_NAMESPACE, 'metadata.namespace');
  assert.equal(env.POD_NAME, 'metadata.name');
  assert.equal(env.POD_UID, 'metadata.uid');

  const anti = pod.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [];
  assert.equal(anti.length, 1);
  assert.equal(anti[0]!.podAffinityTerm.topologyKey, 'kubernetes.io/hostname');
  assert.deepEqual(anti[0]!.podAffinityTerm.labelSelector?.matchLabels, d.spec!.selector.matchLabels);
  assert.deepEqual(
    { ...d.spec!.template.metadata?.labels, ...d.spec!.selector.matchLabels },
    d.spec!.template.metadata?.labels,
    'selector matches the pod template labels',
  );
});

test('base: the CA pod is hardened, with probes on the monitoring port and a writable /tmp only', { skip }, () => {
  const d = findObject(render(), 'Deployment', 'rampart-ca', 'rampart-system') as unknown as V1Deployment;
  const pod = d.spec!.template.spec!;
  assert.deepEqual(hardeningProblems(pod, 'rampart-ca'), []);
  const c = pod.containers[0]!;
  const monitoring = c.ports?.find((p) => p.name === 'monitoring');
  assert.equal(monitoring?.containerPort, 9090);
  assert.equal(c.ports?.find((p) => p.name === 'https')?.containerPort, 8443);
  for (const [probe, path] of [[c.readinessProbe, '/readyz'], [c.livenessProbe, '/healthz']] as const) {
    assert.equal(probe?.httpGet?.path, path);
    const port = probe?.httpGet?.port;
    assert.ok(port === 'monitoring' || port === 9090, `${path} probe on port ${String(port)}`);
  }
  const mounts = Object.fromEntries((c.volumeMounts ?? []).map((m) => [m.mountPath, m]));
  const volumes = Object.fromEntries((pod.volumes ?? []).map((v) => [v.name, v]));
  assert.ok(volumes[mounts['/tmp']!.name]?.emptyDir, '/tmp is an emptyDir');
  assert.equal(mounts['/etc/rampart']?.readOnly, true);
  assert.equal(volumes[mounts['/etc/rampart']!.name]?.configMap?.name, 'rampart-ca-config');
  // Only /tmp is writable: everything else mounted is read-only.
  for (const m of c.volumeMounts ?? []) {
    if (m.mountPath !== '/tmp') assert.equal(m.readOnly, true, `${m.mountPath} is read-only`);
  }
});

test('base: config.json names the rampart-admin identity; Service, PDB select the CA pods', { skip }, () => {
  const objects = render();
  const cm = findObject(objects, 'ConfigMap', 'rampart-ca-config', 'rampart-system') as unknown as V1ConfigMap;
  const config = JSON.parse(cm.data?.['config.json'] ?? 'null') as { admin?: { identities?: string[] } };
  assert.deepEqual(config.admin?.identities, ['spiffe://cluster.local/ns/rampart-system/sa/rampart-admin']);

  const d = findObject(objects, 'Deployment', 'rampart-ca', 'rampart-system') as unknown as V1Deployment;
  const podLabels = d.spec!.template.metadata!.labels!;
  const svc = findObject(objects, 'Service', 'rampart-ca', 'rampart-system') as unknown as V1Service;
  for (const [k, v] of Object.entries(svc.spec?.selector ?? {})) assert.equal(podLabels[k], v, `Service selector ${k}`);
  const ports = Object.fromEntries((svc.spec?.ports ?? []).map((p) => [p.name, p]));
  assert.equal(ports.https?.port, 443);
  assert.ok(ports.https?.targetPort === 8443 || ports.https?.targetPort === 'https');
  assert.equal(ports.monitoring?.port, 9090);
  const containerPorts = new Map(d.spec!.template.spec!.containers[0]!.ports!.map((p) => [p.name, p.containerPort]));
  for (const p of svc.spec?.ports ?? []) {
    const target = typeof p.targetPort === 'string' ? containerPorts.get(p.targetPort) : p.targetPort;
    assert.ok(target !== undefined && [...containerPorts.values()].includes(target), `Service port ${p.name} targets a container port`);
  }
  assert.equal(ports.https?.targetPort === 'https' ? containerPorts.get('https') : ports.https?.targetPort, 8443);

  const pdb = findObject(objects, 'PodDisruptionBudget', 'rampart-ca', 'rampart-system') as unknown as V1PodDisruptionBudget;
  assert.equal(pdb.spec?.minAvailable, 1);
  assert.deepEqual(pdb.spec?.selector?.matchLabels, d.spec!.selector.matchLabels);

  for (const o of objects) {
    const clusterScoped = ['Namespace', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind);
    assert.equal(o.metadata.namespace, clusterScoped ? undefined : 'rampart-system', `${o.kind} ${o.metadata.name} namespace`);
  }
});
