/**
 * A retiring root stays in the bundle until the longest leaf it signed has expired, even when the
 * CA was restarted with a lower --max-ttl before the rotation (found from outside: a 24 h leaf lost
 * its root ten minutes after activate, because only the max TTL in force at activation counted).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../src/core/clock.js';
import { RETIRE_MARGIN_MS } from '../../src/core/ca/rotation.js';
import { validateState } from '../../src/store/state-codec.js';
import { startTestCa } from '../helpers/ca.js';
import { httpsJson } from '../helpers/https.js';
import { OpenSsl } from '../helpers/openssl.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

test('lowering --max-ttl across a restart does not let the old root retire before its longest leaf expires', { timeout: 120_000 }, async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'rampart-ceiling-'));
  const ssl = await OpenSsl.create('rampart-ceiling-');
  const clock = new ManualClock(Date.now());
  try {
    const first = await startTestCa({ 'max-ttl': '24h', 'auto-rotate': 'false' }, { clock, stateDir });
    const { csrPem } = await ssl.keyAndCsr();
    const issued = await httpsJson(`${first.apiUrl}/v1/certificates`, { ca: first.rootCertPem(), token: await first.token('shop', 'cart'), body: { csr: csrPem, ttlSeconds: 86_400 } });
    assert.equal(issued.status, 200, issued.text);
    assert.equal(issued.body.ttlSeconds, 86_400);
    await first.close({ keepState: true });

    const second = await startTestCa({ 'max-ttl': '5m', 'default-ttl': '5m', 'auto-rotate': 'false' }, { clock, stateDir });
    try {
      await second.runtime.prepare();
      clock.advance(MINUTE);
      const activatedAt = clock.now();
      await second.runtime.activate(true);
      const state = validateState(JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')));
      const retiring = state.roots.find((r) => r.phase === 'retiring');
      assert.equal(retiring?.maxLeafTtlMs, 24 * HOUR, 'the ceiling recorded while the old root signed is kept');
      assert.equal(state.roots.find((r) => r.phase === 'active')?.maxLeafTtlMs, 5 * MINUTE, 'the new root records today\'s ceiling');

      // Past today's 5 min max TTL and the margin: the 24 h leaf is still valid, so no retire.
      clock.set(activatedAt + 5 * MINUTE + RETIRE_MARGIN_MS + 1000);
      await assert.rejects(second.runtime.retire(false), (err: unknown) => (err as { code?: string }).code === 'RAMPART_ERR_ROTATION_NOT_ALLOWED' && /may be valid until/.test((err as Error).message));
      const [leafPem, ...chainPems] = issued.body.certChain as string[];
      const verified = await ssl.verify({ rootsPem: second.rootCertPem(), leafPem: leafPem ?? '', untrustedPems: chainPems });
      assert.equal(verified.code, 0, `the 24 h leaf still verifies against the published bundle: ${verified.stderr}`);

      clock.set(activatedAt + 24 * HOUR + RETIRE_MARGIN_MS + 1000);
      await second.runtime.retire(false);
      assert.equal(validateState(JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8'))).roots.length, 1);
    } finally {
      await second.close({ keepState: true });
    }
  } finally {
    await ssl.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
});
