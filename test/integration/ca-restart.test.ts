/** The file store across restarts (DESIGN section 8): same root after a restart, one CA per state dir. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestCa, type TestCa } from '../helpers/ca.js';
import { spawnCli } from '../helpers/cli.js';
import { httpsJson } from '../helpers/https.js';
import { OpenSsl } from '../helpers/openssl.js';
import { eventually } from '../helpers/poll.js';
import { ManualClock } from '../../src/core/clock.js';
import { adminCall, readState } from './rotation-support.js';

function collect(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawnCli(args);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

test('restart on the same state dir keeps the root; a second CA process on it exits with RAMPART_ERR_STATE_LOCKED', async () => {
  const ssl = await OpenSsl.create('rampart-restart-');
  let ca = await startTestCa();
  const stateDir = ca.stateDir;
  try {
    const firstFingerprint = ca.runtime.current().activeRootFingerprint;
    const firstBundle = ca.rootCertPem();
    assert.equal(statSync(join(stateDir, 'state.json')).mode & 0o777, 0o600, 'state.json holds keys: 0600');

    // While it runs, another `rampart ca` on the same directory must refuse to start.
    const second = await collect(['ca', '--state-dir', stateDir, '--listen', '127.0.0.1:0', '--monitoring-listen', '127.0.0.1:0']);
    assert.notEqual(second.code, 0);
    assert.equal(second.code, 2, 'a configuration problem: exit 2');
    assert.match(second.stderr, /RAMPART_ERR_STATE_LOCKED/);
    assert.doesNotMatch(second.stderr, /\n\s+at /, 'no stack trace');
    // ...and the first one is unharmed.
    const still = await httpsJson(`${ca.apiUrl}/v1/trust-bundle`, { ca: firstBundle });
    assert.equal(still.status, 200);

    const tokenBefore = await ca.token('shop', 'cart');
    await ca.close({ keepState: true });
    ca = await startTestCa({}, { stateDir });
    assert.equal(ca.runtime.current().activeRootFingerprint, firstFingerprint, 'same root after restart');
    assert.equal(ca.rootCertPem(), firstBundle);
    const bundle = await httpsJson(`${ca.apiUrl}/v1/trust-bundle`, { ca: firstBundle });
    assert.equal(bundle.status, 200, 'the restarted CA is trusted by the old bundle');
    assert.equal(bundle.body.sequence, 1, 'a restart is no bundle change');
    assert.equal(bundle.body.roots[0].fingerprint, firstFingerprint);
    // Tokens minted before the restart still work (the dev issuer key persisted too).
    const { csrPem } = await ssl.keyAndCsr();
    const issued = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: firstBundle, token: tokenBefore, body: { csr: csrPem } });
    assert.equal(issued.status, 200, issued.text);
    const v = await ssl.verify({ rootsPem: firstBundle, untrustedPems: [issued.body.certChain[1]], leafPem: issued.body.certChain[0], purpose: 'sslclient' });
    assert.equal(v.code, 0, v.stderr);
  } finally {
    await ca.close();
    await ssl.close();
  }
});

/**
 * Starts a CA, lets `damage` harm its state dir while it runs (and check the repair), then
 * restarts a CA on the directory and checks it signs under the same root.
 */
async function damageThenRestart(damage: (ca: TestCa, statePath: string) => Promise<void>): Promise<void> {
  let ca = await startTestCa();
  const stateDir = ca.stateDir;
  try {
    const fingerprint = ca.runtime.current().activeRootFingerprint;
    await damage(ca, join(stateDir, 'state.json'));
    await ca.close({ keepState: true });
    ca = await startTestCa({}, { stateDir });
    assert.equal(ca.runtime.current().activeRootFingerprint, fingerprint, 'same root after restart');
  } finally {
    await ca.close();
  }
}

test('a state.json removed while the CA runs is written back, so a restart keeps the root', () =>
  damageThenRestart(async (ca, statePath) => {
    const before = readFileSync(statePath, 'utf8');
    rmSync(statePath);
    await eventually('state.json written back', () => existsSync(statePath), 15_000);
    // Deleted again at once, before the store's watch looks again: that must be noticed too.
    rmSync(statePath);
    await eventually('state.json written back a second time', () => existsSync(statePath), 15_000);
    assert.equal(readFileSync(statePath, 'utf8'), before);
    assert.equal(statSync(statePath).mode & 0o777, 0o600);
    assert.ok(ca.logLines.some((l) => l.includes('"event":"state-restored"')), 'the write-back is logged');
  }));

