/**
 * Plugged-in CA (Istio `cacerts`): an offline root and intermediate made with openssl. Leaves
 * chain to that root under `openssl verify -x509_strict`; bad files are refused with
 * RAMPART_ERR_PLUGGED_CA_INVALID (exit 2 from the CLI); a new plugged-in CA enters as `prepared`
 * and then goes through activate and retire like any other root.
 */
import { X509Certificate } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { strict as assert } from 'node:assert';
import { after, before, test } from 'node:test';
import { createKeyAndCsr } from '../../src/agent/csr.js';
import { ManualClock } from '../../src/core/clock.js';
import { isRampartError } from '../../src/core/errors.js';
import { formatStatus } from '../../src/cli/commands/root.js';
import { startTestCa, type TestCa } from '../helpers/ca.js';
import { httpsJson } from '../helpers/https.js';
import { OpenSsl } from '../helpers/openssl.js';
import { adminCall, assertConsistentDir, pemFingerprints, runCli } from './rotation-support.js';

let ssl: OpenSsl;
let scratch: string;

before(async () => {
  ssl = await OpenSsl.create('rampart-plugged-');
  scratch = mkdtempSync(join(tmpdir(), 'rampart-plugged-state-'));
});

after(async () => {
  await ssl?.close();
  rmSync(scratch, { recursive: true, force: true });
});

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

/** A self-signed offline root; returns the file names of its cert and key. */
async function offlineRoot(name: string, days = 3650): Promise<{ cert: string; key: string }> {
  const cert = `${name}-cert.pem`;
  const key = `${name}-key.pem`;
  await ssl.run(['req', '-x509', ...EC, '-keyout', key, '-out', cert, '-subj', `/O=Offline ${name}/CN=${name}`, '-days', String(days),
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return { cert, key };
}

/** A certificate signed by `issuer`; `ca` picks CA or leaf extensions. */
async function signed(name: string, issuer: { cert: string; key: string }, kind: { ca: boolean; pathLen?: number; san?: string; extra?: string; days?: number }): Promise<{ cert: string; key: string }> {
  const cert = `${name}-cert.pem`;
  const key = `${name}-key.pem`;
  await ssl.run(['req', '-new', ...EC, '-keyout', key, '-out', `${name}.csr`, '-subj', `/O=Offline/CN=${name}`]);
  const ext = kind.ca
    ? `basicConstraints=critical,CA:TRUE${kind.pathLen === undefined ? '' : `,pathlen:${kind.pathLen}`}\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\nsubjectAltName=URI:${kind.san ?? 'spiffe://cluster.local'}\n${kind.extra ?? ''}`
    : 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n';
  await ssl.write(`${name}.ext`, ext);
  await ssl.run(['x509', '-req', '-in', `${name}.csr`, '-CA', issuer.cert, '-CAkey', issuer.key, '-CAcreateserial', '-days', String(kind.days ?? 365), '-extfile', `${name}.ext`, '-out', cert]);
  return { cert, key };
}

/** Writes an Istio `cacerts` directory. */
function cacerts(dir: string, files: { caCert: string; caKey: string; chain: string[]; root: string }): string {
  const path = join(scratch, dir);
  mkdirSync(path, { recursive: true });
  const read = (f: string): string => readFileSync(ssl.path(f), 'utf8');
  writeFileSync(join(path, 'ca-cert.pem'), read(files.caCert));
  writeFileSync(join(path, 'ca-key.pem'), read(files.caKey), { mode: 0o600 });
  writeFileSync(join(path, 'cert-chain.pem'), files.chain.map(read).join(''));
  writeFileSync(join(path, 'root-cert.pem'), read(files.root));
  return path;
}

/** An offline root with one intermediate below it, written as the cacerts directory `name`. */
async function offlineCa(name: string): Promise<{ root: { cert: string; key: string }; dir: string }> {
  const root = await offlineRoot(`root-${name}`);
  const inter = await signed(`inter-${name}`, root, { ca: true, pathLen: 0 });
  return { root, dir: cacerts(name, { caCert: inter.cert, caKey: inter.key, chain: [inter.cert, root.cert], root: root.cert }) };
}

/** The CA's log lines with event `name`, parsed. */
function events(ca: TestCa, name: string): Array<Record<string, unknown>> {
  return ca.logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['event'] === name);
}

/** Issues a fresh leaf from `ca`; returns its chain (leaf first). */
async function issueChain(ca: TestCa): Promise<string[]> {
  const { csrPem } = createKeyAndCsr();
  const res = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), token: await ca.token('shop', 'web'), body: { csr: csrPem } });
  assert.equal(res.status, 200, res.text);
  return res.body.certChain as string[];
}

