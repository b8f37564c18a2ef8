/**
 * A whole Rampart mesh on loopback, in this process: a CA on a temporary state directory and
 * one agent per workload (with its token file, output directory and log file), optionally in
 * front of a tiny HTTP service. Shared by `rampart demo` and the integration drills.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import 'reflect-metadata';
import { mintDevToken } from '../authn/dev.js';
import { startAgent, type RunningAgent } from '../agent/start-agent.js';
import { loadAgentConfig, type AgentFlags } from '../config/agent-config.js';
import { loadCaConfig, type CaFlags } from '../config/ca-config.js';
import { formatSpiffeId } from '../core/identity.js';
import { startCa, type RunningCa } from '../runtime/start-ca.js';
import type { RotationStatus } from '../runtime/rotation-status.js';
import { startDemoService, type DemoService } from './http-service.js';
import { LogSink } from './log-sink.js';
import { caAdminRequest } from './admin-client.js';

/** One workload of the mesh. */
export interface WorkloadSpec {
  /** Short name; also the service account. */
  readonly name: string;
  /** Kubernetes namespace of the identity (default `demo`). */
  readonly namespace?: string;
  /** Run an HTTP service behind an `--inbound` admitting these SPIFFE IDs or patterns. */
  readonly serve?: { readonly allow: readonly string[] };
  /** Names of earlier workloads (with `serve`) this one gets an `--outbound` to. */
  readonly callees?: readonly string[];
  /** Extra agent flags (e.g. `ttl`, `tunnel`). */
  readonly agentFlags?: AgentFlags;
}

/** A running workload. */
export interface MeshWorkload {
  readonly name: string;
  readonly spiffeId: string;
  readonly agent: RunningAgent;
  readonly logs: LogSink;
  readonly tokenFile: string;
  readonly outDir: string;
  readonly service: DemoService | null;
  /** Port of the agent's mTLS inbound, when the workload serves. */
  readonly inboundPort: number | null;
  /** Callee name -> local plain-TCP port of the agent's outbound to it. */
  readonly outboundPorts: Readonly<Record<string, number>>;
}

export interface MeshOptions {
  /** Working directory (created when missing); default a fresh temp dir, removed on stop. */
  readonly dir?: string;
  /** CA flags added to the loopback defaults (listen on port 0, state in `<dir>/ca`). */
  readonly caFlags?: CaFlags;
  readonly trustDomain?: string;
  readonly workloads: readonly WorkloadSpec[];
  /** Mirror every log line here (the demo's --verbose). */
  readonly logMirror?: NodeJS.WritableStream | null;
  /** Seconds each agent's trust-bundle long-poll waits at the CA (default 20). */
  readonly bundleWaitSeconds?: number;
  /** Keep the directory on stop (default: removed when the mesh created it). */
  readonly keepDir?: boolean;
}

/** A running mesh. */
export interface Mesh {
  readonly dir: string;
  readonly stateDir: string;
  readonly trustDomain: string;
  readonly ca: RunningCa;
  readonly caLogs: LogSink;
  readonly workloads: ReadonlyMap<string, MeshWorkload>;
  workload(name: string): MeshWorkload;
  /** The CA's current trust bundle, as its file store publishes it. */
  caBundlePem(): string;
  /** Calls the CA admin API as `spiffe://<td>/ns/rampart-system/sa/rampart-admin`. */
  admin(step: 'prepare' | 'activate' | 'retire', force?: boolean): Promise<{ status: number; body: unknown }>;
  /** GET /v1/admin/status. */
  status(): Promise<RotationStatus>;
  /** Stops every agent, service and the CA; removes the directory unless kept. */
  stop(): Promise<void>;
}

