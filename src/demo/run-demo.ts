/**
 * `rampart demo`: a CA, a backend and a frontend each behind its own agent, and an intruder,
 * all on loopback. Shows an allowed call with the caller's SPIFFE ID as the backend's agent
 * logged it, a refused call, a certificate renewal on the frontend's agent, then a summary.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getThrough, type GetResult } from './http-client.js';
import type { LogRecord } from './log-sink.js';
import { startMesh, type Mesh } from './mesh.js';

/** Settings of one demo run. */
export interface DemoOptions {
  /** Where the narrative goes (stdout). */
  readonly out: NodeJS.WritableStream;
  /** Mirror every component's log lines on this stream (stderr with --verbose). */
  readonly logMirror?: NodeJS.WritableStream | null;
  /** Leave the log files in place on exit (the demo directory is otherwise removed). */
  readonly keepLogs?: boolean;
  /** Called once the narrative is done: stay up until it resolves (--keep-running). */
  readonly holdOpen?: (mesh: Mesh) => Promise<unknown>;
  /** Leaf lifetime the CA grants (default 8 s, so a renewal happens within the demo). */
  readonly leafTtl?: string;
  /** Aborted on Ctrl-C: the narrative stops at its next step and the mesh is cleaned up. */
  readonly interrupt?: AbortSignal;
}

/** The demo was stopped by its user before the narrative ended. */
export class DemoInterrupted extends Error {
  constructor() {
    super('interrupted');
  }
}

/** What the demo saw; the summary is printed from it. */
export interface DemoSummary {
  readonly identities: Readonly<Record<string, string>>;
  readonly allowed: number;
  readonly refused: number;
  readonly serialBefore: string;
  readonly serialAfter: string;
  readonly ok: boolean;
}

const ROTATION_WAIT_MS = 45_000;
const LOG_WAIT_MS = 15_000;

const norm = (serial: unknown): string => String(serial ?? '').toUpperCase().replace(/^0+/, '');
const short = (serial: string): string => (serial.length > 16 ? `${serial.slice(0, 16)}…` : serial);

function describe(r: GetResult): string {
  return r.ok ? `${r.status} ${JSON.stringify(r.body.trim())}` : `failed (${r.error})`;
}

