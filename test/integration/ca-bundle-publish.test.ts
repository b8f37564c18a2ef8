/**
 * A rotation step whose state was saved is reported as done even if writing root-cert.pem fails
 * afterwards; the file is written on a later tick (found from outside: the admin got a 500 for a
 * prepare that had happened, and root-cert.pem was never rewritten).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { decodeCertificates } from '../../src/core/pki/pem.js';
import { startTestCa } from '../helpers/ca.js';

test('prepare succeeds while root-cert.pem cannot be written; the next tick writes it', { timeout: 60_000 }, async () => {
  const ca = await startTestCa({ 'auto-rotate': 'false' });
  try {
    const bundleFile = join(ca.stateDir, 'root-cert.pem');
    rmSync(bundleFile);
    mkdirSync(join(bundleFile, 'in-the-way'), { recursive: true });
    const state = await ca.runtime.prepare();
    assert.equal(state.sequence, 2);
    assert.equal(ca.runtime.state().roots.length, 2, 'the step is in force');
    assert.ok(ca.logLines.some((l) => l.includes('"event":"bundle-publish-failed"') && l.includes('"sequence":2')), 'the failed write is logged');

    rmSync(bundleFile, { recursive: true });
    await ca.runtime.tick();
    const written = decodeCertificates(readFileSync(bundleFile, 'utf8')).map((der) => new X509Certificate(der).fingerprint256.replace(/:/g, '').toLowerCase());
    assert.deepEqual(written.sort(), ca.runtime.state().roots.map((r) => r.fingerprint).sort(), 'the file holds both roots after the retry');
  } finally {
    await ca.close();
  }
});