/** Starts the CA, then the workloads in order (callees must come before their callers). */
export async function startMesh(options: MeshOptions): Promise<Mesh> {
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'rampart-mesh-'));
  mkdirSync(dir, { recursive: true });
  const stateDir = join(dir, 'ca');
  const trustDomain = options.trustDomain ?? 'cluster.local';
  const mirror = options.logMirror ?? null;
  const sinks: LogSink[] = [];
  const workloads = new Map<string, MeshWorkload>();
  const services: DemoService[] = [];
  let ca: RunningCa | null = null;

  const stopAll = async (): Promise<void> => {
    // Callers first, so no connection is cut at the callee side while a caller still sends.
    for (const w of [...workloads.values()].reverse()) await w.agent.stop({ drainMs: 0 }).catch(() => undefined);
    for (const s of services) await s.close().catch(() => undefined);
    await ca?.stop().catch(() => undefined);
    for (const sink of sinks) sink.close();
    if (ownDir && !options.keepDir) rmSync(dir, { recursive: true, force: true });
  };

  try {
    const caLogs = new LogSink('rampart-ca', join(dir, 'ca.log'), mirror);
    sinks.push(caLogs);
    const caConfig = loadCaConfig(
      {
        'state-dir': stateDir,
        listen: '127.0.0.1:0',
        'monitoring-listen': '127.0.0.1:0',
        'trust-domain': trustDomain,
        'auto-rotate': 'false',
        ...options.caFlags,
      },
      {},
    );
    ca = await startCa(caConfig, { logger: caLogs.logger });
    const runningCa = ca;
    const bundleFile = join(stateDir, 'root-cert.pem');
    const adminId = { namespace: 'rampart-system', serviceAccount: 'rampart-admin' };

    for (const spec of options.workloads) {
      const namespace = spec.namespace ?? 'demo';
      const spiffeId = formatSpiffeId(trustDomain, 'ns', namespace, 'sa', spec.name);
      const wdir = join(dir, spec.name);
      mkdirSync(wdir, { recursive: true });
      const tokenFile = join(wdir, 'token');
      writeFileSync(tokenFile, await mintDevToken({ stateDir, namespace, serviceAccount: spec.name, ttlSeconds: 24 * 3600 }), { mode: 0o600 });
      const outDir = join(wdir, 'out');
      let service: DemoService | null = null;
      if (spec.serve) {
        service = await startDemoService(spec.name);
        services.push(service);
      }
      const outbound: string[] = [];
      for (const calleeName of spec.callees ?? []) {
        const callee = workloads.get(calleeName);
        if (!callee || callee.inboundPort === null) throw new Error(`workload ${spec.name} calls ${calleeName}, which must be listed earlier and serve`);
        outbound.push(`127.0.0.1:0=127.0.0.1:${callee.inboundPort}#${callee.spiffeId}`);
      }
      const flags: AgentFlags = {
        'ca-url': runningCa.apiUrl,
        'ca-bundle': bundleFile,
        'token-file': tokenFile,
        'out-dir': outDir,
        'monitoring-listen': '127.0.0.1:0',
        'startup-timeout': '30s',
        'drain-timeout': '1s',
        ...(service && spec.serve ? { inbound: [`127.0.0.1:0=127.0.0.1:${service.port}`], allow: [...spec.serve.allow] } : {}),
        ...(outbound.length > 0 ? { outbound } : {}),
        ...spec.agentFlags,
      };
      const config = loadAgentConfig(flags, { POD_NAME: `${spec.name}-0` });
      const logs = new LogSink(`rampart-agent-${spec.name}`, join(dir, `agent-${spec.name}.log`), mirror);
      sinks.push(logs);
      const agent = await startAgent(config, {
        logger: logs.logger,
        ...(options.bundleWaitSeconds === undefined ? {} : { bundleWaitSeconds: options.bundleWaitSeconds }),
      });
      const outboundPorts: Record<string, number> = {};
      (spec.callees ?? []).forEach((calleeName, i) => {
        const p = agent.outbound[i];
        if (p) outboundPorts[calleeName] = p.address.port;
      });
      workloads.set(spec.name, {
        name: spec.name,
        spiffeId,
        agent,
        logs,
        tokenFile,
        outDir,
        service,
        inboundPort: agent.inbound[0]?.address.port ?? null,
        outboundPorts,
      });
    }

    const caBundlePem = (): string => readFileSync(bundleFile, 'utf8');
    const adminToken = (): Promise<string> => mintDevToken({ stateDir, ...adminId, ttlSeconds: 600 });
    let stopping: Promise<void> | undefined;
    return {
      dir,
      stateDir,
      trustDomain,
      ca: runningCa,
      caLogs,
      workloads,
      workload(name) {
        const w = workloads.get(name);
        if (!w) throw new Error(`no workload ${name}`);
        return w;
      },
      caBundlePem,
      async admin(step, force = false) {
        return caAdminRequest(runningCa.apiUrl, caBundlePem(), await adminToken(), 'POST', `/v1/admin/roots/${step}`, force ? { force: true } : {});
      },
      async status() {
        const res = await caAdminRequest(runningCa.apiUrl, caBundlePem(), await adminToken(), 'GET', '/v1/admin/status');
        if (res.status !== 200) throw new Error(`GET /v1/admin/status answered ${res.status}: ${JSON.stringify(res.body)}`);
        return res.body as RotationStatus;
      },
      stop() {
        stopping ??= stopAll();
        return stopping;
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
