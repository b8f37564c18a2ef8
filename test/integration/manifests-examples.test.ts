// manifests/examples: frontend -> backend in namespace shop through rampart-agent sidecars
// (DESIGN.md section 7), rendered with kubectl kustomize, schema-valid and hardened.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Container, V1Deployment, V1PodSpec, V1Service, V1ServiceAccount } from '@kubernetes/client-node';
import { hardeningProblems } from '../helpers/manifests-hardening.js';
import { findKubectl, findObject, kubectlMissing, renderKustomize, validateObject, type K8sObject } from '../helpers/manifests-render.js';

const kubectl = findKubectl();
const skip = kubectl ? false : kubectlMissing;
const render = () => renderKustomize('manifests/examples', kubectl!);
const spiffe = (ns: string, sa: string) => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;

const commonAgentArgs = [
  '--ca-url', 'https://rampart-ca.rampart-system.svc:443',
  '--ca-bundle', '/var/run/rampart/bundle/root-cert.pem',
  '--token-file', '/var/run/secrets/rampart/token',
  '--out-dir', '/var/run/rampart/certs',
  '--monitoring-listen', '0.0.0.0:15020',
];

function workload(objects: K8sObject[], name: string): { d: V1Deployment; pod: V1PodSpec; agent: V1Container } {
  const d = findObject(objects, 'Deployment', name, 'shop') as unknown as V1Deployment;
  const pod = d.spec!.template.spec!;
  const agent = pod.containers.find((c) => c.name === 'rampart-agent');
  assert.ok(agent, `${name} has a rampart-agent sidecar`);
  return { d, pod, agent };
}

/** Values of a repeatable flag, from an args list of the `--flag value` form. */
function flagValues(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag && args[i + 1] !== undefined ? [args[i + 1]!] : []));
}

test('examples: every rendered object is a known kind, valid against the Kubernetes schema', { skip }, () => {
  const objects = render();
  assert.deepEqual(
    objects.map((o) => `${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`).sort(),
    [
      'Deployment shop/backend',
      'Deployment shop/frontend',
      'Namespace /shop',
      'Service shop/backend',
      'Service shop/frontend',
      'ServiceAccount rampart-system/rampart-admin',
      'ServiceAccount shop/backend',
      'ServiceAccount shop/frontend',
    ],
  );
  assert.deepEqual(objects.flatMap(validateObject), []);
});

test('examples: both pods are hardened, with the agent ready on 15020 /readyz', { skip }, () => {
  const objects = render();
  for (const name of ['frontend', 'backend']) {
    const { d, pod, agent } = workload(objects, name);
    assert.deepEqual(hardeningProblems(pod, name), []);
    assert.equal(pod.containers.length, 2, `${name}: app + agent`);
    assert.equal(pod.serviceAccountName, name);
    assert.equal(pod.automountServiceAccountToken, false, `${name}: no API token in the pod`);
    assert.equal(agent.image, 'ghcr.io/rampart/rampart:0.1.0');
    assert.equal(agent.readinessProbe?.httpGet?.path, '/readyz');
    const port = agent.readinessProbe?.httpGet?.port;
    const named = agent.ports?.find((p) => p.name === port)?.containerPort;
    assert.equal(typeof port === 'number' ? port : named, 15020, `${name}: readiness on 15020`);
    assert.deepEqual(d.spec!.selector.matchLabels, { 'app.kubernetes.io/name': name });
    assert.equal(d.spec!.template.metadata?.labels?.['app.kubernetes.io/name'], name);
  }
});

