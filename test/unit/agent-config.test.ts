import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadAgentConfig, parseInbound, parseOutbound } from '../../src/config/agent-config.js';

test('defaults, repeatable routes and a frozen result', () => {
  const c = loadAgentConfig({
    inbound: ['0.0.0.0:15006=127.0.0.1:8080', '[::1]:15007=127.0.0.1:8081'],
    allow: ['spiffe://cluster.local/ns/shop/sa/frontend', 'spiffe://cluster.local/ns/ops/*'],
    outbound: ['127.0.0.1:15001=backend.shop.svc:15006#spiffe://cluster.local/ns/shop/sa/backend'],
    ttl: '90m',
  }, { POD_NAME: 'backend-7d9f/x' });
  assert.equal(c.caUrl, 'https://localhost:8443');
  assert.equal(c.caBundleFile, 'certs/root-cert.pem');
  assert.equal(c.outDir, null);
  assert.equal(c.ttlSeconds, 5400);
  assert.deepEqual(c.inbound[1], { listen: { host: '::1', port: 15007 }, backend: { host: '127.0.0.1', port: 8081 } });
  assert.deepEqual(c.outbound[0], { listen: { host: '127.0.0.1', port: 15001 }, upstream: { host: 'backend.shop.svc', port: 15006 }, expectedId: 'spiffe://cluster.local/ns/shop/sa/backend' });
  assert.equal(c.agentId, 'backend-7d9f-x', 'header-safe instance id');
  assert.equal(c.tunnel, 'auto');
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.inbound));
});

test('malformed routes name the flag, the value and the expected shape', () => {
  assert.throws(() => parseInbound('15006'), /--inbound "15006" must be LISTEN=BACKEND/);
  assert.throws(() => parseInbound('127.0.0.1:1=127.0.0.1:0'), /destination port must be 1-65535/);
  assert.throws(() => parseOutbound('127.0.0.1:1=h:2#spiffe://Bad Domain/x'), /is not a valid SPIFFE ID/);
  assert.throws(() => parseOutbound('127.0.0.1:1=h:2'), /--outbound "127\.0\.0\.1:1=h:2" must be LISTEN=HOST:PORT#SPIFFE_ID/);
  assert.throws(() => loadAgentConfig({ tunnel: 'maybe' }), /--tunnel "maybe" must be auto or off/);
  assert.throws(() => loadAgentConfig({ 'ca-url': 'https://ca:8443/v1' }), /must be just https:\/\/HOST\[:PORT\]/);
  assert.throws(() => loadAgentConfig({ allow: ['spiffe://cluster.local/ns/a/*'] }), /--allow only applies to --inbound/);
  assert.throws(() => loadAgentConfig({ 'log-level': 'loud' }), /--log-level "loud"/);
});

test('a zero duration is refused as zero, not as something that is not a duration', () => {
  for (const zero of ['0s', '0', '0ms', '0m0s']) {
    assert.throws(() => loadAgentConfig({ ttl: zero }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'RAMPART_ERR_CONFIG_INVALID');
      assert.equal(err.message, `--ttl "${zero}" must be more than zero, e.g. 90s, 5m, 1h`);
      return true;
    });
  }
  assert.throws(() => loadAgentConfig({ 'drain-timeout': '0s' }), /--drain-timeout "0s" must be more than zero/);
  assert.throws(() => loadAgentConfig({ ttl: 'soon' }), /--ttl "soon" is not a duration; use forms like 90s, 5m, 1h, 30d/);
});

