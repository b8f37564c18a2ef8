/**
 * The admin API and `rampart root`: only admin identities may look or act (403
 * RAMPART_ERR_NOT_ADMIN otherwise, for tokens and SVIDs alike), refusals are 409s that say why
 * and when, and the CLI prints a readable table or valid JSON.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { strict as assert } from 'node:assert';
import { after, before, test } from 'node:test';
import { createKeyAndCsr } from '../../src/agent/csr.js';
import { startTestCa, type TestCa } from '../helpers/ca.js';
import { httpsJson } from '../helpers/https.js';
import { OpenSsl } from '../helpers/openssl.js';
import { adminCall, readState, runCli } from './rotation-support.js';

let ca: TestCa;
let tokens: string;
let adminTokenFile: string;
let userTokenFile: string;

before(async () => {
  ca = await startTestCa();
  tokens = mkdtempSync(join(tmpdir(), 'rampart-admin-tokens-'));
  adminTokenFile = join(tokens, 'admin.token');
  userTokenFile = join(tokens, 'user.token');
  writeFileSync(adminTokenFile, await ca.token('rampart-system', 'rampart-admin'), { mode: 0o600 });
  // Right namespace, wrong service account: still not an admin.
  writeFileSync(userTokenFile, await ca.token('rampart-system', 'default'), { mode: 0o600 });
});

after(async () => {
  await ca?.close();
  rmSync(tokens, { recursive: true, force: true });
});

function root(step: string, tokenFile: string, ...flags: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return runCli(['root', step, '--ca-url', ca.apiUrl, '--ca-bundle', join(ca.stateDir, 'root-cert.pem'), '--token-file', tokenFile, ...flags]);
}

const STEPS = ['status', 'prepare', 'activate', 'retire'] as const;

test('every admin endpoint answers 403 RAMPART_ERR_NOT_ADMIN to non-admin tokens and SVIDs, 401 without credentials', async () => {
  const userToken = await ca.token('shop', 'web');
  const { keyPem, csrPem } = createKeyAndCsr();
  const issued = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), token: userToken, body: { csr: csrPem } });
  assert.equal(issued.status, 200, issued.text);
  const svid = { cert: (issued.body.certChain as string[]).join(''), key: keyPem };
  // Independent requests, sent together: the answers must not depend on order.
  await Promise.all(
    STEPS.map(async (step) => {
      for (const force of [false, true]) {
        const byToken = await adminCall(ca.apiUrl, ca.rootCertPem(), userToken, step, force);
        assert.equal(byToken.status, 403, `${step}: ${byToken.text}`);
        assert.equal(byToken.body.error.code, 'RAMPART_ERR_NOT_ADMIN');
        assert.match(byToken.body.error.message, /spiffe:\/\/cluster\.local\/ns\/shop\/sa\/web is not an admin identity; add it to admin\.identities/);
      }
      const path = step === 'status' ? '/v1/admin/status' : `/v1/admin/roots/${step}`;
      const bySvid = await httpsJson(`${ca.apiUrl}${path}`, { ca: ca.rootCertPem(), ...svid, ...(step === 'status' ? {} : { body: { force: true } }) });
      assert.equal(bySvid.status, 403, `${step} with an SVID: ${bySvid.text}`);
      assert.equal(bySvid.body.error.code, 'RAMPART_ERR_NOT_ADMIN');
      const anonymous = await httpsJson(`${ca.apiUrl}${path}`, { ca: ca.rootCertPem(), ...(step === 'status' ? {} : { body: {} }) });
      assert.equal(anonymous.status, 401, `${step} without credentials: ${anonymous.text}`);
    }),
  );
  assert.equal(readState(ca.stateDir).sequence, 1, 'nothing changed');
});

test('a rotation step body other than empty or {"force": boolean} is a coded 400 and changes nothing', async () => {
  const token = await ca.token('rampart-system', 'rampart-admin');
  const post = (body: unknown) => httpsJson(`${ca.apiUrl}/v1/admin/roots/prepare`, { ca: ca.rootCertPem(), token, body });
  for (const [body, message] of [
    [{ force: 'yes' }, /"force" must be true or false/],
    [[1], /must be a JSON object such as \{"force": true\}, or empty/],
    [{ force: true, confirm: true }, /unknown field "confirm" in a rotation step/],
  ] as const) {
    const res = await post(body);
    assert.equal(res.status, 400, `${JSON.stringify(body)}: ${res.text}`);
    assert.equal(res.body.error.code, 'RAMPART_ERR_BAD_REQUEST');
    assert.match(res.body.error.message, message);
  }
  assert.equal(readState(ca.stateDir).sequence, 1, 'nothing changed');
});

test('rampart root prints a readable table or valid JSON, and relays 409s that say why and when', async () => {
  // Each CLI run is a new Node process: run the independent ones side by side.
  const [table, json, notAdmin] = await Promise.all([root('status', adminTokenFile), root('status', adminTokenFile, '--json'), root('prepare', userTokenFile, '--force')]);
  assert.equal(notAdmin.status, 1);
  assert.match(notAdmin.stderr, /rampart root: spiffe:\/\/cluster\.local\/ns\/rampart-system\/sa\/default is not an admin identity.*\[RAMPART_ERR_NOT_ADMIN\]/);
  assert.equal(table.status, 0, table.stderr);
  const state = readState(ca.stateDir);
  assert.equal(state.sequence, 1, 'the refused CLI call changed nothing');
  const first = state.roots[0]!;
  assert.match(table.stdout, /^trust domain cluster\.local, bundle sequence 1\n\nPHASE +GEN +FINGERPRINT +NOT AFTER +SOURCE +NOTE\n/);
  assert.match(table.stdout, new RegExp(`\\nactive +1 +${first.fingerprint.slice(0, 16)} +${new Date(first.notAfter).toISOString().replace(/\./g, '\\.')} +generated\\n`));
  assert.match(table.stdout, /signing intermediate valid until \S+ \(renews at \S+\)/);
  assert.match(table.stdout, /automatic schedule: prepare at \S+, activate at \S+/);
  assert.equal(json.status, 0, json.stderr);
  const parsed = JSON.parse(json.stdout);
  assert.equal(parsed.sequence, 1);
  assert.deepEqual(parsed.roots.map((r: { phase: string; fingerprint: string }) => [r.phase, r.fingerprint]), [['active', first.fingerprint]]);
  assert.match(parsed.roots[0].pem, /^-----BEGIN CERTIFICATE-----/);

  const token = await ca.token('rampart-system', 'rampart-admin');
  const prepared = await adminCall(ca.apiUrl, ca.rootCertPem(), token, 'prepare');
  assert.equal(prepared.status, 200, prepared.text);
  const twice = await adminCall(ca.apiUrl, ca.rootCertPem(), token, 'prepare');
  assert.equal(twice.status, 409);
  assert.equal(twice.body.error.code, 'RAMPART_ERR_ROTATION_NOT_ALLOWED');
  assert.match(twice.body.error.message, /was already prepared at \S+; activate it before preparing another/);
  const early = await adminCall(ca.apiUrl, ca.rootCertPem(), token, 'retire');
  assert.equal(early.status, 409);
  assert.match(early.body.error.message, /no root is retiring; activate a prepared root first/);

  // Default refresh interval (60 s): not propagated yet, and the message says until when.
  const [preparedTable, refused] = await Promise.all([root('status', adminTokenFile), root('activate', adminTokenFile)]);
  assert.match(preparedTable.stdout, /\nprepared +2 +[0-9a-f]{16} .* generated +propagation 0\/0 agents: not yet, 0 of 0 agents seen recently hold bundle sequence 2, but agents that poll slowly may not have asked yet: it was published at \S+Z and they get one refresh interval, until \S+Z\n/);
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /the new trust bundle may not have reached every agent yet: 0 of 0 agents seen recently hold bundle sequence 2, but agents that poll slowly may not have asked yet: it was published at \S+Z and they get one refresh interval, until \S+Z; retry then, or use --force \[RAMPART_ERR_ROTATION_NOT_ALLOWED\]/);

  const forced = await adminCall(ca.apiUrl, ca.rootCertPem(), token, 'activate', true);
  assert.equal(forced.status, 200, forced.text);
  assert.deepEqual(forced.body.roots.map((r: { phase: string }) => r.phase), ['retiring', 'active']);

  const notYet = await adminCall(ca.apiUrl, ca.rootCertPem(), token, 'retire');
  assert.equal(notYet.status, 409);
  assert.match(notYet.body.error.message, /leaves issued under the retiring root may be valid until \S+Z \(in 1d[0-5]m(\d+s)?\); retire then, or use --force/);
  const retiring = forced.body.roots.find((r: { phase: string }) => r.phase === 'retiring');
  assert.ok(notYet.body.error.message.includes(retiring.retireableAt), 'the 409 and the status agree on when');
  const table2 = await root('status', adminTokenFile);
  assert.match(table2.stdout, new RegExp(`\\nretiring +1 .* retire after ${retiring.retireableAt.replace(/\./g, '\\.')}\\n`));
});

test('a step whose connection breaks after the request went out says the CA may have taken it and to run root status first; a refused connection does not (outside QA)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-admin-cut-'));
  const ssl = await OpenSsl.create('rampart-admin-cut-');
  try {
    await ssl.run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost']);
    // Reads the whole request, then drops the connection without an answer, as a CA killed mid-step.
    const server = createTlsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (socket) => {
      let seen = '';
      socket.on('data', (d: Buffer) => {
        seen += d.toString();
        if (seen.includes('\r\n\r\n')) setTimeout(() => socket.destroy(), 50);
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const cut = await runCli(['root', 'prepare', '--ca-url', `https://localhost:${port}`, '--ca-bundle', join(dir, 'cert.pem'), '--token-file', adminTokenFile]);
      assert.equal(cut.status, 1, cut.stderr);
      assert.match(cut.stderr, /the prepare request had gone out before the connection broke, so the CA may have taken the step: run rampart root status before retrying \[RAMPART_ERR_CA_UNREACHABLE\]/);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    const refused = await runCli(['root', 'prepare', '--ca-url', `https://localhost:${port}`, '--ca-bundle', join(dir, 'cert.pem'), '--token-file', adminTokenFile]);
    assert.match(refused.stderr, /ECONNREFUSED/);
    assert.doesNotMatch(refused.stderr, /may have taken the step/);
  } finally {
    await ssl.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
