/**
 * The agent container's entry: bin/agent-node running bin/rampart-agent.cjs, which loads the
 * CommonJS bundle `npm run build` makes of `rampart agent` (dist/rampart-agent.cjs). The bundle
 * carries its dependencies, so what is checked here is that one file does the whole job: the
 * certificate from a real CA, the mTLS inbound checked with openssl, and the coded errors.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import net from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { collectLog, REPO_ROOT, runCliSync } from '../helpers/cli.js';
import { agentCliFiles, eventually, type AgentCliFiles } from './agent-support.js';

const LAUNCHER = join(REPO_ROOT, 'bin/agent-node');
const ENTRY = join(REPO_ROOT, 'bin/rampart-agent.cjs');
const BUNDLE = join(REPO_ROOT, 'dist/rampart-agent.cjs');
const execFileAsync = promisify(execFile);

let files: AgentCliFiles;
before(async () => {
  files = await agentCliFiles('rampart-agent-bundle-');
});
after(() => files.close());

test('the bundle is one CommonJS file that needs nothing from node_modules', () => {
  assert.ok(existsSync(BUNDLE), 'npm run build (and scripts/run-tests.mjs) makes dist/rampart-agent.cjs');
  const text = readFileSync(BUNDLE, 'utf8');
  assert.doesNotMatch(text, /\bimport\.meta\b/, 'no import.meta, which CommonJS has not');
  // Every require left in it names a node builtin: the dependencies are inside.
  const external = [...text.matchAll(/\brequire\("([^"]+)"\)/g)].map((m) => m[1]!).filter((name) => !name.startsWith('node:') && !builtinModules.includes(name));
  assert.deepEqual([...new Set(external)], [], 'requires of packages outside the bundle');
  // Nor does it carry the CA's server, Kubernetes client or certificate libraries.
  for (const pkg of ['fastify', '@kubernetes/client-node', '@peculiar/x509', 'node-forge', '@opentelemetry']) assert.ok(!text.includes(`node_modules/${pkg}/`), `${pkg} is not in the agent bundle`);
});

test('--help, an unknown flag and a bad value answer exactly as `rampart agent` does', () => {
  for (const args of [['--help'], ['--bogus'], ['--inbound', 'nonsense']]) {
    const bundled = spawnSync(LAUNCHER, [ENTRY, ...args], { encoding: 'utf8' });
    const cli = runCliSync(['agent', ...args]);
    assert.deepEqual({ status: bundled.status, stdout: bundled.stdout, stderr: bundled.stderr }, { status: cli.status, stdout: cli.stdout, stderr: cli.stderr }, args.join(' '));
  }
  const bad = spawnSync(LAUNCHER, [ENTRY, '--bogus'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^rampart agent: .*\[RAMPART_ERR_USAGE\]/);
});

interface BundledAgent {
  readonly outDir: string;
  /** What the agent-started log line says. */
  readonly up: { inbound: string[]; spiffeId: string };
  /** Every JSON log line it printed so far; complete once stop() has resolved. */
  readonly log: Array<Record<string, unknown>>;
  /** SIGTERM, then the exit code (once its output is all read) and stderr; the echo backend is closed too. */
  stop(): Promise<{ code: number | null; stderr: string }>;
}

/**
 * Starts bin/agent-node + the bundle against the test CA, with one inbound to an echo backend in
 * this process, and waits for its agent-started log line. `nodeArgs` go before the entry.
 */
