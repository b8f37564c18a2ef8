/**
 * List-then-watch with resumption, the informer pattern without a cache: list, hand the items
 * over, watch from the list's resourceVersion, resume from the last event's version when the
 * stream drops, and re-list when the API server answers 410 Expired.
 */
import * as k8s from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { classifyKubeError } from './api-errors.js';

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
  /** Pause before retrying after a failure or drop. Default 1 s. */
  readonly retryMs?: number;
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
  let controller: AbortController | undefined;
  let generation = 0;
  const retry = (relist: boolean): void => {
    if (!running || timer !== undefined) return;
    timer = setTimeout(() => {
      timer = undefined;
      void run(relist);
    }, o.retryMs ?? 1000);
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
        o.logger?.warn({ watch: o.what, apiServer: classifyKubeError(e).summary }, 'list failed; retrying');
        retry(true);
        return;
      }
    }
    const mine = ++generation;
    let expired = false;
    const c = await new k8s.Watch(o.kubeConfig).watch(
      o.path,
      { ...o.params, ...(resourceVersion === undefined ? {} : { resourceVersion }) },
      (type: string, obj: T & { code?: number }) => {
        if (mine !== generation) return;
        if (type === 'ERROR') {
          expired = obj.code === 410;
          return;
        }
        const rv = obj.metadata?.resourceVersion;
        if (rv !== undefined) resourceVersion = rv;
        if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') o.onEvent(type, obj);
      },
      (err: unknown) => {
        if (mine !== generation || !running) return;
        controller = undefined;
        if (err !== null && err !== undefined) o.logger?.warn({ watch: o.what, apiServer: classifyKubeError(err).summary }, 'watch dropped; re-establishing');
        retry(expired);
      },
    );
    if (running && mine === generation) controller = c;
    else c.abort();
  };
  void run(true);
  return {
    stop() {
      running = false;
      generation += 1;
      clearTimeout(timer);
      controller?.abort();
    },
  };
}
