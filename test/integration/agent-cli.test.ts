import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import net from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import type { TestCa } from '../helpers/ca.js';
import { cliArgs, REPO_ROOT, runCli, runCliSync, spawnCli } from '../helpers/cli.js';
import { buildCertificate } from '../helpers/pki-build.js';
import { agentCliFiles, eventually, type AgentCliFiles } from './agent-support.js';

let ca: TestCa;
let dir: string;
let tokenFile: string;
let bundleFile: string;
let files: AgentCliFiles;

before(async () => {
  files = await agentCliFiles('rampart-agent-cli-');
  ({ ca, dir, tokenFile, bundleFile } = files);
});
after(() => files.close());

/** Runs `rampart agent ARGS` expecting a usage-style failure; returns the first stderr line. */
function failsWith(args: string[], pattern: RegExp): string {
  const r = runCliSync(['agent', ...args]);
  assert.equal(r.status, 2, `exit code for ${args.join(' ')}: ${r.stderr}`);
  const first = r.stderr.split('\n')[0] ?? '';
  assert.match(first, pattern);
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
  assert.ok(r.stderr.trim().split('\n').length <= 2, `one line (plus a --help hint): ${r.stderr}`);
  return first;
}

const base = (): string[] => ['--ca-bundle', bundleFile, '--token-file', tokenFile, '--monitoring-listen', '127.0.0.1:0'];

test('--help prints usage and exits 0', () => {
  const r = runCliSync(['agent', '--help']);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /--inbound LISTEN=BACKEND/);
  assert.match(r.stdout, /--outbound LISTEN=HOST:PORT#SPIFFE_ID/);
});