/** Runs the demo; resolves with the summary once the mesh is stopped again. */
export async function runDemoScenario(options: DemoOptions): Promise<DemoSummary> {
  const interrupt = options.interrupt;
  const say = (line = ''): void => {
    // Each line starts a step or reports one: an interrupted demo stops here, not at the end.
    if (interrupt?.aborted === true) throw new DemoInterrupted();
    options.out.write(`${line}\n`);
  };
  const dir = mkdtempSync(join(tmpdir(), 'rampart-demo-'));
  const leafTtl = options.leafTtl ?? '8s';
  let mesh: Mesh | null = null;
  try {
    say('Rampart demo: a certificate authority and three workloads, each behind its own agent, on 127.0.0.1.');
    say(`Working directory ${dir} (component logs: ca.log, agent-<name>.log; ${options.keepLogs === true ? 'kept at exit' : 'removed at exit unless --keep-logs'})`);
    say();
    mesh = await startMesh({
      dir,
      logMirror: options.logMirror ?? null,
      caFlags: { 'default-ttl': leafTtl, 'min-ttl': '2s' },
      workloads: [
        { name: 'backend', serve: { allow: ['spiffe://cluster.local/ns/demo/sa/frontend'] } },
        { name: 'frontend', callees: ['backend'] },
        { name: 'intruder', callees: ['backend'] },
      ],
    });
    const m = mesh;
    const backend = m.workload('backend');
    const frontend = m.workload('frontend');
    const intruder = m.workload('intruder');
    const frontendPort = frontend.outboundPorts['backend'] as number;
    const intruderPort = intruder.outboundPorts['backend'] as number;

    say(`1. CA listening on ${m.ca.apiUrl} (trust domain ${m.trustDomain}, leaf lifetime ${leafTtl})`);
    say('2. Workloads, each with a fresh key and X.509-SVID from the CA:');
    for (const w of m.workloads.values()) {
      say(`   ${w.name.padEnd(9)} ${w.spiffeId}  serial ${short(w.agent.manager.serial ?? '?')}`);
    }
    say(`   backend  app http://127.0.0.1:${backend.service?.port}  <- agent mTLS inbound 127.0.0.1:${backend.inboundPort} (allows only frontend)`);
    say(`   frontend app -> agent outbound 127.0.0.1:${frontendPort} -> mTLS -> backend 127.0.0.1:${backend.inboundPort}`);
    say(`   intruder app -> agent outbound 127.0.0.1:${intruderPort} -> mTLS -> backend 127.0.0.1:${backend.inboundPort}`);
    say();

    const inboundLines = (r: LogRecord): boolean => r['direction'] === 'inbound' && typeof r['result'] === 'string' && r['mode'] !== 'tunnel-session';
    const seenBefore = new Set(backend.logs.find(inboundLines));
    const nextInbound = async (what: string, match: (r: LogRecord) => boolean): Promise<LogRecord> => {
      const rec = await backend.logs.waitFor(what, (r) => inboundLines(r) && !seenBefore.has(r) && match(r), LOG_WAIT_MS);
      seenBefore.add(rec);
      return rec;
    };
    let clientAllowed = 0;
    let clientRefused = 0;

    // 3. The allowed call.
    say(`3. frontend calls backend:  curl http://127.0.0.1:${frontendPort}/`);
    const first = await getThrough(frontendPort);
    say(`   answer: ${describe(first)}`);
    if (first.ok && first.status === 200) clientAllowed++;
    const firstLine = await nextInbound('the frontend connection', (r) => r['peer'] === frontend.spiffeId);
    say(`   backend agent logged: peer=${String(firstLine['peer'])} serial=${short(norm(firstLine['peerSerial']))} mode=${String(firstLine['mode'])} result=${String(firstLine['result'])}`);
    say();

    // 4. The refused call.
    say(`4. intruder calls backend:  curl http://127.0.0.1:${intruderPort}/`);
    const denied = await getThrough(intruderPort);
    say(`   answer: ${denied.ok ? describe(denied) : `refused (${denied.error})`}`);
    if (denied.ok && denied.status === 200) clientAllowed++;
    else clientRefused++;
    const deniedLine = await nextInbound('the intruder refusal', (r) => r['peer'] === intruder.spiffeId);
    say(`   backend agent logged: peer=${String(deniedLine['peer'])} result=${String(deniedLine['result'])} (${String(deniedLine['error'] ?? '')})`);
    say();

    // 5. Renewal: the frontend's agent replaces its certificate at about half its lifetime.
    const serialBefore = norm(frontend.agent.manager.serial);
    say(`5. certificate rotation: frontend holds serial ${serialBefore}; waiting for its agent to renew (at ~50% of ${leafTtl})...`);
    const renewedAt = Date.now();
    const serialAfter = await new Promise<string>((resolve, reject) => {
      const check = (): boolean => {
        const s = norm(frontend.agent.manager.serial);
        if (s !== '' && s !== serialBefore) {
          clearInterval(poll);
          clearTimeout(timer);
          resolve(s);
          return true;
        }
        return false;
      };
      const poll = setInterval(check, 100);
      interrupt?.addEventListener(
        'abort',
        () => {
          clearInterval(poll);
          clearTimeout(timer);
          reject(new DemoInterrupted());
        },
        { once: true },
      );
      const timer = setTimeout(() => {
        clearInterval(poll);
        reject(new Error(`the frontend agent did not renew its certificate within ${ROTATION_WAIT_MS / 1000} s (see ${join(dir, 'agent-frontend.log')})`));
      }, ROTATION_WAIT_MS);
      check();
    });
    say(`   renewed after ${((Date.now() - renewedAt) / 1000).toFixed(1)} s: serial ${serialBefore} -> ${serialAfter}`);
    const second = await getThrough(frontendPort);
    say(`   frontend calls backend again: ${describe(second)}`);
    if (second.ok && second.status === 200) clientAllowed++;
    const secondLine = await nextInbound('the frontend connection after renewal', (r) => r['peer'] === frontend.spiffeId);
    const seenSerial = norm(secondLine['peerSerial']);
    say(`   backend agent logged: peer=${String(secondLine['peer'])} serial=${short(seenSerial)}${seenSerial === serialAfter ? ' (the new certificate)' : seenSerial === serialBefore ? ' (still the old certificate on a pooled connection)' : ''}`);
    say();

    const logAllowed = backend.logs.find((r) => inboundLines(r) && r['result'] === 'ok').length;
    const logRefused = backend.logs.find((r) => inboundLines(r) && r['result'] === 'denied').length;
    const identities: Record<string, string> = {};
    for (const w of m.workloads.values()) identities[w.name] = w.spiffeId;
    const ok = clientAllowed === 2 && clientRefused === 1 && serialAfter !== serialBefore;
    say('Summary');
    say(`  identities: ${Object.entries(identities).map(([n, id]) => `${n}=${id}`).join(' ')}`);
    say(`  connections allowed: ${clientAllowed} (backend agent logged ${logAllowed} accepted)`);
    say(`  connections refused: ${clientRefused} (backend agent logged ${logRefused} denied)`);
    say(`  rotation: frontend serial ${serialBefore} -> ${serialAfter}`);
    say(`  result: ${ok ? 'OK' : 'UNEXPECTED (see the logs)'}`);

    if (options.holdOpen) {
      say();
      say('The mesh stays up; try it (Ctrl-C to stop and clean up):');
      say(`  curl http://127.0.0.1:${frontendPort}/     # frontend -> backend, allowed`);
      say(`  curl http://127.0.0.1:${intruderPort}/     # intruder -> backend, refused`);
      say(`  curl --cacert ${join(m.stateDir, 'root-cert.pem')} ${m.ca.apiUrl}/v1/trust-bundle`);
      for (const w of m.workloads.values()) say(`  curl ${w.agent.monitoringUrl}/metrics     # ${w.name} agent metrics`);
      say(`  certificates: ${m.workloads.size} agents write cert-chain.pem, key.pem, root-cert.pem under ${dir}/<name>/out`);
      await options.holdOpen(m);
      say('Stopping the mesh.');
    }
    return { identities, allowed: clientAllowed, refused: clientRefused, serialBefore, serialAfter, ok };
  } finally {
    await mesh?.stop();
    if (options.keepLogs) {
      // Keys and tokens go; the log files stay for reading.
      for (const name of readdirSync(dir)) if (!name.endsWith('.log')) rmSync(join(dir, name), { recursive: true, force: true });
      options.out.write(`Logs kept in ${dir}\n`);
    } else {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