test('a state directory removed while the CA runs is re-created with its lock, state.json and root-cert.pem, so a restart keeps the root', () =>
  damageThenRestart(async (ca, statePath) => {
    const stateDir = ca.stateDir;
    const state = readFileSync(statePath, 'utf8');
    const bundle = ca.rootCertPem();
    rmSync(stateDir, { recursive: true, force: true });
    await eventually('state.json written back', () => existsSync(statePath), 15_000);
    assert.equal(readFileSync(statePath, 'utf8'), state);
    await eventually('root-cert.pem written back', () => existsSync(join(stateDir, 'root-cert.pem')) && readFileSync(join(stateDir, 'root-cert.pem'), 'utf8') === bundle, 15_000);
    assert.ok(existsSync(join(stateDir, 'ca.lock')), 'the lock is held again');
    assert.equal(statSync(stateDir).mode & 0o777, 0o700);
    assert.ok(!ca.logLines.some((l) => l.includes('"event":"state-restore-failed"')), 'no write-back failed');
    // A second CA on the directory is still refused: the lock is this one's again.
    const second = await collect(['ca', '--state-dir', stateDir, '--listen', '127.0.0.1:0', '--monitoring-listen', '127.0.0.1:0']);
    assert.equal(second.code, 2);
    assert.match(second.stderr, /RAMPART_ERR_STATE_LOCKED/);
  }));

test('the dev issuer\'s key and JWKS removed while the CA runs are written back as they were, so tokens minted before still work and `rampart token` makes no new key (outside QA)', async () => {
  const ca = await startTestCa();
  try {
    const keyPath = join(ca.stateDir, 'dev-issuer.key.pem');
    const jwksPath = join(ca.stateDir, 'dev-issuer.jwks.json');
    const before = await ca.token('shop', 'cart');
    const key = readFileSync(keyPath, 'utf8');
    const jwks = readFileSync(jwksPath, 'utf8');
    // The watch remembers them on its first tick after the start.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    rmSync(keyPath);
    rmSync(jwksPath);
    await eventually('both written back, and said so', () => existsSync(keyPath) && existsSync(jwksPath) && ca.logLines.filter((l) => l.includes('"event":"file-restored"')).length === 2, 15_000);
    assert.equal(readFileSync(keyPath, 'utf8'), key);
    assert.equal(readFileSync(jwksPath, 'utf8'), jwks);
    assert.equal(statSync(keyPath).mode & 0o777, 0o600, 'the key stays private');
    const minted = await collect(['token', '--namespace', 'shop', '--service-account', 'cart', '--state-dir', ca.stateDir]);
    assert.equal(minted.code, 0, minted.stderr);
    assert.equal(minted.stderr, '', 'no new issuer key');
    const ssl = await OpenSsl.create('rampart-dev-kept-');
    try {
      for (const token of [before, minted.stdout.trim()]) {
        const { csrPem } = await ssl.keyAndCsr();
        const res = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), token, body: { csr: csrPem } });
        assert.equal(res.status, 200, res.text);
      }
    } finally {
      await ssl.close();
    }
    assert.ok(!ca.logLines.some((l) => l.includes('key.pem') && /BEGIN|PRIVATE/.test(l)), 'no key material in the logs');
  } finally {
    await ca.close();
  }
});

test('a state.json truncated or hand-broken while the CA runs is written back; one from a newer schema is left alone', () =>
  damageThenRestart(async (ca, statePath) => {
    const before = readFileSync(statePath, 'utf8');
    const restoredCount = (): number => ca.logLines.filter((l) => l.includes('"event":"state-restored"')).length;
    // Truncated mid-write (not JSON), then valid JSON with a field gone: both would stop a restart.
    for (const broken of [before.slice(0, before.length >> 1), JSON.stringify({ ...JSON.parse(before), roots: 'gone' })]) {
      const restoredBefore = restoredCount();
      writeFileSync(statePath, broken, { mode: 0o600 });
      await eventually('state.json written back', () => readFileSync(statePath, 'utf8') === before, 15_000);
      // The file is in place a moment before the CA logs it (the directory fsync comes between).
      await eventually('the write-back is logged', () => restoredCount() > restoredBefore, 15_000);
      assert.equal(restoredCount(), restoredBefore + 1, 'each write-back is logged once');
    }
    const restored = ca.logLines.filter((l) => l.includes('"event":"state-restored"')).at(-1) ?? '';
    assert.match(restored, /"found":"unreadable content"/);
    assert.doesNotMatch(restored, /PRIVATE KEY/, 'no key material in the log');

    // A newer Rampart's state (a rolling upgrade) is not this CA's to overwrite.
    const newer = JSON.stringify({ ...JSON.parse(before), schemaVersion: 2 });
    writeFileSync(statePath, newer, { mode: 0o600 });
    await eventually('the newer state is reported', () => ca.logLines.some((l) => l.includes('"event":"state-unreadable"')), 15_000);
    assert.equal(readFileSync(statePath, 'utf8'), newer, 'left as the newer version wrote it');
    writeFileSync(statePath, before, { mode: 0o600 });
  }));