test('bad input: one line saying what to fix, exit 2, never a stack trace', () => {
  failsWith(['--bogus'], /^rampart agent: Unknown option '--bogus'/);
  failsWith([...base(), '--inbound', 'nonsense'], /--inbound "nonsense" must be LISTEN=BACKEND/);
  failsWith([...base(), '--inbound', '127.0.0.1:0=localhost', '--allow', 'spiffe://cluster.local/ns/a/sa/b'], /--inbound "127\.0\.0\.1:0=localhost" must be LISTEN=BACKEND.*"localhost" is not HOST:PORT/);
  failsWith([...base(), '--inbound', '127.0.0.1:0=127.0.0.1:8080'], /--inbound needs at least one --allow/);
  failsWith([...base(), '--inbound', '127.0.0.1:0=127.0.0.1:8080', '--allow', 'http://cluster.local/x'], /--allow "http:\/\/cluster\.local\/x" is not a SPIFFE ID/);
  failsWith([...base(), '--inbound', '127.0.0.1:0=127.0.0.1:8080', '--allow', 'spiffe://*'], /^rampart agent: --allow "spiffe:\/\/\*" is not a SPIFFE ID or a prefix pattern: the trust domain is missing before "\/\*"; use an exact ID .* or a prefix ending in "\/\*" \(spiffe:\/\/cluster\.local\/ns\/shop\/\* or spiffe:\/\/cluster\.local\/\*\) \[RAMPART_ERR_CONFIG_INVALID\]$/);
  failsWith([...base(), '--outbound', '127.0.0.1:0=backend:15006'], /--outbound "127\.0\.0\.1:0=backend:15006" must be LISTEN=HOST:PORT#SPIFFE_ID/);
  failsWith([...base(), '--outbound', '127.0.0.1:0=backend:15006#backend'], /"backend" is not a valid SPIFFE ID/);
  failsWith([...base(), '--ca-url', 'http://localhost:8443'], /--ca-url "http:\/\/localhost:8443" must use https:\/\//);
  failsWith([...base(), '--ca-url', 'notaurl'], /^rampart agent: --ca-url "notaurl" is not a URL; use e\.g\. https:\/\/.* \[RAMPART_ERR_CONFIG_INVALID\]$/);
  failsWith([...base(), '--ttl', 'soon'], /--ttl "soon" is not a duration/);
  // Two listeners on one address: the flags are named, not a process "already listening there".
  const upstreamId = 'spiffe://cluster.local/ns/shop/sa/backend';
  failsWith([...base(), '--ca-url', 'https://127.0.0.1:1', '--startup-timeout', '3s', '--outbound', `127.0.0.1:27011=127.0.0.1:9#${upstreamId}`, '--outbound', `127.0.0.1:27011=127.0.0.1:8#${upstreamId}`], /^rampart agent: --outbound "127\.0\.0\.1:27011=127\.0\.0\.1:9#spiffe:\/\/cluster\.local\/ns\/shop\/sa\/backend" and --outbound "127\.0\.0\.1:27011=127\.0\.0\.1:8#spiffe:\/\/cluster\.local\/ns\/shop\/sa\/backend" both listen on 127\.0\.0\.1:27011; give each listener its own address \[RAMPART_ERR_CONFIG_INVALID\]$/);
  failsWith([...base(), '--ca-url', 'https://127.0.0.1:1', '--startup-timeout', '3s', '--inbound', '127.0.0.1:27012=127.0.0.1:9', '--allow', upstreamId, '--outbound', `127.0.0.1:27012=127.0.0.1:8#${upstreamId}`], /^rampart agent: --inbound "127\.0\.0\.1:27012=127\.0\.0\.1:9" and --outbound ".*" both listen on 127\.0\.0\.1:27012; give each listener its own address \[RAMPART_ERR_CONFIG_INVALID\]$/);
  failsWith([...base(), '--ttl', '0s'], /^rampart agent: --ttl "0s" must be more than zero, e\.g\. 90s, 5m, 1h \[RAMPART_ERR_CONFIG_INVALID\]$/);
});

test('start-up problems: unreadable token file, unreadable bundle, a port in use, a CA URL that does not answer', async () => {
  failsWith(['--ca-bundle', bundleFile, '--token-file', join(dir, 'missing-token'), '--monitoring-listen', '127.0.0.1:0'], /cannot read token file .*missing-token \(ENOENT\); check --token-file/);
  failsWith(['--ca-bundle', join(dir, 'missing.pem'), '--token-file', tokenFile, '--monitoring-listen', '127.0.0.1:0'], /cannot read --ca-bundle .*missing\.pem \(ENOENT\)/);
  // An --out-dir that is a file: the agent stops before asking for a certificate.
  const notADir = join(dir, 'a-file');
  writeFileSync(notADir, 'x');
  failsWith([...base(), '--out-dir', notADir], /--out-dir .*a-file cannot be used \((EEXIST|ENOTDIR)\); it must be a directory this agent can write \[RAMPART_ERR_CONFIG_INVALID\]$/);
  // procfs refuses new entries with ENOENT, on which node's own recursive mkdir loops forever.
  failsWith([...base(), '--out-dir', '/proc/rampart-nope/out'], /--out-dir \/proc\/rampart-nope\/out cannot be used \(ENOENT\); it must be a directory this agent can write \[RAMPART_ERR_CONFIG_INVALID\]$/);
  // A monitoring port someone else holds: named by flag and address, exit 2, nothing left running.
  const held = net.createServer().listen(0, '127.0.0.1');
  await once(held, 'listening');
  try {
    const port = (held.address() as net.AddressInfo | null)?.port ?? 0;
    assert.ok(port > 0);
    failsWith(['--ca-bundle', bundleFile, '--token-file', tokenFile, '--monitoring-listen', `127.0.0.1:${port}`], new RegExp(`--monitoring-listen 127\\.0\\.0\\.1:${port}: cannot listen: the address is already in use.*\\[RAMPART_ERR_LISTEN_FAILED\\]$`));
  } finally {
    held.close();
  }
  // Port 1 on loopback: nothing listens there.
  failsWith([...base(), '--ca-url', 'https://127.0.0.1:1', '--startup-timeout', '2s'], /no certificate within 2s: cannot reach the CA at https:\/\/127\.0\.0\.1:1: ECONNREFUSED; check --ca-url/);
});

test('a CA bundle that does not trust the server, a serving certificate for another host, or a --ca-url port without TLS, is named as such, not as a CA that is down (outside QA)', async () => {
  const otherRoot = join(dir, 'other-root.pem');
  writeFileSync(otherRoot, buildCertificate({ subject: { commonName: 'some other root' }, extensions: [] }).pem);
  // A plain HTTP server where the CA should be: the monitoring port, say.
  const plain = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  });
  await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
  const plainUrl = `https://127.0.0.1:${(plain.address() as net.AddressInfo).port}`;
  // A trusted server whose certificate is for another host.
  const elsewhere = buildCertificate({ subject: { commonName: 'elsewhere.example' }, extensions: [] });
  const elsewhereFile = join(dir, 'elsewhere.pem');
  writeFileSync(elsewhereFile, elsewhere.pem);
  const otherHost = tls.createServer({ cert: elsewhere.pem, key: elsewhere.privateKey.export({ format: 'pem', type: 'pkcs8' }) }, (socket) => socket.destroy());
  otherHost.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => otherHost.listen(0, '127.0.0.1', resolve));
  const otherHostUrl = `https://localhost:${(otherHost.address() as net.AddressInfo).port}`;
  try {
    const [untrusted, notTls, bundleNotTls, wrongHost] = await Promise.all([
      runCli(['agent', '--ca-url', ca.apiUrl, '--ca-bundle', otherRoot, '--token-file', tokenFile, '--monitoring-listen', '127.0.0.1:0', '--startup-timeout', '2s']),
      runCli(['agent', '--ca-url', plainUrl, ...base(), '--startup-timeout', '2s']),
      runCli(['bundle', '--ca-url', plainUrl, '--ca-bundle', bundleFile]),
      runCli(['agent', '--ca-url', otherHostUrl, '--ca-bundle', elsewhereFile, '--token-file', tokenFile, '--monitoring-listen', '127.0.0.1:0', '--startup-timeout', '2s']),
    ]);
    assert.equal(untrusted.code, 2, untrusted.stderr);
    assert.match(untrusted.stderr, /^rampart agent: no certificate within 2s: the server at https:\/\/localhost:\d+ presented a certificate that --ca-bundle does not trust \((UNABLE_TO_GET_ISSUER_CERT_LOCALLY|UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)\); check --ca-bundle: it must hold the CA's current roots .*\[RAMPART_ERR_CA_UNREACHABLE\]$/m);
    assert.equal(notTls.code, 2, notTls.stderr);
    assert.equal(bundleNotTls.code, 1, bundleNotTls.stderr);
    for (const r of [notTls, bundleNotTls]) {
      assert.match(r.stderr, /the server at https:\/\/127\.0\.0\.1:\d+ does not speak TLS \(EPROTO\); check --ca-url: it must be the CA's API port, not its monitoring port or another service/);
    }
    assert.equal(wrongHost.code, 2, wrongHost.stderr);
    assert.match(wrongHost.stderr, /presented a certificate that is not for localhost \(ERR_TLS_CERT_ALTNAME_INVALID\); use a --ca-url host the CA's serving certificate names \(its --serving-name\) \[RAMPART_ERR_CA_UNREACHABLE\]$/m);
    for (const r of [untrusted, notTls, bundleNotTls, wrongHost]) assert.doesNotMatch(r.stderr, /that the CA is running/);
  } finally {
    plain.close();
    otherHost.close();
  }
});

test('a real `rampart agent` process: certificate, proxy under load, SIGTERM drains and exits 0 (figures reported)', async () => {
  const outDir = join(dir, 'out');
  const echo = net.createServer((s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const started = Date.now();
  const child = spawnCli(['agent', '--ca-url', ca.apiUrl, ...base(), '--out-dir', outDir, '--inbound', `127.0.0.1:0=127.0.0.1:${(echo.address() as net.AddressInfo).port}`, '--allow', 'spiffe://cluster.local/ns/shop/*']);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  try {
    const up = await eventually('the agent-started log line', () => {
      const line = stdout.split('\n').find((l) => l.includes('"agent-started"'));
      return line === undefined ? undefined : (JSON.parse(line) as { firstCertificateMs: number; monitoringUrl: string; inbound: string[] });
    });
    const processStartToReadyMs = Date.now() - started;
    const ready = await fetch(`${up.monitoringUrl}/readyz`);
    assert.equal(ready.status, 200);
    const rss = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
    await new Promise((r) => setTimeout(r, 500));
    const idleRss = rss();

    // Load: 20 concurrent mTLS clients, 10 connections each, 16 KiB echoed per connection.
    const port = Number((up.inbound[0] as string).split(':').pop());
    const key = readFileSync(join(outDir, 'key.pem'));
    const cert = readFileSync(join(outDir, 'cert-chain.pem'));
    const caPem = readFileSync(join(outDir, 'root-cert.pem'));
    const payload = Buffer.alloc(16 * 1024, 7);
    let peakRss = 0;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, rss())), 100);
    const loadStart = Date.now();
    const one = (): Promise<void> =>
      new Promise((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port, key, cert, ca: caPem, checkServerIdentity: () => undefined }, () => s.write(payload));
        let got = 0;
        s.on('data', (d: Buffer) => {
          got += d.length;
          if (got >= payload.length) s.end();
        });
        s.on('close', () => (got >= payload.length ? resolve() : reject(new Error(`short echo ${got}`))));
        s.on('error', reject);
      });
    await Promise.all(Array.from({ length: 20 }, async () => {
      for (let i = 0; i < 10; i++) await one();
    }));
    const loadMs = Date.now() - loadStart;
    clearInterval(sampler);
    peakRss = Math.max(peakRss, rss());

    child.kill('SIGTERM');
    assert.equal(await exited, 0, stderr);
    assert.match(stdout, /draining connections and shutting down/);
    console.error(
      `agent figures: first certificate ${Math.round(up.firstCertificateMs)} ms after start-up began; process spawn to ready ${processStartToReadyMs} ms (tsx transpiling included); ` +
        `RSS idle ${idleRss.toFixed(1)} MiB, peak under load ${peakRss.toFixed(1)} MiB (200 mTLS connections, 20 concurrent, ${loadMs} ms)`,
    );
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await new Promise<void>((r) => echo.close(() => r()));
  }
});

