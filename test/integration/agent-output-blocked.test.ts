/**
 * An entry in the way of the output swap (a directory named root-cert.pem): each failed write
 * used to leave another generation directory and temp link behind while /readyz said ready,
 * though the files on disk never held the certificate (outside QA). Now a failed write cleans
 * up after itself, the agent is not ready while the disk is stale, and it retries until a
 * write succeeds.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestCa, type TestCa } from '../helpers/ca.js';
import { eventually, monitoring, startTestAgent } from './agent-support.js';

let ca: TestCa;
let work: string;

before(async () => {
  ca = await startTestCa();
  work = mkdtempSync(join(tmpdir(), 'rampart-output-blocked-'));
});
after(async () => {
  rmSync(work, { recursive: true, force: true });
  await ca.close();
});

test('a directory in the way: failed writes leave nothing behind, /readyz is not ready and says why, and it recovers once the way is clear', { timeout: 120_000 }, async () => {
  const outDir = join(work, 'out');
  mkdirSync(join(outDir, 'root-cert.pem'), { recursive: true });
  // Short backoff bounds keep the retries quick; the policy itself is covered by unit tests.
  const t = await startTestAgent(ca, 'shop', 'blocked', { 'out-dir': outDir }, { retry: { baseMs: 100, maxMs: 500 } });
  try {
    const failedWrites = (): Array<Record<string, unknown>> => t.logs.lines.filter((l) => l['event'] === 'output-write-failed');
    const failed = await eventually('a failed write', () => failedWrites()[0]);

    const readyz = await monitoring(t.agent, '/readyz');
    assert.equal(readyz.status, 503, 'not ready while the files on disk do not hold the certificate');
    const body = JSON.parse(readyz.body) as { status: string; reason: string };
    assert.equal(body.status, 'not-ready');
    assert.match(body.reason, /does not hold the current certificate: .*root-cert\.pem is a directory/);
    assert.ok(t.agent.manager.ready(), 'the certificate itself is held and valid: the proxy keeps using it');
    assert.match(String(failed['error']), /root-cert\.pem is a directory where the agent keeps a symlink; remove it/);

    // The write is retried, and no attempt leaves anything behind: no generation directory, no temp link.
    await eventually('more failed writes', () => failedWrites().length >= 3);
    assert.deepEqual(readdirSync(outDir), ['root-cert.pem']);
    assert.equal((await monitoring(t.agent, '/readyz')).status, 503);

    rmdirSync(join(outDir, 'root-cert.pem'));
    await eventually('/readyz to turn ready once a write succeeds', async () => (await monitoring(t.agent, '/readyz')).status === 200, 30_000);
    const held = t.agent.manager.current();
    assert.equal(readFileSync(join(outDir, 'cert-chain.pem'), 'utf8'), held?.certChainPem);
    assert.equal(readFileSync(join(outDir, 'key.pem'), 'utf8'), held?.keyPem);
    assert.equal(readFileSync(join(outDir, 'root-cert.pem'), 'utf8'), held?.bundlePem);
    assert.ok(t.logs.lines.some((l) => l['event'] === 'output-write-recovered'));
    assert.equal(readdirSync(outDir).filter((n) => /^\.\.\d/.test(n)).length, 1, 'one generation directory');
    assert.deepEqual(readdirSync(outDir).filter((n) => n.endsWith('.tmp') || n === '..data_tmp'), []);
  } finally {
    await t.close();
  }
});