test('a rotation step sent while state.json is unreadable waits for the write-back and is taken on it', async () => {
  const ca = await startTestCa();
  try {
    const statePath = join(ca.stateDir, 'state.json');
    const before = readFileSync(statePath, 'utf8');
    const token = await ca.token('rampart-system', 'rampart-admin');
    // Truncated, and the step sent at once: the store's watch has not looked yet (it polls every 2 s).
    writeFileSync(statePath, before.slice(0, before.length >> 1), { mode: 0o600 });
    const prepared = await adminCall(ca.apiUrl, ca.rootCertPem(), token, 'prepare');
    assert.equal(prepared.status, 200, prepared.text);
    const state = readState(ca.stateDir);
    assert.equal(state.sequence, 2, 'the step was saved over the written-back state');
    assert.deepEqual(state.roots.map((r) => r.phase).sort(), ['active', 'prepared']);
    assert.ok(ca.logLines.some((l) => l.includes('"event":"state-restored"') && l.includes('"found":"unreadable content"')), 'the write-back is logged');

    // A newer Rampart's state is never written back, so the step gives up and changes nothing.
    const prepared2 = readFileSync(statePath, 'utf8');
    const newer = JSON.stringify({ ...JSON.parse(prepared2), schemaVersion: 2 });
    writeFileSync(statePath, newer, { mode: 0o600 });
    const activated = await adminCall(ca.apiUrl, ca.rootCertPem(), token, 'activate', true);
    assert.equal(activated.status, 503, activated.text);
    assert.equal(activated.body.error.code, 'RAMPART_ERR_NOT_READY');
    assert.match(activated.body.error.message, /step "activate" was not taken, retry/);
    assert.ok(Number(activated.headers['retry-after']) > 0, 'Retry-After is set');
    assert.equal(readFileSync(statePath, 'utf8'), newer, 'left as the newer version wrote it');
    writeFileSync(statePath, prepared2, { mode: 0o600 });
  } finally {
    await ca.close();
  }
});

test('root-cert.pem removed or overwritten while the CA runs is written back; one touched but intact is left alone', async () => {
  const ca = await startTestCa();
  try {
    const bundlePath = join(ca.stateDir, 'root-cert.pem');
    const bundle = ca.rootCertPem();
    const restoredCount = (): number => ca.logLines.filter((l) => l.includes('"event":"bundle-file-restored"')).length;
    rmSync(bundlePath);
    await eventually('root-cert.pem written back', () => existsSync(bundlePath) && readFileSync(bundlePath, 'utf8') === bundle, 15_000);
    writeFileSync(bundlePath, 'not a bundle\n');
    await eventually('root-cert.pem written back over other content', () => readFileSync(bundlePath, 'utf8') === bundle, 15_000);
    await eventually('both write-backs logged', () => restoredCount() === 2, 15_000);
    assert.equal(statSync(bundlePath).mode & 0o777, 0o644);
    // Rewritten with the same bytes (a new inode and mtime): nothing to restore.
    rmSync(bundlePath);
    writeFileSync(bundlePath, bundle, { mode: 0o644 });
    await new Promise((resolve) => setTimeout(resolve, 4_500));
    assert.equal(restoredCount(), 2, 'an intact bundle file is not rewritten');
    // The state itself was never touched.
    assert.ok(!ca.logLines.some((l) => l.includes('"event":"state-restored"')));
  } finally {
    await ca.close();
  }
});