test('under umask 000 the out dir and the parents the agent creates are 0755, not world-writable; an existing parent keeps its mode', async () => {
  const top = mkdtempSync(join(dir, 'umask-'));
  const existing = join(top, 'existing');
  mkdirSync(existing);
  chmodSync(existing, 0o711);
  const outDir = join(existing, 'made', 'out');
  // The shell sets the umask the agent inherits, as a container runtime or init script might.
  const child = spawn('sh', ['-c', 'umask 000; exec "$@"', 'sh', process.execPath, ...cliArgs(['agent', '--ca-url', ca.apiUrl, ...base(), '--out-dir', outDir])], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stdout?.resume();
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = once(child, 'exit');
  try {
    await eventually('the first certificate to be written', () => existsSync(join(outDir, '..data')));
    const mode = (path: string): string => (statSync(path).mode & 0o777).toString(8);
    assert.equal(mode(join(existing, 'made')), '755');
    assert.equal(mode(outDir), '755');
    assert.equal(mode(join(outDir, readlinkSync(join(outDir, '..data')))), '755', 'generation directory');
    assert.equal(mode(join(outDir, 'key.pem')), '600');
    assert.equal(mode(existing), '711', 'an existing directory is left as it was');
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
  assert.equal(child.exitCode, 0, stderr);
});

test('SIGHUP drains like SIGTERM (exit 0), and a second signal while draining exits at once (code 1) and says so (outside QA: both ended the agent silently)', async () => {
  const run = async (second: NodeJS.Signals | null): Promise<{ code: number | null; stdout: string }> => {
    const child = spawnCli(['agent', '--ca-url', ca.apiUrl, ...base(), '--inbound', '127.0.0.1:0=127.0.0.1:9', '--allow', 'spiffe://cluster.local/ns/shop/*', '--drain-timeout', '60s']);
    let stdout = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.resume();
    const exited = once(child, 'exit') as Promise<[number | null]>;
    let held: net.Socket | undefined;
    try {
      await eventually('the agent up', () => /"event":"agent-started"/.test(stdout), 60_000);
      const inboundPort = Number(/"inbound":\["127\.0\.0\.1:(\d+)"\]/.exec(stdout)?.[1]);
      // An open connection (one that never starts TLS) keeps the drain going.
      held = net.connect({ host: '127.0.0.1', port: inboundPort });
      held.on('error', () => {});
      await once(held, 'connect');
      child.kill('SIGHUP');
      await eventually('the drain to start', () => /draining connections and shutting down/.test(stdout));
      assert.equal(child.exitCode, null, 'still draining');
      if (second === null) held.destroy();
      else child.kill(second);
      const [code] = await exited;
      return { code, stdout };
    } finally {
      held?.destroy();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  };
  const [drained, forced] = await Promise.all([run(null), run('SIGTERM')]);
  assert.equal(drained.code, 0, drained.stdout.slice(-2000));
  assert.match(drained.stdout, /"msg":"agent stopped"/);
  assert.equal(forced.code, 1, forced.stdout.slice(-2000));
  assert.match(forced.stdout, /"event":"agent-stopped-abruptly","signal":"SIGTERM".*second SIGTERM: exiting now without waiting for open connections/);
});
