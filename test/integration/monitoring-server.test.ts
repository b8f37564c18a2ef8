import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import { test } from 'node:test';
import { Counter, Registry } from '../../src/observability/prom-lean.js';
import { registerProcessMetrics } from '../../src/observability/process-metrics.js';
import { createMonitoringServer } from '../../src/server/monitoring.js';

function request(port: number, method: string, path: string, agent?: http.Agent): Promise<{ status: number; type: string | undefined; allow: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, ...(agent ? { agent } : {}) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], allow: res.headers.allow, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('monitoring listener: health, readiness with a reason, metrics, coded 404s and 405s, a failing collector', async () => {
  const registry = new Registry();
  registerProcessMetrics(registry, 'test_process_');
  new Counter({ name: 'test_things_total', help: 'things', registers: [registry] }).inc(3);
  let ready: boolean | string = 'no certificate yet';
  let failCollect = false;
  const monitoring = createMonitoringServer({
    registry,
    ready: () => ready,
    metrics: async () => {
      if (failCollect) throw new Error('collector broke');
      return registry.metrics();
    },
  });
  const { port } = await monitoring.listen({ host: '127.0.0.1', port: 0 });
  const keepAlive = new http.Agent({ keepAlive: true });
  try {
    assert.deepEqual(JSON.parse((await request(port, 'GET', '/healthz')).body), { status: 'ok' });

    const notReady = await request(port, 'GET', '/readyz');
    assert.equal(notReady.status, 503);
    assert.deepEqual(JSON.parse(notReady.body), { status: 'not-ready', reason: 'no certificate yet' });
    ready = true;
    assert.equal((await request(port, 'GET', '/readyz?verbose=1')).status, 200);

    const metrics = await request(port, 'GET', '/metrics', keepAlive);
    assert.equal(metrics.status, 200);
    assert.match(metrics.type ?? '', /^text\/plain; version=0\.0\.4/);
    assert.match(metrics.body, /^test_things_total 3$/m);
    const rss = Number(/^test_process_resident_memory_bytes (\d+)$/m.exec(metrics.body)?.[1]);
    assert.ok(rss > 10 * 1024 * 1024, `resident memory ${rss}`);
    assert.match(metrics.body, /^test_process_cpu_seconds_total \d+(\.\d+)?(e-\d+)?$/m);
    assert.match(metrics.body, /^test_process_start_time_seconds \d{10}$/m);

    const head = await request(port, 'HEAD', '/metrics');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');

    for (const [method, path] of [['GET', '/nope'], ['POST', '/nope']] as const) {
      const res = await request(port, method, path);
      assert.equal(res.status, 404, `${method} ${path}`);
      assert.equal(JSON.parse(res.body).error.code, 'RAMPART_ERR_NOT_FOUND');
    }
    for (const [method, path] of [['POST', '/metrics'], ['DELETE', '/healthz']] as const) {
      const res = await request(port, method, path);
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.equal(res.allow, 'GET, HEAD', `${method} ${path}`);
      assert.equal(JSON.parse(res.body).error.code, 'RAMPART_ERR_METHOD_NOT_ALLOWED');
    }

    failCollect = true;
    const broken = await request(port, 'GET', '/metrics');
    assert.equal(broken.status, 500);
    assert.equal(JSON.parse(broken.body).error.code, 'RAMPART_ERR_INTERNAL');
    assert.equal((await request(port, 'GET', '/healthz')).status, 200, 'still serving after a failed collection');
  } finally {
    // A scraper's idle keep-alive connection must not hold the close up.
    await monitoring.close();
    keepAlive.destroy();
  }
});

test("the agent's module graph carries neither fastify nor prom-client's default collectors", () => {
  // Each costs a sidecar several MB of resident memory (see src/server/monitoring.ts and
  // src/observability/prom-lean.ts). Checked on the compiled modules the agent runs.
  const script = `
    import { createRequire } from 'node:module';
    const require = createRequire(import.meta.url);
    await import('./dist/cli/commands/agent.js');
    await import('./dist/agent/start-agent.js');
    const loaded = Object.keys(require.cache);
    console.log(JSON.stringify({
      fastify: loaded.filter((k) => k.includes('/node_modules/fastify/')).length,
      otel: loaded.filter((k) => k.includes('/node_modules/@opentelemetry/')).length,
      promEntry: loaded.filter((k) => k.endsWith('/node_modules/prom-client/index.js')).length,
      promClasses: loaded.filter((k) => k.includes('/node_modules/prom-client/lib/')).length,
    }));`;
  const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as Record<string, number>;
  assert.equal(out['fastify'], 0);
  assert.equal(out['otel'], 0);
  assert.equal(out['promEntry'], 0);
  assert.ok((out['promClasses'] ?? 0) > 0, 'the agent still registers its metrics with prom-client');
});
