/**
 * `--warm-up-requests N`: each signing process serves N certificate requests to itself on a
 * throwaway CA before it listens (src/runtime/issue-path-warm-up.ts). What must hold: every
 * warm-up request is answered with a certificate; the real CA's keys, state, metrics and logs
 * show nothing of it; the first real caller gets a certificate from the real CA.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mintDevToken } from '../../src/authn/dev.js';
import { loadCaConfig } from '../../src/config/ca-config.js';
import { systemClock } from '../../src/core/clock.js';
import { warmUpIssuePath } from '../../src/runtime/issue-path-warm-up.js';
import { issuedOk, withClusterCa } from '../helpers/cluster-ca.js';
import { httpsJson } from '../helpers/https.js';
import { eventually } from '../helpers/poll.js';

test('warmUpIssuePath answers every request with a certificate and writes nothing to the state dir', { timeout: 60_000 }, async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'rampart-wu-'));
  try {
    const config = loadCaConfig({ 'state-dir': stateDir }, {});
    const report = await warmUpIssuePath(config, { requests: 24, clock: systemClock, concurrency: 4 });
    assert.deepEqual({ requests: report.requests, issued: report.issued, failed: report.failed, failures: report.failures, cutShort: report.cutShort }, { requests: 24, issued: 24, failed: 0, failures: {}, cutShort: false });
    assert.deepEqual(readdirSync(stateDir), [], 'no root, no dev issuer, no state: the throwaway CA lives in memory');

    // A CA that lets 1 request through at a time gets one at a time from its warm-up.
    const narrow = await warmUpIssuePath(loadCaConfig({ 'state-dir': stateDir, 'max-in-flight': '1' }, {}), { requests: 48, clock: systemClock });
    assert.deepEqual({ issued: narrow.issued, failures: narrow.failures }, { issued: 48, failures: {} });

    const none = await warmUpIssuePath(config, { requests: 24, clock: systemClock, deadlineMs: 0 });
    assert.equal(none.requests, 0, 'a deadline already past makes no request');
    assert.equal(none.cutShort, true);
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test('--warm-up-requests must be a whole number within bounds', () => {
  const stateDir = '/nonexistent-rampart-state';
  assert.equal(loadCaConfig({ 'state-dir': stateDir }, {}).warmUpRequests, 0, 'off unless asked for');
  assert.equal(loadCaConfig({ 'state-dir': stateDir, 'warm-up-requests': '0' }, {}).warmUpRequests, 0);
  assert.equal(loadCaConfig({ 'state-dir': stateDir, 'warm-up-requests': '1000' }, {}).warmUpRequests, 1000);
  for (const bad of ['-1', '1.5', 'lots', '', '20001']) {
    assert.throws(
      () => loadCaConfig({ 'state-dir': stateDir, 'warm-up-requests': bad }, {}),
      (err: Error & { code?: string }) => err.code === 'RAMPART_ERR_CONFIG_INVALID' && err.message.includes('--warm-up-requests'),
      `--warm-up-requests "${bad}"`,
    );
  }
});

test('rampart ca --workers 2 --warm-up-requests: both workers warm up, then the real CA issues and counts only real requests', { timeout: 180_000 }, () =>
  withClusterCa(async ({ stateDir, ssl, apiUrl, monitoringUrl, log: lines, output }) => {
    // The CA reports started once one worker serves; the other may still be warming up.
    await eventually('both workers serving', () => lines.filter((l) => l['event'] === 'worker-serving').length === 2, 150_000);
    const warmUps = lines.filter((l) => l['event'] === 'warm-up');
    assert.equal(warmUps.length, 2, 'one warm-up per signing worker');
    const workers = new Set(warmUps.map((l) => l['worker']));
    assert.equal(workers.size, 2);
    for (const w of warmUps) {
      assert.equal(w['issued'], 60, JSON.stringify(w));
      assert.equal(w['failed'], 0, JSON.stringify(w));
    }
    // Each worker warmed up before it served: its warm-up line comes before its serving line.
    for (const worker of workers) {
      const warmAt = lines.findIndex((l) => l['event'] === 'warm-up' && l['worker'] === worker);
      const servingAt = lines.findIndex((l) => l['event'] === 'worker-serving' && l['worker'] === worker);
      assert.ok(warmAt >= 0 && servingAt > warmAt, `worker ${String(worker)} warmed up (line ${warmAt}) before serving (line ${servingAt})`);
    }

    const roots = readFileSync(join(stateDir, 'root-cert.pem'), 'utf8');
    const token = await mintDevToken({ stateDir, namespace: 'shop', serviceAccount: 'cart' });
    const { csrPem } = await ssl.keyAndCsr();
    const res = await httpsJson(`${apiUrl}/v1/certificates`, { ca: roots, token, body: { csr: csrPem } });
    assert.equal(res.status, 200, res.text);
    const [leaf = '', ...intermediates] = res.body.certChain as string[];
    const verified = await ssl.run(['verify', '-CAfile', await ssl.write('roots.pem', roots), '-untrusted', await ssl.write('chain.pem', intermediates.join('')), await ssl.write('leaf.pem', leaf)]);
    assert.match(verified.stdout, /leaf\.pem: OK/, 'the real CA signed it, under the real root');

    // The primary takes each worker's counts every second.
    await new Promise((r) => setTimeout(r, 2_500));
    assert.equal(await issuedOk(monitoringUrl), 1, 'the 120 warm-up certificates are not counted as issuances');
    assert.doesNotMatch(output(), /rampart-warm-up/, 'the warm-up identities never reach the CA log');
  }, { extraArgs: ['--warm-up-requests', '60'] }));