async function startBundledAgent(outDir: string, nodeArgs: readonly string[] = []): Promise<BundledAgent> {
  const echo = net.createServer((s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const backend = (echo.address() as net.AddressInfo).port;
  const child = spawn(LAUNCHER, [...nodeArgs, ENTRY, '--ca-url', files.ca.apiUrl, '--ca-bundle', files.bundleFile, '--token-file', files.tokenFile, '--monitoring-listen', '127.0.0.1:0', '--out-dir', outDir, '--inbound', `127.0.0.1:0=127.0.0.1:${backend}`, '--allow', 'spiffe://cluster.local/ns/shop/*'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = collectLog(child);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  // 'close', not 'exit': the last lines may still be in the pipe when the process has exited.
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  const stop = async (): Promise<{ code: number | null; stderr: string }> => {
    child.kill('SIGTERM');
    const code = await exited;
    await new Promise<void>((r) => echo.close(() => r()));
    return { code, stderr };
  };
  try {
    const up = await eventually('the agent-started log line', () => log.find((entry) => entry['event'] === 'agent-started') as BundledAgent['up'] | undefined);
    return { outDir, up, log, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

test('bin/agent-node + the bundle: certificate from the CA, its certificate verified by openssl, mTLS inbound with Python ssl, SIGTERM exits 0', async () => {
  const agent = await startBundledAgent(join(files.dir, 'out'));
  const { outDir, up } = agent;
  try {
    assert.equal(up.spiffeId, 'spiffe://cluster.local/ns/shop/sa/cli');
    const chain = join(outDir, 'cert-chain.pem');
    const verify = spawnSync('openssl', ['verify', '-CAfile', join(outDir, 'root-cert.pem'), '-untrusted', chain, chain], { encoding: 'utf8' });
    assert.equal(verify.status, 0, verify.stdout + verify.stderr);

    // Python's ssl module as the peer, with the agent's own certificate and intermediate (its
    // identity is in the allow list): the handshake completes against the agent's root and the
    // bytes come back through the echo backend.
    const port = (up.inbound[0] as string).split(':').pop()!;
    const peer = `
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[3])
ctx.check_hostname = False
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
with socket.create_connection(("127.0.0.1", int(sys.argv[4])), timeout=10) as raw:
    with ctx.wrap_socket(raw) as s:
        s.sendall(b"through the bundle")
        got = b""
        while len(got) < 18:
            chunk = s.recv(64)
            if not chunk:
                break
            got += chunk
        print(s.version(), got.decode())
`;
    // Asynchronously: the echo backend runs in this process and must keep answering meanwhile.
    const client = await execFileAsync('python3', ['-c', peer, chain, join(outDir, 'key.pem'), join(outDir, 'root-cert.pem'), port], { encoding: 'utf8', timeout: 20_000 });
    assert.match(client.stdout, /^TLSv1\.3 through the bundle$/m, client.stderr);
  } finally {
    const { code, stderr } = await agent.stop();
    assert.equal(code, 0, stderr);
  }
});

test('the bundle leaves out what the agent never uses: node never loads worker_threads, perf_hooks, module or http2, and the log still flushes at exit', async () => {
  const outDir = join(files.dir, 'out-trimmed');
  const loadedFile = join(files.dir, 'loaded-builtins.txt');
  // A preload that records which of node's own modules the process loaded, when it exits.
  const preload = join(files.dir, 'record-builtins.cjs');
  writeFileSync(preload, `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(loadedFile)}, process.moduleLoadList.join('\\n')));\n`);
  const agent = await startBundledAgent(outDir, ['-r', preload]);
  const { up } = agent;
  try {
    // One connection relayed through the inbound, so its code has run too.
    const port = Number((up.inbound[0] as string).split(':').pop());
    const echoed = await new Promise<string>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, ca: readFileSync(join(outDir, 'root-cert.pem')), cert: readFileSync(join(outDir, 'cert-chain.pem')), key: readFileSync(join(outDir, 'key.pem')), checkServerIdentity: () => undefined }, () => socket.end('relayed'));
      let got = '';
      socket.on('data', (d: Buffer) => (got += d.toString()));
      socket.on('close', () => resolve(got));
      socket.on('error', reject);
    });
    assert.equal(echoed, 'relayed');
  } finally {
    const { code, stderr } = await agent.stop();
    assert.equal(code, 0, stderr);
  }
  const loaded = readFileSync(loadedFile, 'utf8').split('\n');
  assert.ok(loaded.includes('NativeModule tls') && loaded.includes('NativeModule net'), 'the record lists the modules the agent did load');
  // The tunnel speaks HTTP/2 through src/agent/proxy/h2, not node's http2 module.
  for (const name of ['worker_threads', 'perf_hooks', 'module', 'http2']) assert.ok(!loaded.includes(`NativeModule ${name}`), `node loaded ${name}`);
  // pino's stream is asynchronous and is flushed as the process exits (scripts/agent-bundle/pino-main-thread.cjs).
  assert.equal(agent.log.at(-1)?.['msg'], 'agent stopped');
});
