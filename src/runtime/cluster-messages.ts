/**
 * Messages between the cluster primary (the single writer of CA state) and its signing workers.
 * The primary pushes every state it adopts; workers forward admin steps and agent reports, which
 * only the writer may act on.
 */
import type { CaState } from '../core/ports.js';

export type AdminOp = 'status' | 'prepare' | 'activate' | 'retire';

export type PrimaryMessage =
  | { readonly t: 'rampart-state'; readonly state: CaState }
  | { readonly t: 'rampart-reply'; readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly t: 'rampart-reply'; readonly id: number; readonly ok: false; readonly code: string; readonly message: string }
  /** `counters`: counters and histograms only, the between-scrapes refresh (cluster-metrics.ts). */
  | { readonly t: 'rampart-metrics-request'; readonly id: number; readonly scope: 'all' | 'counters' }
  | { readonly t: 'rampart-connections-total'; readonly open: number; readonly workers: number }
  | { readonly t: 'rampart-stop' };

export type WorkerMessage =
  | { readonly t: 'rampart-hello' }
  | { readonly t: 'rampart-listening'; readonly url: string }
  | { readonly t: 'rampart-failed'; readonly code: string; readonly message: string }
  /** A stop signal reached the worker before its API listened (the start is cancelled, not failed). */
  | { readonly t: 'rampart-cancelled'; readonly signal: string }
  | { readonly t: 'rampart-admin'; readonly id: number; readonly op: AdminOp; readonly force: boolean }
  | { readonly t: 'rampart-reports'; readonly entries: ReadonlyArray<readonly [string, number]> }
  | { readonly t: 'rampart-metrics'; readonly id: number; readonly metrics: unknown }
  | { readonly t: 'rampart-connections'; readonly open: number };

function isTagged(value: unknown): boolean {
  return typeof value === 'object' && value !== null && typeof (value as { t?: unknown }).t === 'string' && (value as { t: string }).t.startsWith('rampart-');
}

export function isPrimaryMessage(value: unknown): value is PrimaryMessage {
  return isTagged(value);
}

export function isWorkerMessage(value: unknown): value is WorkerMessage {
  return isTagged(value);
}
