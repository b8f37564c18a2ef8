/**
 * TokenReview economy: 1,000 issuances by 100 service-account identities through the
 * `kubernetes` authenticator against the Kubernetes API test server; counts the TokenReview
 * calls the server saw. Each issuance authenticates its token, then signs a real CSR in process.
 * Usage: node --import tsx bench/section-tokenreview.ts [--issuances 1000] [--identities 100]
 */
import 'reflect-metadata';
import * as k8s from '@kubernetes/client-node';
import { KubernetesAuthenticator } from '../src/authn/kubernetes.js';
import { issueCertificate, signingContextFor } from '../src/core/ca/authority.js';
import { DEFAULT_TTL_POLICY } from '../src/core/ca/policy.js';
import { bootstrapState, DEFAULT_LIFETIMES } from '../src/core/ca/rotation.js';
import { systemClock } from '../src/core/clock.js';
import { startKubeApiServer } from '../test/helpers/kube-api-server/index.js';
import { makeCsrPool } from './csr-pool.js';
import { argNumber, emitResult, note } from './result-line.js';

const issuances = argNumber('issuances', 1000);
const identities = argNumber('identities', 100);
const concurrency = argNumber('concurrency', 32);

const api = await startKubeApiServer();
try {
  const tokens: string[] = [];
  for (let i = 0; i < identities; i++) tokens.push(await api.mintServiceAccountToken({ namespace: 'bench', serviceAccount: `sa-${i}`, audiences: ['rampart-ca'] }));
  const authenticator = new KubernetesAuthenticator({ api: api.kubeConfig().makeApiClient(k8s.AuthenticationV1Api), trustDomain: 'cluster.local' });
  const context = signingContextFor(bootstrapState('cluster.local', Date.now(), DEFAULT_LIFETIMES));
  const csrs = makeCsrPool(64);
  const before = api.tokenReviews.total;
  let next = 0;
  let issued = 0;
  let failed = 0;
  const started = performance.now();
  // Identities are visited round-robin, so every token is seen again long after its first use.
  const worker = async (): Promise<void> => {
    while (next < issuances) {
      const i = next++;
      try {
        const identity = await authenticator.authenticate({ bearerToken: tokens[i % identities]! });
        if (identity === null) throw new Error('no identity');
        issueCertificate(context, DEFAULT_TTL_POLICY, systemClock, { csrPem: csrs[i % csrs.length]!, caller: { identity, authenticator: 'kubernetes' } });
        issued++;
      } catch (e) {
        failed++;
        if (failed <= 3) note(`tokenReview: issuance ${i} failed: ${(e as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, () => worker()));
  const seconds = (performance.now() - started) / 1000;
  const calls = api.tokenReviews.total - before;
  const result = { issuances, identities, issued, failed, tokenReviewCalls: calls, apiCallsPer1000Issuances: Math.round((calls * 1000) / issuances), seconds: Math.round(seconds * 100) / 100 };
  note(`tokenReview: ${JSON.stringify(result)}`);
  emitResult(result);
} finally {
  await api.close();
}