test('a state put back from an older backup: the first agent report of a newer sequence moves the sequence past it, so the next change reuses no number agents hold (outside QA)', async () => {
  const ssl = await OpenSsl.create('rampart-restore-');
  let ca = await startTestCa();
  const stateDir = ca.stateDir;
  try {
    const admin = await ca.token('rampart-system', 'rampart-admin');
    const token = await ca.token('shop', 'cart');
    assert.equal((await adminCall(ca.apiUrl, ca.rootCertPem(), admin, 'prepare')).status, 200);
    const backup = readFileSync(join(stateDir, 'state.json'));
    assert.equal(JSON.parse(backup.toString()).sequence, 2);
    assert.equal((await adminCall(ca.apiUrl, ca.rootCertPem(), admin, 'activate', true)).status, 200);
    const agentHolds = ca.runtime.current().bundle.sequence;
    assert.equal(agentHolds, 3);
    await ca.close({ keepState: true });
    writeFileSync(join(stateDir, 'state.json'), backup, { mode: 0o600 });
    ca = await startTestCa({}, { stateDir });
    assert.equal(ca.runtime.current().bundle.sequence, 2, 'the backup as it was');

    // An agent that held sequence 3 renews and says so.
    const { csrPem } = await ssl.keyAndCsr();
    const renewed = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), token, body: { csr: csrPem }, headers: { 'rampart-bundle-sequence': String(agentHolds), 'rampart-agent-id': 'pod-1' } });
    assert.equal(renewed.status, 200, renewed.text);
    const warning = await eventually('the sequence moves past the agent\'s, with a warning', () =>
      ca.runtime.current().bundle.sequence === agentHolds + 1 && ca.logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['event'] === 'sequence-behind-agents'),
    );
    assert.equal(readState(stateDir).sequence, agentHolds + 1, 'written to the store');
    assert.deepEqual([warning['reported'], warning['sequence'], warning['next']], [3, 2, 4]);
    // The bundle itself is the backup's; the next rotation step gets a number no agent has seen.
    assert.equal(ca.runtime.current().bundle.roots.length, 2);
    const next = await adminCall(ca.apiUrl, ca.rootCertPem(), admin, 'activate', true);
    assert.equal(next.status, 200, next.text);
    assert.equal(ca.runtime.current().bundle.sequence, agentHolds + 2);
  } finally {
    await ca.close();
    await ssl.close();
  }
});

test('a sequence past the CA\'s is believed only when most identities seen recently hold it: one workload\'s made-up reports move nothing (outside QA)', async () => {
  const clock = new ManualClock(Date.now());
  const ca = await startTestCa({}, { clock });
  try {
    const id = (sa: string, pod: string) => `spiffe://cluster.local/ns/shop/sa/${sa}#${pod}@127.0.0.1`;
    ca.runtime.reportAgentSequence(id('web', 'a'), 1);
    ca.runtime.reportAgentSequence(id('db', 'b'), 1);
    // One identity, however many agents it invents, is a minority.
    for (let i = 0; i < 50; i++) ca.runtime.reportAgentSequence(`spiffe://cluster.local/ns/evil/sa/x#p${i}@127.0.0.1`, 500);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(ca.runtime.current().bundle.sequence, 1);
    assert.ok(ca.logLines.some((l) => l.includes('"agent-sequence-ahead"')), 'the minority is logged');
    assert.ok(!ca.logLines.some((l) => l.includes('"sequence-behind-agents"')));
    // Once most identities hold 7 (a restored backup), the sequence moves past 7, not to the minority's 500.
    clock.advance(5_000);
    ca.runtime.reportAgentSequence(id('web', 'a'), 7);
    ca.runtime.reportAgentSequence(id('db', 'b'), 7);
    await eventually('moved past 7', () => ca.runtime.current().bundle.sequence === 8);
  } finally {
    await ca.close();
  }
});

test('a lock file removed while the CA runs is written back within a watch tick, so a second CA on the directory is still refused (outside QA)', async () => {
  const ca = await startTestCa();
  try {
    const lockPath = join(ca.stateDir, 'ca.lock');
    const held = readFileSync(lockPath, 'utf8');
    rmSync(lockPath);
    await eventually('the lock is back, and said so', () => existsSync(lockPath) && readFileSync(lockPath, 'utf8') === held && ca.logLines.some((l) => l.includes('"lock-restored"')), 10_000);
    const second = await collect(['ca', '--state-dir', ca.stateDir, '--listen', '127.0.0.1:0', '--monitoring-listen', '127.0.0.1:0']);
    assert.equal(second.code, 2);
    assert.match(second.stderr, /RAMPART_ERR_STATE_LOCKED/);
  } finally {
    await ca.close();
  }
});

test('a start beside an earlier CA\'s root-cert.pem but no state.json warns, naming the earlier roots, before it makes a new one (outside QA)', async () => {
  let ca = await startTestCa();
  const stateDir = ca.stateDir;
  try {
    const earlier = ca.runtime.current().activeRootFingerprint;
    await ca.close({ keepState: true });
    rmSync(join(stateDir, 'state.json'));
    ca = await startTestCa({}, { stateDir });
    const warning = ca.logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['event'] === 'earlier-bundle-without-state');
    assert.ok(warning, 'warned');
    assert.equal(warning['level'], 'warn');
    assert.deepEqual(warning['earlierRoots'], [earlier]);
    assert.match(String(warning['msg']), /creates a new root that every agent must learn.*put state\.json back from a backup/);
    assert.notEqual(ca.runtime.current().activeRootFingerprint, earlier);
  } finally {
    await ca.close();
  }
});
