/**
 * The CA on Kubernetes for integration tests: a Kubernetes API test server prepared the way
 * manifests/base prepares a cluster (namespace rampart-system, the CA's service account), and
 * `rampart ca --store kubernetes` replicas as real child processes talking to it through a
 * kubeconfig that authenticates them as `system:serviceaccount:rampart-system:rampart-ca`, so the
 * server's request log shows exactly what the CA calls.
 *
 * ```ts
 * const cluster = await startCaCluster();
 * const a = await cluster.spawnReplica('rampart-ca-a');
 * const pem = await a.bootstrapBundlePem();
 * const res = await issue(a.apiUrl, pem, await cluster.token('shop', 'web'), csrPem);
 * await cluster.close();                      // stops every replica, the server, removes temp dirs
 * ```
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import * as k8s from '@kubernetes/client-node';
import type { CaState } from '../../src/core/ports.js';
import { decodeState } from '../../src/store/state-codec.js';
import { spawnCli } from './cli.js';
import { httpsJson, type HttpsResult } from './https.js';
import { startKubeApiServer, type KubeApiServer } from './kube-api-server/index.js';

/** The CA's own service account (manifests/base). */
export const CA_NAMESPACE = 'rampart-system';
export const CA_USER = `system:serviceaccount:${CA_NAMESPACE}:rampart-ca`;
export const LEASE_NAME = 'rampart-ca-leader';
export const STATE_SECRET = 'rampart-ca';
export const ROOT_CERT_CONFIGMAP = 'rampart-root-cert';

/** One parsed pino line of a replica. */
export type LogLine = Record<string, unknown> & { msg?: string; event?: string };

export interface Replica {
  readonly name: string;
  readonly apiUrl: string;
  readonly monitoringUrl: string;
  readonly pid: number;
  readonly logs: LogLine[];
  /** Raw stderr text (crash output). */
  stderr(): string;
  readonly exited: Promise<number | null>;
  /** Whether the process is still running. */
  alive(): boolean;
  /** Trust bundle PEM fetched without verifying the server (how a test bootstraps trust). */
  bootstrapBundlePem(): Promise<string>;
  /** Sends a signal (SIGKILL simulates a crashed pod). */
  kill(signal: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

export interface CaCluster {
  readonly api: KubeApiServer;
  readonly admin: { core: k8s.CoreV1Api; coordination: k8s.CoordinationV1Api };
  readonly kubeconfigPath: string;
  readonly replicas: Replica[];
  spawnReplica(name: string, extraArgs?: readonly string[], extraEnv?: Readonly<Record<string, string>>): Promise<Replica>;
  /** A projected service-account token for audience rampart-ca. */
  token(namespace: string, serviceAccount: string, expiresInSeconds?: number): Promise<string>;
  /** Holder of the leader Lease ('' when free, undefined when there is no Lease). */
  leaseHolder(): Promise<string | undefined>;
  /** ConfigMap rampart-root-cert's `root-cert.pem` in a namespace, undefined when absent. */
  rootCertIn(namespace: string): Promise<string | undefined>;
  /** Names of Active namespaces. */
  activeNamespaces(): Promise<string[]>;
  /** The CA state from Secret rampart-ca, validated by the store's own codec (throws if corrupt). */
  secretState(): Promise<CaState>;
  close(): Promise<void>;
}

function waitForLine(logs: LogLine[], child: ChildProcess, predicate: (l: LogLine) => boolean, what: string, timeoutMs: number): Promise<LogLine> {
  return new Promise((resolve, reject) => {
    const found = logs.find(predicate);
    if (found) return resolve(found);
    const timer = setTimeout(() => finish(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
    const onData = (): void => {
      const l = logs.find(predicate);
      if (l) finish(undefined, l);
    };
    const onExit = (code: number | null, signal: string | null): void => finish(new Error(`replica exited (code ${code}, signal ${signal}) before ${what}`));
    const finish = (err?: Error, line?: LogLine): void => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(line as LogLine);
    };
    // Lines are parsed by the 'data' listener registered first (spawnReplica), so this one sees them.
    child.stdout?.on('data', onData);
    child.once('exit', onExit);
  });
}

/** Starts the API test server with namespaces rampart-system, shop and load, and the CA's credentials. */
export async function startCaCluster(): Promise<CaCluster> {
  const api = await startKubeApiServer();
  const dir = mkdtempSync(join(tmpdir(), 'rampart-k8s-ca-'));
  const replicas: Replica[] = [];
  try {
    const kc = api.kubeConfig();
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const coordination = kc.makeApiClient(k8s.CoordinationV1Api);
    for (const ns of [CA_NAMESPACE, 'shop', 'load']) await core.createNamespace({ body: { metadata: { name: ns } } });
    await core.createNamespacedServiceAccount({ namespace: CA_NAMESPACE, body: { metadata: { name: 'rampart-ca' } } });
    // A static token stands in for the CA pod's mounted service-account token.
    const caToken = `rampart-ca-${Math.random().toString(36).slice(2)}`;
    api.addToken(caToken, CA_USER);
    const kubeconfigPath = await api.writeKubeconfig(join(dir, 'kubeconfig'), caToken);

    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const k of ['KUBECONFIG', 'KUBERNETES_SERVICE_HOST', 'KUBERNETES_SERVICE_PORT', 'RAMPART_CRASH_AT', 'POD_NAMESPACE']) delete env[k];

    const spawnReplica = async (name: string, extraArgs: readonly string[] = [], extraEnv: Readonly<Record<string, string>> = {}): Promise<Replica> => {
      const stateDir = join(dir, `state-${name}`);
      const child = spawnCli(
        [
          'ca',
          '--store', 'kubernetes',
          '--kubeconfig', kubeconfigPath,
          '--namespace', CA_NAMESPACE,
          '--authn', 'kubernetes,svid',
          '--listen', '127.0.0.1:0',
          '--monitoring-listen', '127.0.0.1:0',
          '--state-dir', stateDir,
          '--log-level', 'info',
          ...extraArgs,
        ],
        { env: { ...env, POD_NAME: name, ...extraEnv } },
      );
      const logs: LogLine[] = [];
      let stderr = '';
      let partial = '';
      let running = true;
      child.stdout?.setEncoding('utf8');
      child.stderr?.setEncoding('utf8');
      child.stdout?.on('data', (chunk: string) => {
        partial += chunk;
        const lines = partial.split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          if (line.trim() === '') continue;
          try {
            logs.push(JSON.parse(line) as LogLine);
          } catch {
            logs.push({ msg: line });
          }
        }
      });
      child.stderr?.on('data', (chunk: string) => void (stderr += chunk));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => {
        running = false;
        resolve(code);
      }));
      const kill = (signal: NodeJS.Signals): void => {
        if (running) child.kill(signal);
      };
      let started: LogLine;
      try {
        started = await waitForLine(logs, child, (l) => l.event === 'ca-started', `${name} to start`, 120_000);
      } catch (e) {
        kill('SIGKILL');
        await exited;
        throw new Error(`${(e as Error).message}\nstderr: ${stderr.slice(-2000)}`);
      }
      const apiUrl = String(started['apiUrl']);
      const replica: Replica = {
        name,
        apiUrl,
        monitoringUrl: String(started['monitoringUrl']),
        pid: child.pid ?? -1,
        logs,
        stderr: () => stderr,
        exited,
        alive: () => running,
        bootstrapBundlePem: async () => {
          const res = await call(`${apiUrl}/v1/trust-bundle?format=pem`, { insecure: true });
          if (res.status !== 200) throw new Error(`trust bundle from ${name}: HTTP ${res.status}`);
          return res.text;
        },
        kill,
        async stop(graceMs = 10_000) {
          if (!running) return;
          kill('SIGTERM');
          const timer = setTimeout(() => kill('SIGKILL'), graceMs);
          await exited;
          clearTimeout(timer);
        },
      };
      replicas.push(replica);
      return replica;
    };

