/**
 * List-then-watch with resumption, the informer pattern without a cache: list, hand the items
 * over, watch from the list's resourceVersion, resume from the last event's version when the
 * stream drops, and re-list when the API server answers 410 Expired. Failures back off (see
 * watch-backoff.ts). Each stream's life is bounded (see watch-lifetime.ts), so one that went
 * silent without closing is replaced, and the events it missed replayed, within a few minutes.
 */
import type * as k8s from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { classifyKubeError } from './api-errors.js';
import { startBoundedWatch, type BoundedWatch } from './bounded-watch.js';
import { WatchBackoff } from './watch-backoff.js';

/** Anything with object metadata. */
export interface KubeObjectWithMeta {
  metadata?: k8s.V1ObjectMeta;
}

/** Options of {@link startListWatch}. */
export interface ListWatchOptions<T extends KubeObjectWithMeta> {
  readonly kubeConfig: k8s.KubeConfig;
  /** Collection path to watch, e.g. `/api/v1/namespaces`. */
  readonly path: string;
  /** Extra watch query parameters (fieldSelector, labelSelector). */
  readonly params?: Readonly<Record<string, string>>;
  readonly list: () => Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>;
  /** Called with the full set after every (re)list. */
  readonly onSync: (items: T[]) => void;
  readonly onEvent: (type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: T) => void;
  /** First pause before retrying after a failure or drop; it doubles per failure. Default 1 s. */
  readonly retryMs?: number;
  /** Ceiling of that pause. Default 30 s. */
  readonly retryMaxMs?: number;
  /** Least life of one watch stream; each lives a random time up to twice this. Default 5 min. */
  readonly watchTimeoutMs?: number;
  readonly logger?: Logger;
  /** Names the watch in logs. */
  readonly what: string;
}

/** A running list-watch. */
export interface ListWatchHandle {
  stop(): void;
}

/** Starts the loop; it runs until `stop()`. */
export function startListWatch<T extends KubeObjectWithMeta>(o: ListWatchOptions<T>): ListWatchHandle {
  let running = true;
  let resourceVersion: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  // A stopped attempt calls nothing back, so its late events need no guard here.
  let attempt: BoundedWatch | undefined;
  const backoff = new WatchBackoff({ firstMs: o.retryMs ?? 1000, maxMs: o.retryMaxMs ?? 30_000 });
  const retry = (relist: boolean, delayMs: number): void => {
    if (!running || timer !== undefined) return;
    timer = setTimeout(() => {
      timer = undefined;
      void run(relist);
    }, delayMs);
  };
  // One warning per outage; the repeats are at debug, each with the growing delay.
  const retryAfterFailure = (e: unknown, message: string, relist: boolean): void => {
    const { delayMs, first } = backoff.failed();
    const fields = { watch: o.what, apiServer: classifyKubeError(e).summary, retryInMs: delayMs };
    if (first) o.logger?.warn(fields, message);
    else o.logger?.debug(fields, message);
    retry(relist, delayMs);
  };
  const run = async (relist: boolean): Promise<void> => {
    if (!running) return;
    if (relist || resourceVersion === undefined) {
      try {
        const list = await o.list();
        if (!running) return;
        resourceVersion = list.metadata?.resourceVersion;
        o.onSync(list.items);
      } catch (e) {
        retryAfterFailure(e, 'list failed; retrying', true);
        return;
      }
    }
    let expired = false;
    attempt = startBoundedWatch({
      kubeConfig: o.kubeConfig,
      path: o.path,
      params: { ...o.params, resourceVersion },
      ...(o.watchTimeoutMs === undefined ? {} : { watchTimeoutMs: o.watchTimeoutMs }),
      onOpen: () => {
        const failures = backoff.established();
        if (failures > 0) o.logger?.info({ watch: o.what, failedAttempts: failures }, 'watch re-established');
      },
      onEvent: (type, object) => {
        const obj = object as T & { code?: number };
        if (type === 'ERROR') {
          expired = obj.code === 410;
          return;
        }
        const rv = obj.metadata?.resourceVersion;
        if (rv !== undefined) resourceVersion = rv;
        if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') o.onEvent(type, obj);
      },
      onEnd: (end) => {
        if (!running) return;
        attempt = undefined;
        // A clean end is the server's watch timeout, not an outage: resume without backing off.
        // So is the end of an overdue one, after a warning: the resumed watch replays what it missed.
        if (end.kind === 'failed') {
          retryAfterFailure(end.error, 'watch dropped; re-establishing', expired);
          return;
        }
        if (end.kind === 'overdue') {
          o.logger?.warn({ watch: o.what, timeoutSeconds: end.timeoutSeconds }, 'watch outlived its timeout without the API server ending it (a dropped connection that never closed?); re-establishing');
        }
        retry(expired, backoff.closedMs);
      },
    });
  };
  void run(true);
  return {
    stop() {
      running = false;
      clearTimeout(timer);
      attempt?.stop();
    },
  };
}
