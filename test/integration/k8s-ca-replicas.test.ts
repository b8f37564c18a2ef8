/**
 * The CA on Kubernetes end to end: two `rampart ca --store kubernetes` processes share one API
 * test server through the real @kubernetes/client-node. Shared root via the Secret, TokenReview
 * authentication (cache, outage, scale), one Lease holder, root-cert ConfigMaps, racing
 * `prepare`, leader death by SIGKILL, and the RBAC of manifests/base against every API call the
 * replicas made. Figures are printed (TokenReviews per 1,000 issuances, failover time), not
 * asserted against wall-clock limits.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { Agent } from 'node:https';
import { createKeyAndCsr } from '../../src/agent/csr.js';
import { waitFor } from '../helpers/kube-api-server/testing.js';
import { describe as describeAttrs, isAllowed, rbacGrants, requestAttributes } from '../helpers/manifests-rbac.js';
import {
  CA_NAMESPACE,
  CA_USER,
  call,
  issue,
  keepAliveAgent,
  startCaCluster,
  type CaCluster,
  type Replica,
} from '../helpers/k8s-ca.js';

const TD = 'cluster.local';
let cluster: CaCluster;
let a: Replica;
let b: Replica;
let bundlePem: string;
const agents: Agent[] = [];
const csrs = Array.from({ length: 4 }, () => createKeyAndCsr().csrPem);

function pool(): Agent {
  const agent = keepAliveAgent(bundlePem);
  agents.push(agent);
  return agent;
}

function fingerprints(pem: string): string[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((p) => new X509Certificate(p).fingerprint256).sort();
}

/** The leaf chains to a root of `roots` through the intermediate, with the expected URI SAN. */
function assertChain(chain: string[], roots: string, spiffeId: string): void {
  const [leafPem, interPem] = chain;
  assert.ok(leafPem && interPem, 'leaf and intermediate');
  const leaf = new X509Certificate(leafPem);
  const inter = new X509Certificate(interPem);
  assert.equal(leaf.subjectAltName, `URI:${spiffeId}`);
  assert.ok(leaf.verify(inter.publicKey), 'leaf signed by the intermediate');
  const anchors = (roots.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((p) => new X509Certificate(p));
  assert.ok(anchors.some((r) => inter.checkIssued(r) && inter.verify(r.publicKey)), 'intermediate signed by a bundle root');
}

function byName(name: string | undefined): Replica {
  const r = cluster.replicas.find((x) => x.name === name);
  assert.ok(r, `replica ${name}`);
  return r;
}

before(async () => {
  const t0 = performance.now();
  cluster = await startCaCluster();
  // Both start at once against an empty namespace: they race to create the Secret.
  [a, b] = await Promise.all([cluster.spawnReplica('rampart-ca-a'), cluster.spawnReplica('rampart-ca-b')]);
  bundlePem = await a.bootstrapBundlePem();
  console.log(`# API server and two CA processes up in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
});

after(async () => {
  for (const agent of agents) agent.destroy();
  await cluster?.close();
});

test('two replicas share one root from the Secret, both issue via TokenReview, exactly one holds the Lease', async () => {
  // TLS to both is verified against A's bundle: B serves a certificate from the same root.
  const [ja, jb] = await Promise.all([a, b].map((r) => call(`${r.apiUrl}/v1/trust-bundle`, { ca: bundlePem })));
  assert.equal(ja?.status, 200);
  assert.equal(jb?.status, 200);
  const fa = ja?.body.roots.map((r: { fingerprint: string }) => r.fingerprint);
  const fb = jb?.body.roots.map((r: { fingerprint: string }) => r.fingerprint);
  assert.equal(fa.length, 1);
  assert.deepEqual(fa, fb, 'same bundle fingerprints from both replicas');
  assert.equal(ja?.body.sequence, jb?.body.sequence);
  const state = await cluster.secretState();
  assert.deepEqual(state.roots.map((r) => r.fingerprint), fa, 'the Secret holds that root');
  const created = cluster.replicas.flatMap((r) => r.logs.filter((l) => l.event === 'root-created').map(() => r.name));
  assert.equal(created.length, 1, `exactly one replica created the root (${created.join(', ')})`);

  const reviewsBefore = cluster.api.tokenReviews.total;
  const token = await cluster.token('shop', 'web');
  for (const r of [a, b]) {
    const res = await issue(r.apiUrl, { ca: bundlePem }, token, csrs[0] as string);
    assert.equal(res.status, 200, `${r.name}: ${res.text}`);
    assert.equal(res.body.spiffeId, `spiffe://${TD}/ns/shop/sa/web`);
    assertChain(res.body.certChain, bundlePem, res.body.spiffeId);
    assert.deepEqual(fingerprints(res.body.trustBundle.join('\n')), fingerprints(bundlePem));
  }
  // Each replica reviewed the token itself (the cache is per replica).
  assert.equal(cluster.api.tokenReviews.total - reviewsBefore, 2);
  const reviewers = cluster.api.requests.filter((q) => q.resource === 'tokenreviews' && q.verb === 'create');
  assert.ok(reviewers.length >= 2 && reviewers.every((q) => q.user === CA_USER && q.status === 201));

  // A token from another audience or a forged one is refused by TokenReview: 401.
  const wrongAudience = await cluster.api.mintServiceAccountToken({ namespace: 'shop', serviceAccount: 'web' });
  const refused = await issue(a.apiUrl, { ca: bundlePem }, wrongAudience, csrs[0] as string);
  assert.equal(refused.status, 401, refused.text);
  assert.ok(!refused.text.includes(wrongAudience));

  const holder = await waitFor('a Lease holder', async () => (await cluster.leaseHolder()) || undefined, 30_000);
  assert.ok(holder === a.name || holder === b.name, `holder ${holder}`);
  await waitFor('the holder to log its election', () => byName(holder).logs.some((l) => l.msg === 'became leader'), 10_000);
  const leaders = cluster.replicas.filter((r) => r.logs.some((l) => l.msg === 'became leader'));
  assert.deepEqual(leaders.map((r) => r.name), [holder], 'exactly one replica ever led');
  console.log(`# lease holder: ${holder}; root ${String(fa[0]).slice(0, 16)} created by ${created[0]}`);
});

test('root-cert ConfigMaps: in every namespace, created for new namespaces, recreated when deleted', async () => {
  const everywhere = async (pem: string): Promise<boolean> => {
    const found = await Promise.all((await cluster.activeNamespaces()).map((ns) => cluster.rootCertIn(ns)));
    return found.every((f) => f === pem);
  };
  await waitFor('rampart-root-cert equal to the bundle in every namespace', () => everywhere(bundlePem), 30_000);
  // The published bundle is a working trust anchor, as the agent uses it.
  const fromCm = (await cluster.rootCertIn('shop')) as string;
  assert.equal((await call(`${b.apiUrl}/v1/trust-bundle?format=pem`, { ca: fromCm })).text, bundlePem);

  await cluster.admin.core.createNamespace({ body: { metadata: { name: 'team-new' } } });
  await waitFor('ConfigMap in the new namespace', async () => (await cluster.rootCertIn('team-new')) === bundlePem, 30_000);

  await cluster.admin.core.deleteNamespacedConfigMap({ name: 'rampart-root-cert', namespace: 'shop' });
  await waitFor('ConfigMap recreated after delete', async () => (await cluster.rootCertIn('shop')) === bundlePem, 30_000);
});

test('racing prepare on both replicas yields exactly one new root; the loser answers 409 or succeeds idempotently', async () => {
  const adminToken = await cluster.token(CA_NAMESPACE, 'rampart-admin');
  const nonAdmin = await issue(a.apiUrl, { ca: bundlePem }, await cluster.token('shop', 'web'), csrs[0] as string);
  assert.equal(nonAdmin.status, 200);
  const refused = await call(`${a.apiUrl}/v1/admin/roots/prepare`, { ca: bundlePem, token: await cluster.token('shop', 'web'), body: {} });
  assert.equal(refused.status, 403, 'a workload is not an admin');

  const before = await cluster.secretState();
  const conflictsBefore = cluster.api.requests.filter((q) => q.resource === 'secrets' && q.verb === 'update' && q.status === 409).length;
  const results = await Promise.all([a, b].map((r) => call(`${r.apiUrl}/v1/admin/roots/prepare`, { ca: bundlePem, token: adminToken, body: {} })));
  const statuses = results.map((r) => r.status);
  console.log(`# racing prepare: A ${statuses[0]} ${results[0]?.body?.error?.code ?? ''}, B ${statuses[1]} ${results[1]?.body?.error?.code ?? ''}; Secret CAS conflicts seen by the API server: ${cluster.api.requests.filter((q) => q.resource === 'secrets' && q.verb === 'update' && q.status === 409).length - conflictsBefore}`);
  assert.ok(statuses.includes(200), `one prepare succeeds: ${results.map((r) => r.text).join(' | ')}`);
  for (const r of results) {
    if (r.status !== 200) {
      assert.equal(r.status, 409, r.text);
      assert.match(String(r.body?.error?.code), /^RAMPART_ERR_(ROTATION_NOT_ALLOWED|STATE_CONFLICT)$/);
    }
  }

  const after = await cluster.secretState();
  assert.equal(after.roots.filter((r) => r.phase === 'prepared').length, 1, 'exactly one prepared root');
  assert.equal(after.roots.length, before.roots.length + 1);
  assert.equal(after.sequence, before.sequence + 1, 'one bundle change, not two');
  assert.deepEqual(after.roots.filter((r) => r.phase === 'active').map((r) => r.fingerprint), before.roots.map((r) => r.fingerprint));

  // Both replicas converge on the two-root bundle; the leader republishes the ConfigMaps.
  const expected = after.roots.map((r) => r.fingerprint).sort();
  for (const r of [a, b]) {
    await waitFor(`${r.name} serves the new bundle`, async () => {
      const j = await call(`${r.apiUrl}/v1/trust-bundle`, { ca: bundlePem });
      return j.body.sequence === after.sequence && JSON.stringify(j.body.roots.map((x: { fingerprint: string }) => x.fingerprint).sort()) === JSON.stringify(expected);
    }, 30_000);
  }
  const newPem = (await call(`${a.apiUrl}/v1/trust-bundle?format=pem`, { ca: bundlePem })).text;
  assert.equal(fingerprints(newPem).length, 2);
  await waitFor('ConfigMaps updated to the new bundle everywhere', async () => {
    const found = await Promise.all((await cluster.activeNamespaces()).map((ns) => cluster.rootCertIn(ns)));
    return found.every((f) => f === newPem);
  }, 30_000);
  bundlePem = newPem;
});

test('API server outage: cached tokens keep working, new tokens get 503, recovery without restart', async () => {
  const cached = await cluster.token('shop', 'cached');
  const fresh = await cluster.token('shop', 'fresh');
  const warm = await issue(a.apiUrl, { ca: bundlePem }, cached, csrs[1] as string);
  assert.equal(warm.status, 200, warm.text);

  await cluster.api.goDown();
  try {
    const during = await issue(a.apiUrl, { ca: bundlePem }, cached, csrs[1] as string);
    assert.equal(during.status, 200, `cached identity during the outage: ${during.text}`);
    assert.equal(during.body.spiffeId, `spiffe://${TD}/ns/shop/sa/cached`);
    const refused = await issue(a.apiUrl, { ca: bundlePem }, fresh, csrs[1] as string);
    assert.equal(refused.status, 503, refused.text);
    assert.equal(refused.body.error?.code, 'RAMPART_ERR_AUTHN_BACKEND_UNAVAILABLE');
    assert.ok(refused.headers['retry-after'], 'Retry-After on 503');
    // The bundle is still served from memory.
    assert.equal((await call(`${b.apiUrl}/v1/trust-bundle?format=pem`, { ca: bundlePem })).status, 200);
  } finally {
    await cluster.api.comeBack();
  }
  let attempts = 0;
  const ok = await waitFor('a new token to work after the API server is back', async () => {
    attempts += 1;
    const res = await issue(a.apiUrl, { ca: bundlePem }, fresh, csrs[1] as string);
    return res.status === 200 ? res : undefined;
  }, 30_000);
  assert.equal(ok.body.spiffeId, `spiffe://${TD}/ns/shop/sa/fresh`);
  console.log(`# after comeBack a new token worked on attempt ${attempts}`);
  for (const r of [a, b]) assert.ok(r.alive(), `${r.name} survived the outage`);
});

/**
 * 1,000 issuances from 100 identities (10 each, interleaved so the first round brings 100 new
 * tokens at once), 16 at a time over one keep-alive pool. Returns how many failed, with reasons.
 */
async function issueAtScale(replica: Replica, agent: Agent, tokens: readonly string[], perIdentity: number): Promise<{ failures: string[]; seconds: number }> {
  const jobs = Array.from({ length: perIdentity }, (_, k) => tokens.map((token, i) => ({ token, i, k }))).flat();
  let next = 0;
  const failures: string[] = [];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < jobs.length) {
        const job = jobs[next++] as (typeof jobs)[number];
        const res = await issue(replica.apiUrl, { agent }, job.token, csrs[job.k % csrs.length] as string);
        if (res.status !== 200 || res.body.spiffeId !== `spiffe://${TD}/ns/load/sa/sa-${String(job.i).padStart(3, '0')}`) failures.push(`${job.i}/${job.k}: ${res.status} ${res.text.slice(0, 200)}`);
      }
    }),
  );
  return { failures, seconds: (performance.now() - started) / 1000 };
}

