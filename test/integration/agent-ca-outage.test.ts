import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startTestCa } from '../helpers/ca.js';
import { eventually, metricValue, monitoring, startTestAgent } from './agent-support.js';
import { connectAndWaitClose, exchange, startEchoBackend } from './proxy-support.js';

test('CA down: the agent keeps its certificate and backs off, goes unready at expiry, refuses connections, and recovers when the CA returns', async () => {
  let ca = await startTestCa({ 'min-ttl': '2s', 'default-ttl': '4s' });
  const stateDir = ca.stateDir;
  const port = new URL(ca.apiUrl).port;
  const backend = await startEchoBackend();
  // Short backoff bounds keep the test quick; the policy itself is covered by unit tests.
  const t = await startTestAgent(
    ca,
    'shop',
    'outage',
    { ttl: '4s', inbound: [`127.0.0.1:0=127.0.0.1:${backend.port}`], allow: ['spiffe://cluster.local/ns/shop/*'] },
    { retry: { baseMs: 200, maxMs: 1000 } },
  );
  try {
    const inboundPort = t.agent.inbound[0]?.address.port as number;
    await ca.close({ keepState: true });
    const held = t.agent.manager.current();
    assert.ok(held);
    const failed = await t.logs.waitFor((l) => l['event'] === 'renewal-failed' && l['code'] === 'RAMPART_ERR_CA_UNREACHABLE');
    assert.equal(failed['keeping'], t.agent.manager.serial, 'the current certificate stays in use');
    assert.equal(t.agent.manager.current(), held);

    const unready = await eventually('/readyz to turn 503 after expiry', async () => {
      const r = await monitoring(t.agent, '/readyz');
      return r.status === 503 ? r : undefined;
    });
    assert.match(unready.body, /certificate expired/);
    assert.ok(Date.now() >= held.notAfter);
    const refused = await connectAndWaitClose(inboundPort, 'hello');
    assert.equal(refused.data, '');
    await t.logs.waitFor((l) => l['msg'] === 'inbound certificate expired; refusing connections');
    await t.logs.waitFor((l) => l['event'] === 'certificate-expired');
    const metrics = (await monitoring(t.agent, '/metrics')).body;
    assert.ok(metricValue(metrics, 'rampart_agent_renewals_total', 'result="RAMPART_ERR_CA_UNREACHABLE"') >= 2, 'failures are counted');

    ca = await startTestCa({ 'min-ttl': '2s', 'default-ttl': '4s', listen: `127.0.0.1:${port}` }, { stateDir });
    await eventually('/readyz 200 again', async () => (await monitoring(t.agent, '/readyz')).status === 200);
    assert.notEqual(t.agent.manager.current(), held);
    await t.logs.waitFor((l) => l['msg'] === 'inbound has a valid certificate again; accepting connections' || l['event'] === 'certificate-renewed');
  } finally {
    await t.close();
    await ca.close();
    await backend.close();
  }
});