test('examples: the agent gets an audience-bound token, the trust bundle and a certs emptyDir', { skip }, () => {
  const objects = render();
  for (const name of ['frontend', 'backend']) {
    const { pod, agent } = workload(objects, name);
    // The agent's bundle through its launcher: `rampart agent` flags, without the command word.
    assert.deepEqual(agent.command, ['/app/bin/agent-node', '/app/bin/rampart-agent.cjs'], `${name} agent command`);
    assert.deepEqual(agent.args?.slice(0, commonAgentArgs.length), commonAgentArgs, `${name} agent args`);
    const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
    const mountAt = (path: string) => {
      const m = agent.volumeMounts?.find((vm) => vm.mountPath === path);
      assert.ok(m, `${name}: agent mounts ${path}`);
      const v = volumes.get(m.name);
      assert.ok(v, `${name}: volume ${m.name} exists`);
      return { m, v };
    };
    const token = mountAt('/var/run/secrets/rampart');
    assert.equal(token.m.readOnly, true);
    const sources = token.v.projected?.sources ?? [];
    assert.equal(sources.length, 1);
    assert.deepEqual(sources[0]!.serviceAccountToken, { path: 'token', audience: 'rampart-ca', expirationSeconds: 3600 });

    const bundle = mountAt('/var/run/rampart/bundle');
    assert.equal(bundle.m.readOnly, true);
    assert.equal(bundle.v.configMap?.name, 'rampart-root-cert');
    assert.ok((bundle.v.configMap?.items ?? [{ key: 'root-cert.pem', path: 'root-cert.pem' }]).some(
      (i) => i.key === 'root-cert.pem' && i.path === 'root-cert.pem',
    ));

    const certs = mountAt('/var/run/rampart/certs');
    assert.ok(certs.v.emptyDir, `${name}: certs on an emptyDir`);
    assert.notEqual(certs.m.readOnly, true);
    // The app container sees none of the agent's secrets.
    const app = pod.containers.find((c) => c.name === name)!;
    assert.deepEqual(app.volumeMounts ?? [], [], `${name}: app mounts nothing`);
  }
});

test('examples: frontend reaches backend over mTLS and each side pins the other SPIFFE ID', { skip }, () => {
  const objects = render();
  const front = workload(objects, 'frontend').agent.args ?? [];
  const back = workload(objects, 'backend');
  const backArgs = back.agent.args ?? [];

  assert.deepEqual(flagValues(backArgs, '--inbound'), ['0.0.0.0:15006=127.0.0.1:8080']);
  assert.deepEqual(flagValues(backArgs, '--allow'), [spiffe('shop', 'frontend')]);
  assert.deepEqual(flagValues(backArgs, '--outbound'), []);
  assert.deepEqual(flagValues(front, '--outbound'), [`127.0.0.1:15001=backend.shop.svc:15006#${spiffe('shop', 'backend')}`]);
  assert.deepEqual(flagValues(front, '--inbound'), []);

  // The pinned IDs are the ones the CA derives from each pod's namespace and ServiceAccount.
  const identityOf = (name: string) => {
    const { d, pod } = workload(objects, name);
    const sa = findObject(objects, 'ServiceAccount', pod.serviceAccountName!, d.metadata!.namespace) as unknown as V1ServiceAccount;
    return spiffe(sa.metadata!.namespace!, sa.metadata!.name!);
  };
  assert.equal(flagValues(backArgs, '--allow')[0], identityOf('frontend'));
  assert.equal(flagValues(front, '--outbound')[0]?.split('#')[1], identityOf('backend'));

  // backend.shop.svc:15006 is a Service port that lands on the backend agent's inbound listener.
  const svc = findObject(objects, 'Service', 'backend', 'shop') as unknown as V1Service;
  const port = svc.spec?.ports?.find((p) => p.port === 15006);
  assert.ok(port, 'Service backend exposes 15006');
  const target = port.targetPort;
  const agentPort = back.agent.ports?.find((p) => p.name === target || p.containerPort === target);
  assert.equal(agentPort?.containerPort, 15006);
  for (const [k, v] of Object.entries(svc.spec?.selector ?? {})) {
    assert.equal(back.d.spec!.template.metadata?.labels?.[k], v);
  }
  // Plain HTTP to the app's port is not published: the Service carries only mTLS and monitoring.
  assert.ok(!(svc.spec?.ports ?? []).some((p) => p.port === 8080 || p.targetPort === 8080));
  const app = back.pod.containers.find((c) => c.name === 'backend')!;
  assert.ok((app.args ?? []).includes('-listen=127.0.0.1:8080'), 'backend app listens on loopback only');
});

test('examples: the rampart-admin ServiceAccount lives in rampart-system', { skip }, () => {
  const sa = findObject(render(), 'ServiceAccount', 'rampart-admin') as unknown as V1ServiceAccount;
  assert.equal(sa.metadata?.namespace, 'rampart-system');
  assert.equal(sa.automountServiceAccountToken, false);
});