// The leader's death and TokenReview at scale share one test: the 1,000 issuances run on the
// survivor while the Lease is unowned, which both proves issuance does not depend on the leader
// and keeps the file's run time down (the takeover waits out a 15 s lease).
test('leader failover under load: SIGKILL the leader; the survivor takes the Lease and issues 1,000 certificates to 100 identities meanwhile with 100 TokenReviews', async () => {
  const holder = await cluster.leaseHolder();
  const leader = byName(holder);
  const survivor = leader === a ? b : a;
  const agent = pool();
  const cachedToken = await cluster.token('shop', 'during-failover');
  const identities = 100;
  const tokens = await Promise.all(Array.from({ length: identities }, (_, i) => cluster.token('load', `sa-${String(i).padStart(3, '0')}`)));
  const warm = await issue(survivor.apiUrl, { agent }, cachedToken, csrs[2] as string);
  assert.equal(warm.status, 200, warm.text);

  let issuing = true;
  const outcomes: Array<{ at: number; status: number; fresh: boolean }> = [];
  // A steady trickle that outlasts the takeover; every fifth request uses a never-seen token.
  const trickle = (async () => {
    let n = 0;
    while (issuing) {
      const fresh = n % 5 === 4;
      const token = fresh ? await cluster.token('shop', `failover-${n}`) : cachedToken;
      const res = await issue(survivor.apiUrl, { agent }, token, csrs[n % csrs.length] as string);
      outcomes.push({ at: performance.now(), status: res.status, fresh });
      n += 1;
      await new Promise((r) => setTimeout(r, 25));
    }
  })();

  const lease = await cluster.admin.coordination.readNamespacedLease({ name: 'rampart-ca-leader', namespace: CA_NAMESPACE });
  const leaseSeconds = lease.spec?.leaseDurationSeconds ?? 0;
  const reviewsBefore = cluster.api.tokenReviews.total;
  const callsBefore = cluster.api.requests.filter((q) => q.user === CA_USER).length;
  const killedAt = performance.now();
  const killedWall = Date.now();
  leader.kill('SIGKILL');
  const load = issueAtScale(survivor, pool(), tokens, 10);
  // The Deployment replaces the dead pod meanwhile; it joins as a follower of the same CA.
  const replacement = cluster.spawnReplica('rampart-ca-c');
  replacement.catch(() => undefined);
  await leader.exited;
  let takenAt = 0;
  let scale: Awaited<typeof load>;
  try {
    await waitFor('the survivor to hold the Lease', async () => {
      if ((await cluster.leaseHolder()) !== survivor.name) return false;
      takenAt = performance.now();
      return true;
    }, 90_000);
    await waitFor('the survivor to log its election', () => survivor.logs.some((l) => l.msg === 'became leader'), 10_000);
  } finally {
    scale = await load;
    issuing = false;
    await trickle;
  }
  const after = await cluster.admin.coordination.readNamespacedLease({ name: 'rampart-ca-leader', namespace: CA_NAMESPACE });
  const lastRenewByDead = Date.parse(String(lease.spec?.renewTime));
  const failoverMs = takenAt - killedAt;
  const failures = outcomes.filter((o) => o.status !== 200);
  const window = outcomes.filter((o) => o.at >= killedAt && o.at <= takenAt);
  const freshReviews = outcomes.filter((o) => o.fresh).length;
  const reviews = cluster.api.tokenReviews.total - reviewsBefore - freshReviews;
  const calls = cluster.api.requests.filter((q) => q.user === CA_USER).length - callsBefore;
  console.log(
    `# failover: leader ${leader.name} SIGKILLed; ${survivor.name} took the Lease ${(failoverMs / 1000).toFixed(2)} s later ` +
      `(lease duration ${leaseSeconds} s, retry period 2 s; the dead leader's last renewal was ${((killedWall - lastRenewByDead) / 1000).toFixed(2)} s before the kill; transitions ${after.spec?.leaseTransitions}); ` +
      `trickle: ${outcomes.length} issuances by the survivor (${window.length} between kill and takeover, ${freshReviews} with new tokens), ${failures.length} failed`,
  );
  console.log(
    `# scale: 1000 issuances from ${identities} identities on ${survivor.name} in ${scale.seconds.toFixed(2)} s (${(1000 / scale.seconds).toFixed(0)}/s) ` +
      `-> ${reviews} TokenReviews per 1,000 issuances; ${calls} API-server calls in total by the CA meanwhile (reviews of both workloads, Lease, ConfigMaps)`,
  );
  assert.deepEqual(failures, [], 'the survivor never failed an issuance');
  assert.deepEqual(scale.failures.slice(0, 5), [], 'every issuance at scale succeeded');
  assert.equal(reviews, identities, 'one TokenReview per identity (positive cache and shared in-flight reviews)');
  assert.ok(window.length > 0, 'issuances happened between the kill and the takeover');
  assert.ok((after.spec?.leaseTransitions ?? 0) >= 1);

  const c = await replacement;
  const [jc, js] = await Promise.all([c, survivor].map((r) => call(`${r.apiUrl}/v1/trust-bundle`, { ca: bundlePem })));
  assert.equal(jc?.status, 200);
  assert.deepEqual(jc?.body.roots, js?.body.roots, 'the replacement loads the same roots from the Secret');
  const fromC = await issue(c.apiUrl, { ca: bundlePem }, tokens[0] as string, csrs[0] as string);
  assert.equal(fromC.status, 200, fromC.text);
  assertChain(fromC.body.certChain, bundlePem, `spiffe://${TD}/ns/load/sa/sa-000`);
  assert.equal(await cluster.leaseHolder(), survivor.name, 'the survivor still leads');
  assert.ok(!c.logs.some((l) => l.msg === 'became leader' || l.event === 'root-created'), 'the replacement neither leads nor creates a root');

  // The new leader publishes: repairs a deleted ConfigMap and serves a new namespace.
  await cluster.admin.core.deleteNamespacedConfigMap({ name: 'rampart-root-cert', namespace: 'shop' });
  await cluster.admin.core.createNamespace({ body: { metadata: { name: 'after-failover' } } });
  await waitFor('the new leader recreates the deleted ConfigMap', async () => (await cluster.rootCertIn('shop')) === bundlePem, 30_000);
  await waitFor('the new leader publishes into a new namespace', async () => (await cluster.rootCertIn('after-failover')) === bundlePem, 30_000);
});

