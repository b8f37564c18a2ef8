/**
 * GET /v1/trust-bundle in its three formats, ETag/If-None-Match, the long-poll on the sequence,
 * and the admin API that changes it (DESIGN sections 4 and 6).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createHash } from 'node:crypto';
import { startTestCa, type TestCa } from '../helpers/ca.js';
import { httpsJson } from '../helpers/https.js';
import { createKeyAndCsr } from '../../src/agent/csr.js';
import { splitPemCertificates } from '../helpers/openssl.js';

let ca: TestCa;
let adminToken: string;
let userToken: string;

before(async () => {
  ca = await startTestCa();
  adminToken = await ca.token('rampart-system', 'rampart-admin');
  userToken = await ca.token('shop', 'cart');
});

after(async () => {
  await ca?.close();
});

const bundleUrl = (query = ''): string => `${ca.apiUrl}/v1/trust-bundle${query}`;
const get = (query = '', headers: Record<string, string> = {}) => httpsJson(bundleUrl(query), { ca: ca.rootCertPem(), headers });
const fingerprint = (pem: string): string => createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');

test('JSON (the default): trust domain, sequence and the active root with phase, notAfter and fingerprint', async () => {
  const res = await get();
  assert.equal(res.status, 200, res.text);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  assert.deepEqual(Object.keys(res.body).sort(), ['roots', 'sequence', 'trustDomain']);
  assert.equal(res.body.trustDomain, 'cluster.local');
  assert.equal(res.body.sequence, 1);
  assert.equal(res.body.roots.length, 1);
  const [root] = res.body.roots;
  assert.equal(root.phase, 'active');
  assert.equal(root.pem, ca.rootCertPem());
  assert.equal(root.fingerprint, fingerprint(root.pem));
  assert.equal(Date.parse(root.notAfter), Date.parse(new X509Certificate(root.pem).validTo));
  assert.deepEqual(await get('?format=json').then((r) => r.body), res.body);
});

test('PEM: the concatenated roots, the same bytes as <state-dir>/root-cert.pem', async () => {
  const res = await get('?format=pem');
  assert.equal(res.status, 200);
  assert.match(String(res.headers['content-type']), /^application\/x-pem-file/);
  assert.equal(res.text, ca.rootCertPem());
  assert.equal(splitPemCertificates(res.text).length, 1);
});

test('JWKS: SPIFFE bundle keys with use x509-svid and x5c, plus spiffe_sequence and spiffe_refresh_hint', async () => {
  const res = await get('?format=jwks');
  assert.equal(res.status, 200);
  assert.equal(res.body.spiffe_sequence, 1);
  assert.equal(res.body.spiffe_refresh_hint, 60, 'default bundle refresh interval 60 s');
  assert.equal(res.body.keys.length, 1);
  const [key] = res.body.keys;
  assert.equal(key.use, 'x509-svid');
  assert.equal(key.kty, 'EC');
  assert.equal(key.crv, 'P-256');
  assert.equal(typeof key.x, 'string');
  assert.equal(key.d, undefined, 'no private part');
  assert.equal(key.x5c.length, 1);
  const cert = new X509Certificate(Buffer.from(key.x5c[0], 'base64'));
  assert.equal(cert.toString(), new X509Certificate(ca.rootCertPem()).toString());
  const jwk = cert.publicKey.export({ format: 'jwk' });
  assert.equal(key.x, jwk.x);
  assert.equal(key.y, jwk.y);
});

test('an unknown format or a bad query number: 400 RAMPART_ERR_BAD_REQUEST', async () => {
  // The message shows the value as the CA read it: a '%zz' that does not percent-decode reads as
  // itself, and a repeated parameter is named as one.
  const cases: Array<[string, RegExp]> = [
    ['?format=der', /^format must be pem, json or jwks, got "der"$/],
    ['?format=%zz', /^format must be pem, json or jwks, got "%zz"$/],
    ['?format=pem&format=json', /^format must be pem, json or jwks, got 2 values \(give it once\)$/],
    ['?after=-1&waitSeconds=1', /^after must be a non-negative whole number, got "-1"$/],
    ['?after=1&waitSeconds=abc', /^waitSeconds must be a non-negative whole number, got "abc"$/],
    [`?after=${'9'.repeat(60)}`, /^after must be a non-negative whole number, got "9{40}\.\.\."$/],
  ];
  for (const [q, message] of cases) {
    const res = await get(q);
    assert.equal(res.status, 400, q);
    assert.equal(res.body.error.code, 'RAMPART_ERR_BAD_REQUEST');
    assert.match(res.body.error.message, message, q);
  }
});

test('ETag is the sequence; If-None-Match with it answers 304, another value 200', async () => {
  const res = await get();
  assert.equal(res.headers.etag, `"${res.body.sequence}"`);
  assert.equal(res.headers['rampart-bundle-sequence'], String(res.body.sequence));
  const notModified = await get('', { 'if-none-match': res.headers.etag as string });
  assert.equal(notModified.status, 304);
  assert.equal(notModified.text, '');
  const pemNotModified = await get('?format=pem', { 'if-none-match': res.headers.etag as string });
  assert.equal(pemNotModified.status, 304);
  const stale = await get('', { 'if-none-match': `"${res.body.sequence - 1}"` });
  assert.equal(stale.status, 200);
});

test('If-None-Match per RFC 9110 13.1.2: "*", a weak tag and a list holding the ETag answer 304; a list without it 200', async () => {
  const seq = (await get()).body.sequence as number;
  const matching = ['*', ` * `, `W/"${seq}"`, `"${seq - 1}", "${seq}"`, `W/"${seq + 7}", W/"${seq}"`, `"${seq + 1}",,"${seq}"`];
  for (const field of matching) {
    const res = await get('', { 'if-none-match': field });
    assert.equal(res.status, 304, `If-None-Match: ${field}`);
    assert.equal(res.text, '');
    assert.equal(res.headers.etag, `"${seq}"`, 'a 304 still names the current ETag');
  }
  for (const field of [`"${seq - 1}", "${seq + 1}"`, `W/"${seq + 1}"`, `${seq}`, `"${seq}0"`]) {
    assert.equal((await get('', { 'if-none-match': field })).status, 200, `If-None-Match: ${field}`);
  }
  // The long-poll parameters work as before: the condition is judged on the bundle the poll answers.
  const polled = await get(`?after=${seq - 1}&waitSeconds=30&format=pem`, { 'if-none-match': `W/"${seq}"` });
  assert.equal(polled.status, 304);
});

test('long-poll: ?after=<current>&waitSeconds=1 waits about a second and answers the same sequence', async () => {
  const current = (await get()).body.sequence as number;
  const started = Date.now();
  const res = await get(`?after=${current}&waitSeconds=1`);
  const elapsed = Date.now() - started;
  assert.equal(res.status, 200);
  assert.equal(res.body.sequence, current);
  assert.ok(elapsed >= 900, `the CA held the request (${elapsed} ms)`);
  // A sequence already past `after` answers at once with the current bundle.
  const past = await get(`?after=${current - 1}&waitSeconds=30`);
  assert.equal(past.body.sequence, current);
});

test('admin API: a non-admin gets 403 RAMPART_ERR_NOT_ADMIN, no credentials 401, and nothing changes', async () => {
  const before = (await get()).body.sequence;
  for (const path of ['/v1/admin/roots/prepare', '/v1/admin/roots/activate', '/v1/admin/roots/retire']) {
    const res = await httpsJson(`${ca.apiUrl}${path}`, { ca: ca.rootCertPem(), token: userToken, body: { force: true } });
    assert.equal(res.status, 403, res.text);
    assert.equal(res.body.error.code, 'RAMPART_ERR_NOT_ADMIN');
    assert.match(res.body.error.message, /spiffe:\/\/cluster\.local\/ns\/shop\/sa\/cart is not an admin identity/);
  }
  const status = await httpsJson(`${ca.apiUrl}/v1/admin/status`, { ca: ca.rootCertPem(), token: userToken });
  assert.equal(status.status, 403);
  const anonymous = await httpsJson(`${ca.apiUrl}/v1/admin/roots/prepare`, { ca: ca.rootCertPem(), body: {} });
  assert.equal(anonymous.status, 401);
  assert.equal(anonymous.body.error.code, 'RAMPART_ERR_UNAUTHENTICATED');
  assert.equal((await get()).body.sequence, before);
});

test('a long-poll returns early when an admin prepares a new root; every format then shows both roots', async () => {
  const before = await get();
  const seq = before.body.sequence as number;
  const started = Date.now();
  const poll = get(`?after=${seq}&waitSeconds=60`);
  let prepared = false;
  const polled = poll.then((r) => ({ r, preparedFirst: prepared }));
  const prep = await httpsJson(`${ca.apiUrl}/v1/admin/roots/prepare`, { ca: ca.rootCertPem(), token: adminToken, body: {} });
  prepared = true;
  assert.equal(prep.status, 200, prep.text);
  assert.equal(prep.body.sequence, seq + 1);
  assert.deepEqual(prep.body.roots.map((r: { phase: string }) => r.phase), ['active', 'prepared']);
  const { r } = await polled;
  assert.equal(r.status, 200);
  assert.equal(r.body.sequence, seq + 1, 'the poll answered the new sequence');
  assert.ok(Date.now() - started < 55_000, 'well before waitSeconds ran out');
  assert.deepEqual(r.body.roots.map((x: { phase: string }) => x.phase), ['active', 'prepared']);
  assert.equal(r.headers.etag, `"${seq + 1}"`);
  // The old ETag no longer matches.
  assert.equal((await get('', { 'if-none-match': before.headers.etag as string })).status, 200);
  assert.equal(splitPemCertificates((await get('?format=pem')).text).length, 2);
  assert.equal(splitPemCertificates(ca.rootCertPem()).length, 2, 'root-cert.pem on disk follows');
  const jwks = (await get('?format=jwks')).body;
  assert.equal(jwks.keys.length, 2);
  assert.equal(jwks.spiffe_sequence, seq + 1);
  // The admin status reports the prepared root's propagation and the intermediate.
  const status = await httpsJson(`${ca.apiUrl}/v1/admin/status`, { ca: ca.rootCertPem(), token: adminToken });
  assert.equal(status.status, 200);
  assert.equal(status.body.sequence, seq + 1);
  assert.ok(status.body.roots[1].propagation, 'propagation of the prepared root');
  assert.ok(Date.parse(status.body.intermediate.notAfter) > Date.now());
  // A second prepare is refused with 409 while one is pending; activate without force waits for propagation.
  const again = await httpsJson(`${ca.apiUrl}/v1/admin/roots/prepare`, { ca: ca.rootCertPem(), token: adminToken, body: {} });
  assert.equal(again.status, 409);
  assert.equal(again.body.error.code, 'RAMPART_ERR_ROTATION_NOT_ALLOWED');
  const retire = await httpsJson(`${ca.apiUrl}/v1/admin/roots/retire`, { ca: ca.rootCertPem(), token: adminToken, body: {} });
  assert.equal(retire.status, 409);
  assert.match(retire.body.error.message, /no root is retiring/);
});

test('a long poll in progress answers at once, with Connection: close, when the CA stops (it held shutdown for up to the refresh interval)', { timeout: 60_000 }, async () => {
  // A 300 s refresh interval lets a poll wait 300 s, far past this test's 60 s limit.
  const stopping = await startTestCa({ 'bundle-refresh-interval': '300s' });
  const { keyPem, csrPem } = createKeyAndCsr();
  const issued = await httpsJson(`${stopping.apiUrl}/v1/certificates`, { ca: stopping.rootCertPem(), token: await stopping.token('shop', 'poller'), body: { csr: csrPem } });
  assert.equal(issued.status, 200, issued.text);
  // Agents' polls: an SVID and the sequence held, which the CA records just before parking each.
  // More than ten, so a per-poll listener on one signal would trip Node's leak warning.
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(w.name);
  process.on('warning', onWarning);
  const polls = Array.from({ length: 12 }, (_, i) =>
    httpsJson(`${stopping.apiUrl}/v1/trust-bundle?after=1&waitSeconds=300`, {
      ca: stopping.rootCertPem(),
      cert: (issued.body.certChain as string[]).join(''),
      key: keyPem,
      headers: { 'rampart-bundle-sequence': '1', 'rampart-agent-id': `pod-${i}` },
    }),
  );
  while (stopping.runtime.propagationStatus(1).agentsSeen < polls.length) await new Promise((r) => setTimeout(r, 20));
  const closed = stopping.close();
  const answers = await Promise.all(polls);
  await closed;
  process.off('warning', onWarning);
  for (const answer of answers) {
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.body.sequence, 1);
    assert.equal(answer.headers['connection'], 'close');
  }
  assert.deepEqual(warnings.filter((w) => w === 'MaxListenersExceededWarning'), []);
});

test('a client certificate on a bundle poll is checked only with a report to record; a refused report is logged and not counted', async () => {
  // An SVID from another CA: well-formed, but no chain to this CA's roots.
  const other = await startTestCa();
  const foreignKey = createKeyAndCsr();
  const foreign = await httpsJson(`${other.apiUrl}/v1/certificates`, { ca: other.rootCertPem(), token: await other.token('shop', 'intruder'), body: { csr: foreignKey.csrPem } });
  await other.close();
  assert.equal(foreign.status, 200, foreign.text);
  const ownKey = createKeyAndCsr();
  const own = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), token: userToken, body: { csr: ownKey.csrPem } });
  assert.equal(own.status, 200, own.text);
  const poll = (svid: { body: { certChain: string[] } }, keyPem: string, report: boolean, agentId: string) =>
    httpsJson(bundleUrl(), { ca: ca.rootCertPem(), cert: svid.body.certChain.join(''), key: keyPem, headers: report ? { 'rampart-bundle-sequence': '1', 'rampart-agent-id': agentId } : {} });
  const refusedLines = () => ca.logLines.filter((l) => l.includes('"bundle-report-refused"'));
  const seen = () => ca.runtime.propagationStatus(1).agentsSeen;
  const seenBefore = seen();

  assert.equal((await poll(foreign, foreignKey.keyPem, false, 'x')).status, 200);
  assert.equal(refusedLines().length, 0, 'no report, no check: the bundle is public');
  assert.equal((await poll(foreign, foreignKey.keyPem, true, 'forged-1')).status, 200, 'the bundle is served all the same');
  const [line] = refusedLines();
  assert.ok(line, 'the refused report is logged');
  assert.match(JSON.parse(line).reason, /chain does not lead to a root of the current trust bundle/);
  assert.equal(seen(), seenBefore, 'not counted');
  assert.equal((await poll(own, ownKey.keyPem, true, 'genuine-1')).status, 200);
  assert.equal(seen(), seenBefore + 1, 'a valid SVID report is counted');
});

test('a sibling pod of the same identity reporting a lagging agent\'s id from another address cannot hide it from activate (outside QA)', async () => {
  const rotating = await startTestCa({ 'bundle-refresh-interval': '300s' });
  try {
    const admin = await rotating.token('rampart-system', 'rampart-admin');
    const svid = async () => {
      const { keyPem, csrPem } = createKeyAndCsr();
      const res = await httpsJson(`${rotating.apiUrl}/v1/certificates`, { ca: rotating.rootCertPem(), token: await rotating.token('shop', 'lag'), body: { csr: csrPem } });
      assert.equal(res.status, 200, res.text);
      return { cert: (res.body.certChain as string[]).join(''), key: keyPem };
    };
    const [victim, sibling] = [await svid(), await svid()];
    const report = (who: { cert: string; key: string }, sequence: number, localAddress: string) =>
      httpsJson(`${rotating.apiUrl}/v1/trust-bundle`, { ca: rotating.rootCertPem(), ...who, localAddress, headers: { 'rampart-bundle-sequence': String(sequence), 'rampart-agent-id': 'lag-pod-1' } });
    assert.equal((await report(victim, 1, '127.0.0.1')).status, 200);
    const prepared = await httpsJson(`${rotating.apiUrl}/v1/admin/roots/prepare`, { ca: rotating.rootCertPem(), token: admin, body: {} });
    assert.equal(prepared.status, 200, prepared.text);
    assert.equal((await report(victim, 1, '127.0.0.1')).status, 200);
    assert.equal((await report(sibling, 2, '127.0.0.2')).status, 200);
    const status = rotating.runtime.propagationStatus(2);
    assert.equal(status.propagated, false);
    assert.deepEqual([status.agentsUpToDate, status.agentsSeen], [1, 2]);
    assert.match(status.reason, /behind: spiffe:\/\/cluster\.local\/ns\/shop\/sa\/lag \(1 agent\)/);
  } finally {
    await rotating.close();
  }
});
