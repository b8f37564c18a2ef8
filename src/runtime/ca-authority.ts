/**
 * What the HTTP layer needs from a CA, whether it owns the state (CaRuntime, single process or
 * cluster primary) or follows it (ReplicaRuntime in a node:cluster worker).
 */
import type { IssuedCertificate, IssueRequest, SigningContext } from '../core/ca/authority.js';
import type { CaState } from '../core/ports.js';
import type { RotationStatus } from './rotation-status.js';

export interface CaAuthority {
  readonly ready: boolean;
  current(): SigningContext;
  state(): CaState;
  onChange(listener: (context: SigningContext) => void): () => void;
  issue(request: IssueRequest): IssuedCertificate;
  reportAgentSequence(agentId: string, sequence: number): void;
  /** Resolves once the bundle sequence exceeds `after`, after `timeoutMs`, or when `signal` aborts. */
  waitForSequenceAfter(after: number, timeoutMs: number, signal?: AbortSignal): Promise<void>;
  status(): RotationStatus | Promise<RotationStatus>;
  prepare(): Promise<unknown>;
  activate(force?: boolean): Promise<unknown>;
  retire(force?: boolean): Promise<unknown>;
}
