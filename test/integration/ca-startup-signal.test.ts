/**
 * A SIGTERM that reaches `rampart ca` while it starts stops it cleanly once it is up (exit 0, state
 * intact), instead of the default action killing it between writes. Seen under load: a signal
 * sent right after the "ca-started" line arrived before the handler was installed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnCli } from '../helpers/cli.js';
import { validateState } from '../../src/store/state-codec.js';

test('SIGTERM during start-up (as the first root is created) ends in a clean exit 0 with a valid state', { timeout: 90_000 }, async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'rampart-startup-signal-'));
  const ca = spawnCli(['ca', '--state-dir', stateDir, '--listen', '127.0.0.1:0', '--monitoring-listen', '127.0.0.1:0']);
  try {
    let out = '';
    let signalled = false;
    ca.stderr?.resume();
    ca.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      if (!signalled && out.includes('"event":"root-created"')) {
        signalled = true;
        ca.kill('SIGTERM');
      }
    });
    const [code, signal] = (await once(ca, 'exit')) as [number | null, NodeJS.Signals | null];
    assert.ok(signalled, 'the CA logged root-created');
    assert.equal(signal, null, 'not killed by the signal');
    assert.equal(code, 0);
    assert.match(out, /"msg":"shutting down"/);
    assert.equal(validateState(JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8'))).roots.length, 1);
  } finally {
    if (ca.exitCode === null && ca.signalCode === null) ca.kill('SIGKILL');
    rmSync(stateDir, { recursive: true, force: true });
  }
});
