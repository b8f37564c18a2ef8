/**
 * Monitoring listener and logs (DESIGN section 10): health, readiness and Prometheus metrics, and
 * a log that records every issuance but never a token or any private key.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { startTestCa, type TestCa } from '../helpers/ca.js';
import { httpsJson } from '../helpers/https.js';
import { OpenSsl, pemBody } from '../helpers/openssl.js';

let ca: TestCa;
let ssl: OpenSsl;
const tokensUsed: string[] = [];
const workloadKeys: string[] = [];
const issuedSerials: string[] = [];

/** Every `keyPem` string anywhere in the persisted state (root and intermediate keys). */
function stateKeys(stateDir: string): string[] {
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v !== null && typeof v === 'object') {
      for (const [k, val] of Object.entries(v)) {
        if (k === 'keyPem' && typeof val === 'string') out.push(val);
        else walk(val);
      }
    }
  };
  walk(JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')));
  return out;
}

before(async () => {
  ca = await startTestCa();
  ssl = await OpenSsl.create('rampart-obs-');
  // A run that issues with tokens, renews with SVIDs and is refused bad tokens.
  for (const [ns, sa] of [['shop', 'cart'], ['shop', 'payments'], ['web', 'frontend']] as const) {
    const token = await ca.token(ns, sa);
    tokensUsed.push(token);
    const k = await ssl.keyAndCsr();
    workloadKeys.push(k.keyPem);
    const res = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), token, body: { csr: k.csrPem, ttlSeconds: 900 } });
    assert.equal(res.status, 200, res.text);
    issuedSerials.push(res.body.serial);
    const next = await ssl.keyAndCsr({ key: ns === 'web' ? 'RSA-2048' : 'P-256' });
    workloadKeys.push(next.keyPem);
    const renewed = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), cert: res.body.certChain.join(''), key: k.keyPem, body: { csr: next.csrPem } });
    assert.equal(renewed.status, 200, renewed.text);
    issuedSerials.push(renewed.body.serial);
  }
  const refusedToken = `${tokensUsed[0]?.slice(0, -8)}AAAAAAAA`;
  const wrongAudience = await ca.token('shop', 'cart', { audience: 'somebody-else' });
  const spare = await ssl.keyAndCsr();
  for (const bad of [refusedToken, wrongAudience, 'garbage.token.value']) {
    tokensUsed.push(bad);
    const res = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), token: bad, body: { csr: spare.csrPem } });
    assert.equal(res.status, 401);
  }
  // A refused CSR too (its error path logs as well).
  const res = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), token: tokensUsed[0], body: { csr: (await ssl.keyAndCsr({ requestCa: true })).csrPem } });
  assert.equal(res.status, 400);
  // Refusals fastify makes before the route runs are counted too.
  const tooLarge = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), token: tokensUsed[0], body: { csr: 'x'.repeat(70_000) } });
  assert.equal(tooLarge.status, 413);
  const wrongType = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), token: tokensUsed[0], body: 'csr=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  assert.equal(wrongType.status, 415);
  // No credentials at all; a workload asking for another identity; a non-admin on the admin API.
  const anonymous = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), body: { csr: spare.csrPem } });
  assert.equal(anonymous.status, 401);
  const other = await ssl.keyAndCsr({ subjectAltName: 'URI:spiffe://cluster.local/ns/kube-system/sa/admin' });
  const mismatch = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), token: tokensUsed[0], body: { csr: other.csrPem } });
  assert.equal(mismatch.status, 403);
  const notAdmin = await httpsJson(`${ca.apiUrl}/v1/admin/status`, { ca: ca.rootCertPem(), token: tokensUsed[0] });
  assert.equal(notAdmin.status, 403);
});

after(async () => {
  await ca?.close();
  await ssl?.close();
});