test('RBAC of manifests/base allows every API call the replicas made (unused grants reported)', () => {
  const grants = rbacGrants();
  const calls = cluster.api.requests.filter((q) => q.user === CA_USER && (q.path.startsWith('/api/') || q.path.startsWith('/apis/')));
  assert.ok(calls.length > 0);
  const denied = new Set<string>();
  const used = new Map<string, Set<string>>();
  for (const q of calls) {
    const qs = new URLSearchParams(q.query as Record<string, string>).toString();
    const attrs = requestAttributes(q.method, `${q.path}${qs ? `?${qs}` : ''}`);
    if (!isAllowed(grants, attrs)) denied.add(describeAttrs(attrs));
    for (const g of grants) {
      if (isAllowed([g], attrs)) {
        const key = `${g.role} ${g.apiGroup || 'core'}/${g.resource}`;
        if (!used.has(key)) used.set(key, new Set());
        used.get(key)?.add(attrs.verb);
      }
    }
  }
  const unused: string[] = [];
  for (const g of grants) {
    const key = `${g.role} ${g.apiGroup || 'core'}/${g.resource}`;
    for (const v of g.verbs) if (!used.get(key)?.has(v)) unused.push(`${v} ${key}`);
  }
  const verbs = [...new Set(calls.map((q) => `${q.verb} ${q.resource}`))].sort();
  console.log(`# RBAC: ${calls.length} API calls by ${CA_USER} (${verbs.join(', ')}); unused grants: ${unused.length ? unused.join('; ') : 'none'}`);
  assert.deepEqual([...denied], [], 'calls not granted by manifests/base');
});
