/**
 * Test support for the agent integration tests: runs a real agent in this process against a
 * real CA, with its token file, output directory and a log capture. Not a test file itself.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAgentConfig, type AgentFlags } from '../../src/config/agent-config.js';
import { startAgent, type RunningAgent, type StartAgentOptions } from '../../src/agent/start-agent.js';
import { startTestCa, type TestCa } from '../helpers/ca.js';
import { captureLogs, type LogCapture } from './proxy-support.js';

export interface TestAgent {
  readonly agent: RunningAgent;
  readonly logs: LogCapture;
  readonly dir: string;
  readonly tokenFile: string;
  readonly outDir: string;
  /** Replaces the token file's content with a token for another identity. */
  setIdentity(namespace: string, serviceAccount: string): Promise<void>;
  close(): Promise<void>;
}

/** Starts an agent for `namespace/sa` against `ca`; `flags` add to or override the defaults. */
export async function startTestAgent(
  ca: TestCa,
  namespace: string,
  serviceAccount: string,
  flags: AgentFlags = {},
  options: Partial<StartAgentOptions> = {},
): Promise<TestAgent> {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-agent-'));
  const tokenFile = join(dir, 'token');
  const outDir = join(dir, 'out');
  writeFileSync(tokenFile, await ca.token(namespace, serviceAccount, { ttlSeconds: 3600 }));
  const config = loadAgentConfig(
    {
      'ca-url': ca.apiUrl,
      'ca-bundle': join(ca.stateDir, 'root-cert.pem'),
      'token-file': tokenFile,
      'out-dir': outDir,
      'monitoring-listen': '127.0.0.1:0',
      'startup-timeout': '30s',
      ...flags,
    },
    { POD_NAME: `${namespace}-${serviceAccount}-${Math.random().toString(36).slice(2, 8)}` },
  );
  const logs = captureLogs();
  const agent = await startAgent(config, { logger: logs.logger, ...options });
  return {
    agent,
    logs,
    dir,
    tokenFile,
    outDir,
    async setIdentity(ns, sa) {
      const tmp = `${tokenFile}.tmp`;
      writeFileSync(tmp, await ca.token(ns, sa, { ttlSeconds: 3600 }));
      // Rename like kubelet's atomic update so a read never sees half a token.
      const { renameSync } = await import('node:fs');
      renameSync(tmp, tokenFile);
    },
    async close() {
      await agent.stop({ drainMs: 0 });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export { eventually } from '../helpers/poll.js';

/** GET on the agent's monitoring listener. */
export async function monitoring(agent: RunningAgent, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`${agent.monitoringUrl}${path}`);
  return { status: res.status, body: await res.text() };
}

/** Value of a counter/gauge sample in Prometheus text, or 0 when absent. */
export function metricValue(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `) || (labels === '' && l.startsWith(`${name} `)));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** A CA with a token file and a bundle file for agents run as CLI processes. */
export interface AgentCliFiles {
  readonly ca: TestCa;
  readonly dir: string;
  readonly tokenFile: string;
  readonly bundleFile: string;
  close(): Promise<void>;
}

/** Starts a CA and writes a `shop/cli` token and its root bundle into a new temp dir. */
export async function agentCliFiles(prefix: string): Promise<AgentCliFiles> {
  const ca = await startTestCa();
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const tokenFile = join(dir, 'token');
  const bundleFile = join(dir, 'root-cert.pem');
  writeFileSync(tokenFile, await ca.token('shop', 'cli', { ttlSeconds: 3600 }));
  writeFileSync(bundleFile, ca.rootCertPem());
  return {
    ca,
    dir,
    tokenFile,
    bundleFile,
    async close() {
      rmSync(dir, { recursive: true, force: true });
      await ca.close();
    },
  };
}