test('two listeners on one address are refused naming both flags, before anything listens', () => {
  const id = 'spiffe://cluster.local/ns/shop/sa/backend';
  const refused = (flags: Parameters<typeof loadAgentConfig>[0], message: string): void => {
    assert.throws(() => loadAgentConfig(flags), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'RAMPART_ERR_CONFIG_INVALID');
      assert.equal(err.message, message);
      return true;
    });
  };
  refused(
    { outbound: [`127.0.0.1:27001=a:1#${id}`, `127.0.0.1:27001=b:2#${id}`] },
    `--outbound "127.0.0.1:27001=a:1#${id}" and --outbound "127.0.0.1:27001=b:2#${id}" both listen on 127.0.0.1:27001; give each listener its own address`,
  );
  refused(
    { inbound: ['127.0.0.1:27002=127.0.0.1:8080'], allow: [id], outbound: [`127.0.0.1:27002=b:2#${id}`] },
    `--inbound "127.0.0.1:27002=127.0.0.1:8080" and --outbound "127.0.0.1:27002=b:2#${id}" both listen on 127.0.0.1:27002; give each listener its own address`,
  );
  refused(
    { inbound: ['0.0.0.0:27003=127.0.0.1:8080'], allow: [id], 'monitoring-listen': '127.0.0.1:27003' },
    '--inbound "0.0.0.0:27003=127.0.0.1:8080" and --monitoring-listen "127.0.0.1:27003" would listen on overlapping addresses (0.0.0.0:27003 and 127.0.0.1:27003); give each listener its own address',
  );
  refused(
    { inbound: ['[0:0::1]:27006=127.0.0.1:8080'], allow: [id], 'monitoring-listen': '[::1]:27006' },
    '--inbound "[0:0::1]:27006=127.0.0.1:8080" and --monitoring-listen "[::1]:27006" both listen on [0:0::1]:27006; give each listener its own address',
  );
  refused({ outbound: [`127.0.0.1:15020=b:2#${id}`] }, `--outbound "127.0.0.1:15020=b:2#${id}" and --monitoring-listen (default) "127.0.0.1:15020" both listen on 127.0.0.1:15020; give each listener its own address`);
  // Port 0 picks a free port each time; other hosts or ports do not clash.
  assert.doesNotThrow(() => loadAgentConfig({ outbound: [`127.0.0.1:0=a:1#${id}`, `127.0.0.1:0=b:2#${id}`], 'monitoring-listen': '127.0.0.1:0' }));
  assert.doesNotThrow(() => loadAgentConfig({ outbound: [`127.0.0.1:27004=a:1#${id}`, `127.0.0.2:27004=b:2#${id}`, `127.0.0.1:27005=b:2#${id}`] }));
});

test('a bad --allow quotes the value as written and says which forms are allowed', () => {
  const forms = 'use an exact ID (spiffe://cluster.local/ns/shop/sa/web) or a prefix ending in "/*" (spiffe://cluster.local/ns/shop/* or spiffe://cluster.local/*)';
  const refused = (allow: string, why: string): void => {
    assert.throws(() => loadAgentConfig({ inbound: ['127.0.0.1:0=127.0.0.1:8080'], allow: [allow] }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'RAMPART_ERR_CONFIG_INVALID');
      assert.equal(err.message, `--allow "${allow}" is not a SPIFFE ID or a prefix pattern: ${why}; ${forms}`);
      return true;
    });
  };
  refused('spiffe://*', 'the trust domain is missing before "/*"');
  refused('spiffe://Cluster.local/*', 'trust domain may contain only lowercase letters, digits, ".", "-" and "_"');
  refused('spiffe://cluster.local/ns/*/sa/web', 'path segments may contain only letters, digits, ".", "-" and "_"');
  refused('http://cluster.local/ns/shop/*', 'must start with "spiffe://"');
});

test('a timeout is a timer: over 24.8 days it is refused, not left to fire at once', () => {
  assert.equal(loadAgentConfig({ 'startup-timeout': '24d' }).startupTimeoutMs, 24 * 86_400_000);
  for (const flag of ['startup-timeout', 'drain-timeout'] as const) {
    assert.throws(() => loadAgentConfig({ [flag]: '25d' }), { code: 'RAMPART_ERR_CONFIG_INVALID', message: new RegExp(`--${flag} "25d" is longer than 24.8 days`) });
  }
});

test('RAMPART_LOG_LEVEL sets the agent\'s level as it does the CA\'s; --log-level wins; a bad value names where it came from (outside QA)', () => {
  assert.equal(loadAgentConfig({}, { RAMPART_LOG_LEVEL: 'debug' }).logLevel, 'debug');
  assert.equal(loadAgentConfig({ 'log-level': 'warn' }, { RAMPART_LOG_LEVEL: 'debug' }).logLevel, 'warn');
  assert.equal(loadAgentConfig({}, {}).logLevel, 'info');
  assert.throws(() => loadAgentConfig({}, { RAMPART_LOG_LEVEL: 'bogus' }), /^.*RAMPART_LOG_LEVEL "bogus" must be one of /);
});
