/**
 * While the agent waits for its first certificate, a retry backoff never outlasts the start-up
 * deadline: the last attempt is made just before it. Before, a long full-jitter draw could put
 * the next attempt past the deadline, so an agent slept through the time the CA was back and
 * exited CA_UNREACHABLE without asking again (outside QA).
 *
 * The CA is real; a client in front of it fails the first attempts the way an unreachable CA
 * does, at once, so the schedule depends only on the backoff draws (pinned high here).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CertificateManager } from '../../src/agent/certificate-manager.js';
import { FirstCertificateTimeout } from '../../src/agent/first-certificate.js';
import { createAgentMetrics, createAgentRegistry } from '../../src/agent/agent-metrics.js';
import { CaClient, type CaClientOptions } from '../../src/client/ca-client.js';
import { systemClock } from '../../src/core/clock.js';
import { UnavailableError } from '../../src/core/errors.js';
import { startTestCa, type TestCa } from '../helpers/ca.js';
import { captureLogs } from './proxy-support.js';

/** Refuses the first `unreachableFor` certificate requests as a CA that is down would. */
class CaDownAtFirst extends CaClient {
  attempts = 0;
  constructor(options: CaClientOptions, private readonly unreachableFor: number) {
    super(options);
  }

  override async requestCertificate(input: Parameters<CaClient['requestCertificate']>[0]): ReturnType<CaClient['requestCertificate']> {
    this.attempts++;
    if (this.attempts <= this.unreachableFor) throw new UnavailableError('RAMPART_ERR_CA_UNREACHABLE', `cannot reach the CA (attempt ${this.attempts})`);
    return super.requestCertificate(input);
  }
}

let ca: TestCa;
let token: string;

before(async () => {
  ca = await startTestCa();
  token = await ca.token('shop', 'deadline', { ttlSeconds: 3600 });
});
after(async () => {
  await ca.close();
});

/**
 * With a 500 ms base and draws pinned near 1, attempts fall at about 0, 0.5, 1.5 and 3.5 s, and
 * the backoff after the fourth failure would wait until about 7.5 s: past a 6 s deadline.
 */
function managerWithCaDownFor(attempts: number): { manager: CertificateManager; client: CaDownAtFirst } {
  const clientOptions = { url: ca.apiUrl, caBundle: () => ca.rootCertPem() };
  const client = new CaDownAtFirst(clientOptions, attempts);
  const manager = new CertificateManager({
    certificateClient: client,
    bundleClient: new CaClient(clientOptions),
    tokenSource: { description: 'test token', read: async () => token },
    clock: systemClock,
    logger: captureLogs().logger,
    metrics: createAgentMetrics(createAgentRegistry()),
    outDir: null,
    random: () => 0.999,
    retry: { baseMs: 500 },
  });
  return { manager, client };
}

const START_UP_MS = 6_000;

test('a CA that is back before the deadline is asked once more before start-up gives up', { timeout: 60_000 }, async () => {
  const { manager, client } = managerWithCaDownFor(4);
  try {
    manager.start();
    const credentials = await manager.waitForFirstCertificate(START_UP_MS);
    assert.equal(credentials.spiffeId, 'spiffe://cluster.local/ns/shop/sa/deadline');
    assert.equal(client.attempts, 5, 'the fifth attempt, cut short of its backoff, got the certificate');
  } finally {
    await manager.stop();
  }
});

test('a CA that never answers: the last attempt is made before the deadline and its error is the one reported', { timeout: 60_000 }, async () => {
  const { manager, client } = managerWithCaDownFor(Number.POSITIVE_INFINITY);
  try {
    manager.start();
    await assert.rejects(manager.waitForFirstCertificate(START_UP_MS), (err: unknown) => {
      assert.ok(err instanceof FirstCertificateTimeout);
      assert.equal(err.code, 'RAMPART_ERR_CA_UNREACHABLE');
      assert.match(err.message, /^no certificate within 6s: cannot reach the CA \(attempt 5\)/);
      return true;
    });
    // One last attempt, not a burst of them as the deadline nears.
    assert.equal(client.attempts, 5);
  } finally {
    await manager.stop();
  }
});
