/**
 * What `rampart ca --store kubernetes` says when it cannot load its state at start-up: it exits 1
 * at once (a restarted pod is the retry) with a line that says whether the API server could not
 * be reached, at which address and why, or refused the CA, with the status.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnCli } from '../helpers/cli.js';
import { startKubeApiServer } from '../helpers/kube-api-server/index.js';

const dir = mkdtempSync(join(tmpdir(), 'rampart-k8s-unreachable-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `rampart ca --store kubernetes` to its exit; the API server stays served by this process. */
function runCa(kubeconfig: string): Promise<{ code: number | null; stderr: string }> {
  const child = spawnCli(['ca', '--store', 'kubernetes', '--kubeconfig', kubeconfig, '--listen', '127.0.0.1:0', '--monitoring-listen', '127.0.0.1:0', '--state-dir', dir]);
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  child.stdout?.resume();
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    }),
  );
}

test('an API server that refuses connections: exit 1 saying it cannot be reached, at which address and why', { timeout: 90_000 }, async () => {
  const api = await startKubeApiServer();
  const kubeconfig = await api.writeKubeconfig(join(dir, 'down.kubeconfig'));
  await api.close(); // its port now refuses connections
  const { code, stderr } = await runCa(kubeconfig);
  assert.equal(code, 1, stderr);
  const line = stderr.split('\n').find((l) => l.startsWith('rampart ca: ')) ?? '';
  assert.match(line, new RegExp(`cannot reach the Kubernetes API server at ${api.url.replace(/\./g, '\\.')} \\(ECONNREFUSED\\); check that it is up`));
  assert.match(line, /\[RAMPART_ERR_NOT_READY\]$/);
  assert.doesNotMatch(line, /answered|no response/);
});

test('an API server that refuses the CA (401): exit 1 saying it was refused, with the status and what to check', { timeout: 90_000 }, async () => {
  const api = await startKubeApiServer();
  try {
    const kubeconfig = await api.writeKubeconfig(join(dir, 'stranger.kubeconfig'), 'a-token-the-api-server-does-not-know');
    const { code, stderr } = await runCa(kubeconfig);
    assert.equal(code, 1, stderr);
    const line = stderr.split('\n').find((l) => l.startsWith('rampart ca: ')) ?? '';
    assert.match(line, /the Kubernetes API server at \S+ refused it \(HTTP 401[^)]*\); check the CA's credentials and its RBAC/);
    assert.doesNotMatch(line, /cannot reach/);
  } finally {
    await api.close();
  }
});
