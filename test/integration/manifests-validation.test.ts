// The checks the manifest tests rely on really fail on broken manifests: schema errors, unknown
// fields, unknown kinds and every hardening rule.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Deployment, V1PodSpec } from '@kubernetes/client-node';
import { hardeningProblems } from '../helpers/manifests-hardening.js';
import { findObject, parseYamlStream, readKustomizationResources, validateObject, type K8sObject } from '../helpers/manifests-render.js';

// Read straight from the files so these tests run even without kubectl.
const caDeployment = (): K8sObject =>
  structuredClone(findObject(readKustomizationResources('manifests/base'), 'Deployment', 'rampart-ca'));
const podOf = (o: K8sObject): V1PodSpec => (o as unknown as V1Deployment).spec!.template.spec!;

test('validation: the unmodified CA Deployment is valid', () => {
  assert.deepEqual(validateObject(caDeployment()), []);
});

test('validation: a misspelled field deep in a pod template is reported with its path', () => {
  const d = caDeployment();
  const sc = podOf(d).containers[0]!.securityContext as Record<string, unknown>;
  sc.readOnlyRootFileSystem = sc.readOnlyRootFilesystem;
  delete sc.readOnlyRootFilesystem;
  const problems = validateObject(d);
  assert.equal(problems.length, 1, problems.join('\n'));
  assert.match(problems[0]!, /\.spec\.template\.spec\.containers\[0\]\.securityContext\.readOnlyRootFileSystem: unknown field/);
});

test('validation: a wrongly typed value fails the OpenAPI schema', () => {
  const d = caDeployment();
  (podOf(d).containers[0]!.ports![0]! as { containerPort: unknown }).containerPort = 'https';
  assert.match(validateObject(d).join('\n'), /schema: .*containerPort must be integer/);
  const noContainers = caDeployment();
  delete (podOf(noContainers) as Partial<V1PodSpec>).containers;
  assert.match(validateObject(noContainers).join('\n'), /schema: .*containers/);
});

test('validation: unknown kinds and versions are refused', () => {
  const d = caDeployment();
  assert.match(validateObject({ ...d, kind: 'Deploymnet' }).join('\n'), /unknown apiVersion\/kind/);
  assert.match(validateObject({ ...d, apiVersion: 'apps/v1beta9' }).join('\n'), /unknown apiVersion\/kind/);
  assert.match(
    validateObject({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } }).join('\n'),
    /unknown apiVersion\/kind/,
  );
});

test('validation: YAML streams with errors, or documents that are not objects, are refused', () => {
  assert.throws(() => parseYamlStream('kind: [unclosed', 'bad.yaml'), /bad.yaml: YAML error/);
  assert.throws(() => parseYamlStream('- a\n- b\n', 'list.yaml'), /not a mapping/);
  assert.throws(() => parseYamlStream('apiVersion: v1\nkind: ConfigMap\n', 'anon.yaml'), /without metadata.name/);
  assert.equal(parseYamlStream('---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n', 's').length, 1);
});

test('hardening: each weakening of the CA pod is caught', () => {
  assert.deepEqual(hardeningProblems(podOf(caDeployment()), 'ca'), []);
  const cases: [string, (p: V1PodSpec) => void, RegExp][] = [
    ['root', (p) => { p.containers[0]!.securityContext!.runAsUser = 0; }, /runAsUser is 0/],
    ['runAsNonRoot', (p) => { delete p.containers[0]!.securityContext!.runAsNonRoot; delete p.securityContext!.runAsNonRoot; }, /runAsNonRoot is not true/],
    ['writable root', (p) => { p.containers[0]!.securityContext!.readOnlyRootFilesystem = false; }, /readOnlyRootFilesystem/],
    ['escalation', (p) => { delete p.containers[0]!.securityContext!.allowPrivilegeEscalation; }, /allowPrivilegeEscalation/],
    ['caps kept', (p) => { p.containers[0]!.securityContext!.capabilities = { drop: ['NET_RAW'] }; }, /capabilities not dropped/],
    ['caps added', (p) => { p.containers[0]!.securityContext!.capabilities!.add = ['NET_ADMIN']; }, /adds capabilities/],
    ['privileged', (p) => { p.containers[0]!.securityContext!.privileged = true; }, /privileged/],
    ['seccomp', (p) => { delete p.containers[0]!.securityContext!.seccompProfile; delete p.securityContext!.seccompProfile; }, /seccomp/],
    ['no limits', (p) => { delete p.containers[0]!.resources!.limits; }, /no limits\.cpu/],
    ['host network', (p) => { p.hostNetwork = true; }, /host namespace/],
    ['hostPath', (p) => { p.volumes!.push({ name: 'h', hostPath: { path: '/' } }); }, /hostPath/],
    ['bad sidecar', (p) => { p.containers.push({ name: 'extra', image: 'busybox' }); }, /container extra: readOnlyRootFilesystem/],
  ];
  for (const [name, weaken, expected] of cases) {
    const pod = podOf(caDeployment());
    weaken(pod);
    assert.match(hardeningProblems(pod, 'ca').join('\n'), expected, name);
  }
});