/** Issues a leaf from `ca` and checks it with openssl against `rootFile` only. */
async function issueAndVerify(ca: TestCa, rootFile: string, intermediates: number): Promise<void> {
  const chain = await issueChain(ca);
  assert.equal(chain.length, 1 + intermediates, 'leaf plus every intermediate up to the root');
  const verdict = await ssl.verify({ rootsPem: readFileSync(ssl.path(rootFile), 'utf8'), leafPem: chain[0]!, untrustedPems: chain.slice(1), purpose: 'sslclient' });
  assert.equal(verdict.code, 0, verdict.stderr + verdict.stdout);
  assert.match(verdict.stdout, /OK/);
}

async function refusal(dir: string): Promise<string> {
  const state = mkdtempSync(join(scratch, 'refused-'));
  try {
    await startTestCa({ 'plugged-ca': dir }, { stateDir: state });
  } catch (err) {
    assert.ok(isRampartError(err), String(err));
    assert.equal(err.code, 'RAMPART_ERR_PLUGGED_CA_INVALID');
    return err.message;
  }
  assert.fail('the plugged-in CA was accepted');
}

test('a plugged-in CA (one and two levels below an offline root) issues leaves that openssl verifies strictly', async () => {
  const root = await offlineRoot('root-a');
  const inter = await signed('inter-a', root, { ca: true, pathLen: 0 });
  const dirA = cacerts('a', { caCert: inter.cert, caKey: inter.key, chain: [inter.cert, root.cert], root: root.cert });
  const ca = await startTestCa({ 'plugged-ca': dirA }, { stateDir: join(scratch, 'state-one') });
  try {
    const state = assertConsistentDir(ca.stateDir);
    assert.equal(state.roots[0]!.plugged, true);
    assert.equal(state.roots[0]!.keyPem, null, 'the offline root key is never held');
    // No root was created: the log says which plugged-in CA was loaded.
    assert.deepEqual(events(ca, 'root-created'), []);
    assert.deepEqual(
      events(ca, 'plugged-ca-loaded').map((l) => [l['fingerprint'], l['phase'], l['newState']]),
      [[state.roots[0]!.fingerprint, 'active', true]],
    );
    assert.deepEqual(pemFingerprints(ca.rootCertPem()), pemFingerprints(readFileSync(ssl.path(root.cert), 'utf8')));
    await issueAndVerify(ca, root.cert, 1);
  } finally {
    await ca.close();
  }

  const mid = await signed('mid-b', root, { ca: true, pathLen: 1 });
  const low = await signed('low-b', mid, { ca: true, pathLen: 0 });
  const dirB = cacerts('b', { caCert: low.cert, caKey: low.key, chain: [low.cert, mid.cert, root.cert], root: root.cert });
  const deep = await startTestCa({ 'plugged-ca': dirB }, { stateDir: join(scratch, 'state-two') });
  try {
    await issueAndVerify(deep, root.cert, 2);
  } finally {
    await deep.close();
  }
});

