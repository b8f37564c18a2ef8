/**
 * An agent that slept through a root activation holds a bundle without the root the CA now
 * serves under. Its CA client then adds the bootstrap roots (--ca-bundle, which the CA keeps
 * current) for one more try instead of failing for ever.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CaClient } from '../../src/client/ca-client.js';
import { startTestCa } from '../helpers/ca.js';
import { adminCall } from './rotation-support.js';

test('after an activation the client missed, the CA is reached with the bootstrap roots, and only with roots it lacked', async () => {
  const ca = await startTestCa();
  try {
    const bootstrapPath = join(ca.stateDir, 'root-cert.pem');
    const heldBeforeRotation = ca.rootCertPem();
    const admin = await ca.token('rampart-system', 'rampart-admin');
    assert.equal((await adminCall(ca.apiUrl, heldBeforeRotation, admin, 'prepare')).status, 200);
    const activated = await adminCall(ca.apiUrl, readFileSync(bootstrapPath, 'utf8'), admin, 'activate', true);
    assert.equal(activated.status, 200, activated.text);

    const stale = new CaClient({ url: ca.apiUrl, caBundle: () => heldBeforeRotation });
    await assert.rejects(stale.trustBundle(), (err: Error & { code?: string }) => err.code === 'RAMPART_ERR_CA_UNREACHABLE' && /UNABLE_TO_GET_ISSUER_CERT_LOCALLY/.test(err.message));
    stale.close();

    // A recovery file with nothing new (an old copy) changes nothing.
    const sameRoots = new CaClient({ url: ca.apiUrl, caBundle: () => heldBeforeRotation, recoveryCaBundle: () => heldBeforeRotation });
    await assert.rejects(sameRoots.trustBundle(), /UNABLE_TO_GET_ISSUER_CERT_LOCALLY/);
    sameRoots.close();

    let recovered = 0;
    const recovering = new CaClient({
      url: ca.apiUrl,
      caBundle: () => heldBeforeRotation,
      recoveryCaBundle: () => readFileSync(bootstrapPath, 'utf8'),
      onTrustRecovered: () => recovered++,
    });
    const bundle = await recovering.trustBundle();
    assert.equal(bundle.sequence, 3, 'the bundle after prepare and activate');
    assert.deepEqual(bundle.roots.map((r) => r.phase).sort(), ['active', 'retiring']);
    assert.equal(recovered, 1);
    recovering.close();
  } finally {
    await ca.close();
  }
});