    return {
      api,
      admin: { core, coordination },
      kubeconfigPath,
      replicas,
      spawnReplica,
      token: (namespace, serviceAccount, expiresInSeconds = 3600) =>
        api.mintServiceAccountToken({ namespace, serviceAccount, audiences: ['rampart-ca'], expiresInSeconds }),
      async leaseHolder() {
        try {
          return (await coordination.readNamespacedLease({ name: LEASE_NAME, namespace: CA_NAMESPACE })).spec?.holderIdentity ?? '';
        } catch {
          return undefined;
        }
      },
      async rootCertIn(namespace) {
        try {
          return (await core.readNamespacedConfigMap({ name: ROOT_CERT_CONFIGMAP, namespace })).data?.['root-cert.pem'];
        } catch {
          return undefined;
        }
      },
      async activeNamespaces() {
        return (await core.listNamespace()).items.filter((n) => n.status?.phase === 'Active').map((n) => n.metadata?.name ?? '');
      },
      async secretState() {
        const secret = await core.readNamespacedSecret({ name: STATE_SECRET, namespace: CA_NAMESPACE });
        const b64 = secret.data?.['state.json'];
        if (b64 === undefined) throw new Error('Secret rampart-ca has no state.json');
        return decodeState(Buffer.from(b64, 'base64').toString('utf8'));
      },
      async close() {
        await Promise.all(replicas.map((r) => r.stop(5_000)));
        await api.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await Promise.all(replicas.map((r) => r.stop(2_000)));
    await api.close();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

export type CallResult<T = any> = HttpsResult<T>;

/**
 * One HTTPS request to a CA. `ca` trusts only the given bundle; `insecure` skips verification
 * (bootstrap only); `agent` reuses connections (keep-alive, as an agent does).
 */
export function call<T = any>(url: string, o: { method?: string; ca?: string; insecure?: boolean; token?: string; body?: unknown; agent?: Agent } = {}): Promise<CallResult<T>> {
  return httpsJson<T>(url, o);
}

/** The answer of POST /v1/certificates. */
export interface IssueResponse {
  spiffeId: string;
  certChain: string[];
  trustBundle: string[];
  bundleSequence: number;
  expiresAt: string;
  error?: { code: string; message: string };
}

/** POST /v1/certificates with a bearer token. */
export function issue(apiUrl: string, trust: { ca?: string; agent?: Agent }, token: string, csrPem: string): Promise<CallResult<IssueResponse>> {
  return call<IssueResponse>(`${apiUrl}/v1/certificates`, { ...trust, token, body: { csr: csrPem } });
}

/** A keep-alive connection pool trusting `caPem` (destroy it when done). */
export function keepAliveAgent(caPem: string, maxSockets = 16): Agent {
  return new Agent({ keepAlive: true, maxSockets, ca: caPem });
}