test('/healthz and /readyz answer 200 on the plain-HTTP monitoring listener', async () => {
  const health = await httpsJson(`${ca.monitoringUrl}/healthz`);
  assert.equal(health.status, 200);
  assert.equal(health.body.status, 'ok');
  const ready = await httpsJson(`${ca.monitoringUrl}/readyz`);
  assert.equal(ready.status, 200);
  assert.equal(ready.body.status, 'ready');
  assert.match(ca.monitoringUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
});

test('/metrics: issuance counters and duration, root and intermediate expiry, bundle sequence', async () => {
  const res = await httpsJson(`${ca.monitoringUrl}/metrics`);
  assert.equal(res.status, 200);
  assert.match(String(res.headers['content-type']), /^text\/plain/);
  const m = res.text;
  assert.match(m, /^rampart_ca_certificates_issued_total\{result="ok"\} 6$/m, 'three token issuances + three renewals');
  assert.match(m, /^rampart_ca_certificates_issued_total\{result="RAMPART_ERR_UNAUTHENTICATED"\} 4$/m);
  assert.match(m, /^rampart_ca_certificates_issued_total\{result="RAMPART_ERR_CSR_CA_REQUESTED"\} 1$/m);
  assert.match(m, /^rampart_ca_certificates_issued_total\{result="RAMPART_ERR_BODY_TOO_LARGE"\} 1$/m);
  assert.match(m, /^rampart_ca_certificates_issued_total\{result="RAMPART_ERR_UNSUPPORTED_MEDIA_TYPE"\} 1$/m);
  assert.match(m, /^# TYPE rampart_ca_issue_duration_seconds histogram$/m);
  assert.match(m, /^rampart_ca_issue_duration_seconds_count 6$/m);
  assert.match(m, /^rampart_ca_connections_shed_total 0$/m, 'no connection waited long enough to be shed');
  const fp = ca.runtime.current().activeRootFingerprint;
  const rootNotAfter = Date.parse(new X509Certificate(ca.rootCertPem()).validTo) / 1000;
  const rootLine = new RegExp(`^rampart_ca_root_expiry_timestamp_seconds\\{fingerprint="${fp}"\\} (\\d+(\\.\\d+)?)$`, 'm').exec(m);
  assert.ok(rootLine, 'root expiry gauge labelled with the fingerprint');
  assert.equal(Number(rootLine[1]), rootNotAfter);
  const interPem = ca.runtime.current().chainPems[0] as string;
  const interLine = /^rampart_ca_intermediate_expiry_timestamp_seconds (\d+(\.\d+)?)$/m.exec(m);
  assert.ok(interLine);
  assert.equal(Number(interLine[1]), Date.parse(new X509Certificate(interPem).validTo) / 1000);
  assert.match(m, /^rampart_ca_trust_bundle_sequence 1$/m);
});

test('logs: one "certificate issued" line per issuance with spiffeId, serial, notAfter, durationMs, authenticator', () => {
  const issued = ca.logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['msg'] === 'certificate issued');
  assert.equal(issued.length, 6);
  assert.deepEqual(issued.map((l) => l['serial']), issuedSerials);
  assert.deepEqual(issued.map((l) => l['authenticator']), ['dev', 'svid', 'dev', 'svid', 'dev', 'svid']);
  assert.deepEqual(issued.map((l) => l['spiffeId']), [
    'spiffe://cluster.local/ns/shop/sa/cart',
    'spiffe://cluster.local/ns/shop/sa/cart',
    'spiffe://cluster.local/ns/shop/sa/payments',
    'spiffe://cluster.local/ns/shop/sa/payments',
    'spiffe://cluster.local/ns/web/sa/frontend',
    'spiffe://cluster.local/ns/web/sa/frontend',
  ]);
  for (const l of issued) {
    assert.ok(!Number.isNaN(Date.parse(String(l['notAfter']))), 'notAfter is a date');
    assert.equal(typeof l['durationMs'], 'number');
    assert.ok((l['durationMs'] as number) >= 0);
  }
  // Refusals are logged with their reason, never silently dropped: one line each, with the request id.
  const lines = ca.logLines.map((l) => JSON.parse(l) as Record<string, unknown>);
  const authFailures = lines.filter((l) => l['msg'] === 'authentication failed');
  assert.equal(authFailures.length, 4, 'one line per 401');
  for (const l of authFailures) {
    assert.equal(l['component'], 'api');
    assert.equal(typeof l['reqId'], 'string');
    assert.equal(l['code'], 'RAMPART_ERR_UNAUTHENTICATED');
    assert.equal(l['method'], 'POST');
  }
  assert.deepEqual(authFailures.map((l) => [l['hasBearerToken'], l['hasClientCertificate']]), [[true, false], [true, false], [true, false], [false, false]]);
  assert.match(String(authFailures[3]?.['reason']), /no credentials for any of dev, svid/);
  const refusals = lines.filter((l) => l['msg'] === 'request refused');
  assert.deepEqual(
    refusals.map((l) => [l['status'], l['code'], l['url']]),
    [
      [400, 'RAMPART_ERR_CSR_CA_REQUESTED', '/v1/certificates'],
      [413, 'RAMPART_ERR_BODY_TOO_LARGE', '/v1/certificates'],
      [415, 'RAMPART_ERR_UNSUPPORTED_MEDIA_TYPE', '/v1/certificates'],
      [403, 'RAMPART_ERR_CSR_IDENTITY_MISMATCH', '/v1/certificates'],
      [403, 'RAMPART_ERR_NOT_ADMIN', '/v1/admin/status'],
    ],
  );
  for (const l of refusals) assert.equal(typeof l['reqId'], 'string');
  assert.match(String(refusals[3]?.['reason']), /asks for "spiffe:\/\/cluster\.local\/ns\/kube-system\/sa\/admin" but the caller is authenticated as "spiffe:\/\/cluster\.local\/ns\/shop\/sa\/cart"/);
  assert.match(String(refusals[4]?.['reason']), /spiffe:\/\/cluster\.local\/ns\/shop\/sa\/cart is not an admin identity/);
});

test('logs never contain a token, any private key body, or "PRIVATE KEY"', () => {
  assert.ok(ca.logLines.length > 10);
  const caKeys = stateKeys(ca.stateDir);
  assert.ok(caKeys.length >= 2, 'root and intermediate keys found in state.json');
  const secrets: Array<[string, string]> = [
    ...tokensUsed.map((t, i): [string, string] => [`token #${i}`, t]),
    // Each JWT part on its own too: a log that split the token would still leak its signature.
    ...tokensUsed.flatMap((t, i) => t.split('.').filter((p) => p.length >= 16).map((p): [string, string] => [`token #${i} part`, p])),
    ...caKeys.map((k, i): [string, string] => [`CA key #${i} from state.json`, pemBody(k)]),
    ...workloadKeys.map((k, i): [string, string] => [`workload key #${i}`, pemBody(k)]),
    ['CA serving key', pemBody(ca.servingCertificate().keyPem)],
    ['dev issuer key', pemBody(readFileSync(join(ca.stateDir, 'dev-issuer.key.pem'), 'utf8'))],
  ];
  for (const line of ca.logLines) {
    assert.ok(!line.includes('PRIVATE KEY'), `log line mentions PRIVATE KEY: ${line.slice(0, 200)}`);
    const unescaped = line.replace(/\\n/g, '').replace(/\\\//g, '/');
    for (const [what, secret] of secrets) {
      assert.ok(!line.includes(secret) && !unescaped.includes(secret), `log line contains ${what}: ${line.slice(0, 200)}`);
      // Key bodies broken into 64-column lines: look for any full line of the body.
      if (secret.length > 128) assert.ok(!unescaped.includes(secret.slice(64, 128)), `log line contains a piece of ${what}`);
    }
  }
});
