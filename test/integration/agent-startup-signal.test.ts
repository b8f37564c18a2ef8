/**
 * A SIGTERM or SIGINT that reaches `rampart agent` before its first certificate stops it then
 * (exit 0, it was asked to stop), instead of retrying the CA until --startup-timeout and, should
 * the CA come back meanwhile, writing a certificate and reporting itself up (outside QA).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { agentCliFiles, type AgentCliFiles } from './agent-support.js';
import { spawnCli } from '../helpers/cli.js';
import { eventually } from '../helpers/poll.js';

let files: AgentCliFiles;

// Only for a real token and bundle file: the agent is pointed at a port where nothing listens.
before(async () => (files = await agentCliFiles('rampart-agent-signal-')));
after(() => files.close());

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} while the CA cannot be reached stops the agent: logged, nothing written, exit 0`, { timeout: 90_000 }, async () => {
    const outDir = join(files.dir, `out-${signal}`);
    // Port 1 on loopback: nothing listens there. The start-up deadline is far beyond this test.
    const child = spawnCli(['agent', '--ca-url', 'https://127.0.0.1:1', '--ca-bundle', files.bundleFile, '--token-file', files.tokenFile, '--out-dir', outDir, '--monitoring-listen', '127.0.0.1:0', '--startup-timeout', '30m']);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    try {
      await eventually('a failed attempt to be logged', () => stdout.includes('"event":"renewal-failed"'));
      child.kill(signal);
      // Generous: the point is that it leaves on the signal, not at its 30-minute deadline.
      const stillRunning = new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 45_000).unref());
      const outcome = await Promise.race([exited, stillRunning]);
      assert.notEqual(outcome, 'still running', `the agent ignored ${signal}; stdout:\n${stdout}`);
      const [code, killedBy] = outcome as [number | null, NodeJS.Signals | null];
      assert.equal(killedBy, null, 'ended by itself, not by the default signal action');
      assert.equal(code, 0, stderr);
      const stopped = stdout.split('\n').find((l) => l.includes('"event":"agent-stopped"'));
      assert.ok(stopped, `a stop line is logged:\n${stdout}`);
      assert.equal(JSON.parse(stopped)['msg'], `stopped by ${signal} during start-up, before its first certificate`);
      assert.doesNotMatch(stdout, /"event":"agent-started"/);
      assert.ok(!existsSync(join(outDir, '..data')), 'no credentials written');
      assert.deepEqual(readdirSync(outDir), []);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
}