test('bad plugged-in CA files are refused with RAMPART_ERR_PLUGGED_CA_INVALID; the CLI exits 2', async () => {
  const root = await offlineRoot('root-c');
  const other = await offlineRoot('root-other');
  const inter = await signed('inter-c', root, { ca: true, pathLen: 0 });
  const stranger = await signed('inter-stranger', other, { ca: true, pathLen: 0 });
  const leaf = await signed('leaf-c', root, { ca: false });

  const wrongKey = cacerts('wrong-key', { caCert: inter.cert, caKey: stranger.key, chain: [inter.cert], root: root.cert });
  const cli = await runCli(['ca', '--plugged-ca', wrongKey, '--state-dir', join(scratch, 'cli-state'), '--listen', '127.0.0.1:0', '--monitoring-listen', '127.0.0.1:0']);
  assert.equal(cli.status, 2, cli.stderr);
  assert.match(cli.stderr, /plugged-in CA refused: ca-key\.pem does not match the public key of ca-cert\.pem \[RAMPART_ERR_PLUGGED_CA_INVALID\]/);

  assert.match(await refusal(wrongKey), /ca-key\.pem does not match/);
  assert.match(await refusal(cacerts('other-root', { caCert: stranger.cert, caKey: stranger.key, chain: [stranger.cert], root: root.cert })), /do not verify up to root-cert\.pem/);
  assert.match(await refusal(cacerts('not-ca', { caCert: leaf.cert, caKey: leaf.key, chain: [leaf.cert], root: root.cert })), /ca-cert\.pem basicConstraints cA is not true: the certificate is not a CA/);
  assert.match(await refusal(cacerts('root-not-root', { caCert: inter.cert, caKey: inter.key, chain: [], root: inter.cert })), /root-cert\.pem is not a self-signed root/);

  // Chains openssl itself would refuse to verify leaves under, or whose leaves could not do mTLS.
  const capped = await signed('mid-capped', root, { ca: true, pathLen: 0 });
  const below = await signed('low-capped', capped, { ca: true, pathLen: 0 });
  assert.match(await refusal(cacerts('pathlen', { caCert: below.cert, caKey: below.key, chain: [below.cert, capped.cert, root.cert], root: root.cert })), /cert-chain\.pem certificate 1 allows 0 CA certificate\(s\) below it \(pathLenConstraint\) but 1 sit below it/);
  const serverOnly = await signed('inter-server-only', root, { ca: true, pathLen: 0, extra: 'extendedKeyUsage=serverAuth\n' });
  assert.match(await refusal(cacerts('eku', { caCert: serverOnly.cert, caKey: serverOnly.key, chain: [serverOnly.cert], root: root.cert })), /ca-cert\.pem restricts extendedKeyUsage without both serverAuth and clientAuth/);
  const both = await signed('inter-both-eku', root, { ca: true, pathLen: 0, extra: 'extendedKeyUsage=serverAuth,clientAuth\n' });
  const ok = await startTestCa({ 'plugged-ca': cacerts('eku-both', { caCert: both.cert, caKey: both.key, chain: [both.cert], root: root.cert }) }, { stateDir: join(scratch, 'state-eku-both') });
  await ok.close();
  const foreign = await signed('inter-foreign-td', root, { ca: true, pathLen: 0, san: 'spiffe://evil.example' });
  assert.match(await refusal(cacerts('wrong-td', { caCert: foreign.cert, caKey: foreign.key, chain: [foreign.cert], root: root.cert })), /ca-cert\.pem names spiffe:\/\/evil\.example but this CA's trust domain is spiffe:\/\/cluster\.local/);
});

test('moving to a new plugged-in CA goes prepared -> active -> retiring -> removed', async () => {
  const { root: rootA, dir: dirA } = await offlineCa('d');
  const { root: rootB, dir: dirB } = await offlineCa('e');
  const stateDir = join(scratch, 'state-move');

  const first = await startTestCa({ 'plugged-ca': dirA }, { stateDir });
  await first.close({ keepState: true });

  const ca = await startTestCa({ 'plugged-ca': dirB }, { stateDir });
  try {
    let state = assertConsistentDir(stateDir);
    assert.deepEqual(state.roots.map((r) => [r.phase, r.plugged]), [['active', true], ['prepared', true]]);
    assert.ok(ca.logLines.some((l) => l.includes('the plugged-in CA differs from the stored roots')));
    assert.deepEqual(events(ca, 'plugged-ca-loaded').map((l) => [l['fingerprint'], l['phase'], l['newState']]), [[state.roots[1]!.fingerprint, 'prepared', false]]);
    assert.ok(ca.logLines.some((l) => l.includes('"event":"rotation-prepare"')));
    // Still signing under A until activation, but B is trusted already.
    await issueAndVerify(ca, rootA.cert, 1);
    const admin = await ca.token('rampart-system', 'rampart-admin');

    const activated = await adminCall(ca.apiUrl, ca.rootCertPem(), admin, 'activate', true);
    assert.equal(activated.status, 200, activated.text);
    state = assertConsistentDir(stateDir);
    assert.deepEqual(state.roots.map((r) => r.phase), ['retiring', 'active']);
    await issueAndVerify(ca, rootB.cert, 1);

    const early = await adminCall(ca.apiUrl, ca.rootCertPem(), admin, 'retire');
    assert.equal(early.status, 409);
    assert.match(early.body.error.message, /may be valid until \d{4}-\d\d-\d\dT[\d:.]+Z \(in 1d[0-5]m(\d+s)?\); retire then, or use --force/);
    const retired = await adminCall(ca.apiUrl, ca.rootCertPem(), admin, 'retire', true);
    assert.equal(retired.status, 200, retired.text);
    state = assertConsistentDir(stateDir);
    assert.deepEqual(state.roots.map((r) => r.fingerprint), pemFingerprints(readFileSync(ssl.path(rootB.cert), 'utf8')));
  } finally {
    await ca.close({ keepState: true });
  }
  // Starting again with the same plugged-in CA changes nothing.
  const again = await startTestCa({ 'plugged-ca': dirB }, { stateDir });
  try {
    assert.deepEqual(assertConsistentDir(stateDir).roots.map((r) => r.phase), ['active']);
    assert.deepEqual(events(again, 'plugged-ca-loaded').map((l) => [l['phase'], l['newState']]), [['active', false]]);
    assert.deepEqual(events(again, 'root-created'), []);
  } finally {
    await again.close();
  }
});

/** The issuing intermediate of a fresh leaf (the certificate right above it in the chain). */
async function issuerOfNewLeaf(ca: TestCa): Promise<string> {
  return (await issueChain(ca))[1]!;
}

test('an intermediate renewed by the operator in the plugged-in files is picked up live and across restarts', async () => {
  const root = await offlineRoot('root-f');
  const first = await signed('inter-f1', root, { ca: true, pathLen: 0 });
  const second = await signed('inter-f2', root, { ca: true, pathLen: 0 });
  const third = await signed('inter-f3', root, { ca: true, pathLen: 0 });
  const dir = cacerts('f', { caCert: first.cert, caKey: first.key, chain: [first.cert, root.cert], root: root.cert });
  const stateDir = join(scratch, 'state-renew');
  const pem = (f: string): string => readFileSync(ssl.path(f), 'utf8');
  const sameCert = (a: string, b: string): boolean => pemFingerprints(a)[0] === pemFingerprints(b)[0];

  const ca = await startTestCa({ 'plugged-ca': dir }, { stateDir });
  try {
    const sequence = assertConsistentDir(stateDir).sequence;
    assert.ok(sameCert(await issuerOfNewLeaf(ca), pem(first.cert)));

    // Half-way through the operator's update the new certificate does not match the old key:
    // refused, and the CA keeps signing with the intermediate it has.
    writeFileSync(join(dir, 'ca-cert.pem'), pem(second.cert));
    await ca.runtime.tick();
    assert.ok(ca.logLines.some((l) => l.includes('plugged-in CA files changed but were refused') && l.includes('ca-key.pem does not match')));
    assert.ok(sameCert(await issuerOfNewLeaf(ca), pem(first.cert)));

    writeFileSync(join(dir, 'ca-key.pem'), pem(second.key), { mode: 0o600 });
    writeFileSync(join(dir, 'cert-chain.pem'), pem(second.cert) + pem(root.cert));
    await ca.runtime.tick();
    assert.ok(ca.logLines.some((l) => l.includes('"event":"plugged-intermediate-replaced"')));
    assert.ok(sameCert(await issuerOfNewLeaf(ca), pem(second.cert)));
    await issueAndVerify(ca, root.cert, 1);
    const state = assertConsistentDir(stateDir);
    assert.equal(state.sequence, sequence, 'the bundle did not change: same root');
    assert.ok(sameCert(state.roots[0]!.intermediate.certPem, pem(second.cert)));
    assert.equal(ca.logLines.join('\n').includes(pem(second.key).split('\n')[1]!), false, 'no key material in the logs');
  } finally {
    await ca.close({ keepState: true });
  }

  // Renewed while the CA was down: the next start signs with the new one.
  writeFileSync(join(dir, 'ca-cert.pem'), pem(third.cert));
  writeFileSync(join(dir, 'ca-key.pem'), pem(third.key), { mode: 0o600 });
  writeFileSync(join(dir, 'cert-chain.pem'), pem(third.cert) + pem(root.cert));
  const again = await startTestCa({ 'plugged-ca': dir }, { stateDir });
  try {
    assert.ok(sameCert(await issuerOfNewLeaf(again), pem(third.cert)));
    assert.deepEqual(assertConsistentDir(stateDir).roots.map((r) => [r.phase, r.plugged]), [['active', true]]);
  } finally {
    await again.close();
  }
});

test('a new root in the plugged-in files while the CA runs enters the bundle as prepared, once', async () => {
  const { root: rootG, dir } = await offlineCa('g');
  // H's files are copied over G's directory while the CA runs.
  const { root: rootH, dir: dirH } = await offlineCa('h');
  const ca = await startTestCa({ 'plugged-ca': dir }, { stateDir: join(scratch, 'state-live-root') });
  try {
    const before = assertConsistentDir(ca.stateDir).sequence;
    cpSync(dirH, dir, { recursive: true });
    await ca.runtime.tick();
    await ca.runtime.tick();
    const state = assertConsistentDir(ca.stateDir);
    assert.deepEqual(state.roots.map((r) => [r.phase, r.plugged]), [['active', true], ['prepared', true]]);
    assert.equal(state.sequence, before + 1, 'one bundle change for two ticks');
    assert.deepEqual(pemFingerprints(ca.rootCertPem()), [...pemFingerprints(readFileSync(ssl.path(rootG.cert), 'utf8')), ...pemFingerprints(readFileSync(ssl.path(rootH.cert), 'utf8'))]);
    assert.equal(ca.logLines.filter((l) => l.includes('it was added as a prepared root')).length, 1);
    // Signing stays under the active root until an admin activates the new one.
    await issueAndVerify(ca, rootG.cert, 1);
  } finally {
    await ca.close();
  }
});

test('root status of a plugged-in CA says it is plugged in and when its chain ends, with no renewal or automatic prepare that would never run', async () => {
  const root = await offlineRoot('root-s', 60);
  const inter = await signed('inter-s', root, { ca: true, pathLen: 0, days: 50 });
  const dir = cacerts('s', { caCert: inter.cert, caKey: inter.key, chain: [inter.cert, root.cert], root: root.cert });
  const chainEnd = new Date(Date.parse(new X509Certificate(readFileSync(ssl.path(inter.cert))).validTo)).toISOString();
  const stateDir = join(scratch, 'state-status');

  // Through the admin API and the CLI, as an operator reads it.
  const ca = await startTestCa({ 'plugged-ca': dir }, { stateDir });
  try {
    const admin = await ca.token('rampart-system', 'rampart-admin');
    const tokenFile = join(scratch, 'status-admin.token');
    writeFileSync(tokenFile, admin, { mode: 0o600 });
    const api = await adminCall(ca.apiUrl, ca.rootCertPem(), admin, 'status');
    assert.equal(api.status, 200, api.text);
    assert.deepEqual(api.body.intermediate, { notAfter: chainEnd, renewAt: null, plugged: true });
    assert.equal(api.body.schedule.prepareAt, null);
    const cli = await runCli(['root', 'status', '--ca-url', ca.apiUrl, '--ca-bundle', join(stateDir, 'root-cert.pem'), '--token-file', tokenFile]);
    assert.equal(cli.status, 0, cli.stderr);
    assert.match(cli.stdout, /^plugged-in CA: the operator supplies the root and intermediate \(--plugged-ca\); the CA renews neither$/m);
    assert.match(cli.stdout, new RegExp(`^plugged-in chain valid until ${chainEnd.replace(/\./g, '\\.')} \\(its first expiry\\): replace ca-cert\\.pem and ca-key\\.pem before then$`, 'm'));
    assert.match(cli.stdout, /^automatic schedule: no new root is prepared for a plugged-in root \(plug in its successor\); a root prepared meanwhile is activated from \S+$/m);
    assert.doesNotMatch(cli.stdout, /renews at|prepare at/);
  } finally {
    await ca.close();
  }

  // 40 days on, a generated root of this 60-day life would be due for its successor (30 days
  // before its end); a plugged-in one is not, and the status must not say it is.
  const later = await startTestCa({ 'plugged-ca': dir }, { stateDir, clock: new ManualClock(Date.now() + 40 * 86_400_000) });
  try {
    await later.runtime.tick();
    const status = later.runtime.status();
    assert.equal(status.nextStep, null);
    assert.deepEqual(assertConsistentDir(stateDir).roots.map((r) => r.phase), ['active'], 'and the CA prepared nothing');
    assert.doesNotMatch(formatStatus(status), /next automatic step|renews at|prepare at/);
  } finally {
    await later.close();
  }
});
