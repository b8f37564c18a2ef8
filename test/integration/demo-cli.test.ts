/**
 * `rampart demo` end to end through the CLI: a real CA, three real agents, real mTLS on
 * loopback. Checks the narrative's facts (allowed, refused, a renewal with two different
 * serials), that --keep-running serves curl-able ports until SIGINT, and that nothing is left.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { describe, test } from 'node:test';
import { runCliSync, spawnCli } from '../helpers/cli.js';

const FRONTEND = 'spiffe://cluster.local/ns/demo/sa/frontend';
const INTRUDER = 'spiffe://cluster.local/ns/demo/sa/intruder';

function workingDir(stdout: string): string {
  const m = /Working directory (\S+)/.exec(stdout);
  assert.ok(m?.[1], `no working directory line in:\n${stdout}`);
  return m[1];
}

describe('rampart demo', { concurrency: true }, () => {
test('rampart demo: allowed, refused, a renewal, a summary; exit 0 and nothing left behind', () => {
  const run = runCliSync(['demo'], { timeoutMs: 120_000 });
  const out = run.stdout;
  assert.equal(run.status, 0, `exit ${run.status}\nstdout:\n${out}\nstderr:\n${run.stderr}`);
  // Agent logs go to files, not the console: no JSON log line on either stream.
  assert.doesNotMatch(out, /^\{"level"/m);
  assert.doesNotMatch(run.stderr, /^\{"level"/m);

  // The allowed call, with the caller's identity as the backend's agent logged it.
  assert.match(out, /frontend calls backend:.*\n\s+answer: 200 "hello from backend/);
  assert.match(out, new RegExp(`backend agent logged: peer=${FRONTEND} serial=\\S+ mode=\\S+ result=ok`));
  // The refusal, at the client and at the backend's agent.
  assert.match(out, /intruder calls backend:.*\n\s+answer: refused/);
  assert.match(out, new RegExp(`backend agent logged: peer=${INTRUDER} result=denied`));

  // Summary.
  assert.match(out, /^Summary$/m);
  assert.match(out, /identities: backend=spiffe:\/\/cluster\.local\/ns\/demo\/sa\/backend frontend=\S+ intruder=\S+/);
  assert.match(out, /^ {2}connections allowed: 2 \(backend agent logged 2 accepted\)$/m);
  assert.match(out, /^ {2}connections refused: 1 \(backend agent logged 1 denied\)$/m);
  const rotation = /^ {2}rotation: frontend serial ([0-9A-F]+) -> ([0-9A-F]+)$/m.exec(out);
  assert.ok(rotation, `no rotation line in:\n${out}`);
  assert.notEqual(rotation[1], rotation[2]);
  assert.ok(rotation[1]!.length >= 16 && rotation[2]!.length >= 16, 'serials of at least 64 bits');
  // After the renewal the backend saw the new certificate on a new connection.
  assert.match(out, new RegExp(`peer=${FRONTEND} serial=${rotation[2]!.slice(0, 16)}… \\(the new certificate\\)`));
  assert.match(out, /^ {2}result: OK$/m);

  // The temporary directory (CA keys, agent keys, tokens, logs) is gone.
  assert.equal(existsSync(workingDir(out)), false, 'the demo directory was removed');
});

test('rampart demo --help describes the flags and exits 0', () => {
  const run = runCliSync(['demo', '--help']);
  assert.equal(run.status, 0, run.stderr);
  for (const flag of ['--keep-running', '--verbose', '--keep-logs', '--leaf-ttl']) assert.ok(run.stdout.includes(flag), flag);
  const bad = runCliSync(['demo', '--no-such-flag']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /rampart demo: .*no-such-flag/);
});

function get(port: number): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', (err) => resolve({ error: err.message }));
    });
    req.on('error', (err) => resolve({ error: err.message }));
    req.end();
  });
}

test('rampart demo --keep-running serves the printed ports until SIGINT, then cleans up', async () => {
  const child = spawnCli(['demo', '--keep-running']);
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await new Promise<void>((resolve, reject) => {
      const onData = (): void => {
        if (/Ctrl-C to stop/.test(out) && /curl http:\/\/127\.0\.0\.1:\d+\/ +# intruder/.test(out)) {
          child.stdout?.off('data', onData);
          resolve();
        }
      };
      child.stdout?.on('data', onData);
      void exited.then((code) => reject(new Error(`demo exited (${code}) before it was up:\n${out}\n${err}`)));
    });
    const frontendPort = Number(/curl http:\/\/127\.0\.0\.1:(\d+)\/ +# frontend/.exec(out)?.[1]);
    const intruderPort = Number(/curl http:\/\/127\.0\.0\.1:(\d+)\/ +# intruder/.exec(out)?.[1]);
    const ok = await get(frontendPort);
    assert.ok('status' in ok && ok.status === 200 && ok.body.startsWith('hello from backend'), JSON.stringify(ok));
    const refused = await get(intruderPort);
    assert.ok('error' in refused, `the intruder got an answer: ${JSON.stringify(refused)}`);
    child.kill('SIGINT');
    assert.equal(await exited, 0, `stdout:\n${out}\nstderr:\n${err}`);
    assert.match(out, /Stopping the mesh\./);
    assert.equal(existsSync(workingDir(out)), false, 'the demo directory was removed');
    // Everything listening is gone with the process.
    const after = await get(frontendPort);
    assert.ok('error' in after, 'the frontend outbound still answers after exit');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
test('Ctrl-C in the middle of the demo stops it at once (exit 130, no summary), twice included, and removes its directory', async () => {
  // A 60 s leaf: the renewal step would wait about 30 s if the interrupt were not honoured.
  const child = spawnCli(['demo', '--leaf-ttl', '60s']);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await new Promise<void>((resolve, reject) => {
      const onData = (): void => {
        if (/5\. certificate rotation/.test(out)) {
          child.stdout?.off('data', onData);
          resolve();
        }
      };
      child.stdout?.on('data', onData);
      void exited.then((code) => reject(new Error(`demo exited (${code}) before the renewal step:\n${out}`)));
    });
    child.kill('SIGINT');
    child.kill('SIGINT');
    const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('still running after 15 s'), 15_000))]);
    assert.equal(code, 130, out);
    assert.doesNotMatch(out, /result:/, 'an interrupted demo prints no verdict');
    assert.equal(existsSync(workingDir(out)), false, 'the demo directory (keys included) was removed');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
});
