/**
 * A signing replica inside a node:cluster worker: it holds the state the primary pushed, signs
 * with its own copy of the intermediate, and forwards everything that changes state (admin steps,
 * agent reports) to the primary, so the store keeps a single writer.
 */
import { Wakeups } from './wakeups.js';
import { ERROR_CATALOGUE, RampartError, StateError, UnavailableError, type ErrorCode } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import { issueCertificate, signingContextFor, type IssuedCertificate, type IssueRequest, type SigningContext } from '../core/ca/authority.js';
import type { TtlPolicy } from '../core/ca/policy.js';
import type { CaState } from '../core/ports.js';
import type { CaAuthority } from './ca-authority.js';
import type { RotationStatus } from './rotation-status.js';
import type { AdminOp, PrimaryMessage, WorkerMessage } from './cluster-messages.js';

export class ReplicaRuntime implements CaAuthority {
  private latest: CaState | null = null;
  private context: SigningContext | null = null;
  private readonly listeners = new Set<(c: SigningContext) => void>();
  private readonly waiters = new Wakeups();
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly reports = new Map<string, number>();
  private nextId = 1;
  private readonly flushTimer: NodeJS.Timeout;

  constructor(
    private readonly send: (message: WorkerMessage) => void,
    private readonly ttlPolicy: TtlPolicy,
    private readonly clock: Clock,
  ) {
    // Agent reports are batched: one IPC message a second instead of one per request.
    this.flushTimer = setInterval(() => this.flushReports(), 1000);
    this.flushTimer.unref();
  }

  /** Feeds a message from the primary. */
  receive(message: PrimaryMessage): void {
    if (message.t === 'rampart-state') {
      if (this.latest && message.state.sequence < this.latest.sequence) return;
      this.latest = message.state;
      this.context = signingContextFor(message.state);
      for (const l of this.listeners) l(this.context);
      this.waiters.wakeAll();
    } else if (message.t === 'rampart-reply') {
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      if (message.ok) waiter.resolve(message.value);
      else {
        const code = (message.code in ERROR_CATALOGUE ? message.code : 'RAMPART_ERR_INTERNAL') as ErrorCode;
        waiter.reject(new RampartError(code, message.message));
      }
    }
  }

  /** Resolves once the first state has arrived. */
  whenLoaded(): Promise<void> {
    if (this.context) return Promise.resolve();
    return new Promise((resolve) => {
      const off = this.onChange(() => {
        off();
        resolve();
      });
    });
  }

  get ready(): boolean {
    return this.context !== null && this.context.signer.issuer.notAfter > this.clock.now();
  }

  current(): SigningContext {
    if (!this.context) throw new StateError('RAMPART_ERR_NOT_READY', 'this worker has not received the CA state yet');
    return this.context;
  }

  state(): CaState {
    if (!this.latest) throw new StateError('RAMPART_ERR_NOT_READY', 'this worker has not received the CA state yet');
    return this.latest;
  }

  onChange(listener: (context: SigningContext) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  issue(request: IssueRequest): IssuedCertificate {
    return issueCertificate(this.current(), this.ttlPolicy, this.clock, request);
  }

  reportAgentSequence(agentId: string, sequence: number): void {
    this.reports.set(agentId, Math.max(sequence, this.reports.get(agentId) ?? 0));
  }

  waitForSequenceAfter(after: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.current().bundle.sequence > after) return Promise.resolve();
    return this.waiters.wait(timeoutMs, signal);
  }

  status(): Promise<RotationStatus> {
    return this.ask('status', false) as Promise<RotationStatus>;
  }

  prepare(): Promise<unknown> {
    return this.ask('prepare', false);
  }

  activate(force = false): Promise<unknown> {
    return this.ask('activate', force);
  }

  retire(force = false): Promise<unknown> {
    return this.ask('retire', force);
  }

  stop(): void {
    clearInterval(this.flushTimer);
    this.flushReports();
    this.waiters.wakeAll();
    // The primary is going away or asked us to stop: admin calls still waiting get a coded answer.
    for (const waiter of this.pending.values()) waiter.reject(new UnavailableError('RAMPART_ERR_NOT_READY', 'this CA process is shutting down; retry on a new connection', { retryAfterSeconds: 1 }));
    this.pending.clear();
  }

  private ask(op: AdminOp, force: boolean): Promise<unknown> {
    // Agents' reports must reach the writer before it judges propagation.
    this.flushReports();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.send({ t: 'rampart-admin', id, op, force });
    });
  }

  private flushReports(): void {
    if (this.reports.size === 0) return;
    this.send({ t: 'rampart-reports', entries: [...this.reports] });
    this.reports.clear();
  }
}
