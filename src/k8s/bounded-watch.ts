/**
 * One watch attempt with every stage bounded in time: the API server must answer it within
 * `openTimeoutMs`, and the stream may live only its drawn lifetime (watch-lifetime.ts) plus a
 * margin. Either bound passed, the attempt is aborted and reported, so the watcher can open the
 * next one. Unbounded, a request into a black hole or a stream gone silent without a FIN or RST
 * held a replica stale for good (outside review F1, F2 and the QA of their fix).
 */
import type * as k8s from '@kubernetes/client-node';
import { API_CALL_TIMEOUT_MS } from './abortable-call.js';
import { drawWatchLifetime } from './watch-lifetime.js';
import { openWatchStream } from './watch-stream.js';

/** How one attempt ended. */
export type WatchEnd =
  /** The server ended the stream, as its `timeoutSeconds` asks. */
  | { readonly kind: 'closed' }
  /** The stream outlived its lifetime without the server ending it, and was aborted. */
  | { readonly kind: 'overdue'; readonly timeoutSeconds: number }
  /** No answer in time, a refusal (HTTP status), or a broken connection. */
  | { readonly kind: 'failed'; readonly error: Error };

/** Options of {@link startBoundedWatch}. */
export interface BoundedWatchOptions {
  readonly kubeConfig: k8s.KubeConfig;
  readonly path: string;
  readonly params: Readonly<Record<string, string | undefined>>;
  /** Least lifetime of the stream; see watch-lifetime.ts. */
  readonly watchTimeoutMs?: number;
  /** How long the server may take to answer the request. Default: that of a plain API call, 10 s. */
  readonly openTimeoutMs?: number;
  readonly onOpen: () => void;
  readonly onEvent: (type: string, object: unknown) => void;
  /** Called once, unless the attempt was stopped by `stop()`. */
  readonly onEnd: (end: WatchEnd) => void;
}

/** A running attempt. */
export interface BoundedWatch {
  /** Ends it without a call to `onEnd`. */
  stop(): void;
}

/** Why an attempt was aborted, as its error names it. */
class NoAnswerInTime extends Error {
  constructor(ms: number) {
    super(`the API server did not answer the watch within ${ms} ms`);
    // classifyKubeError reports an AbortError as "no answer in time".
    this.name = 'AbortError';
  }
}

export function startBoundedWatch(o: BoundedWatchOptions): BoundedWatch {
  const controller = new AbortController();
  const lifetime = drawWatchLifetime(o.watchTimeoutMs);
  const openTimeoutMs = o.openTimeoutMs ?? API_CALL_TIMEOUT_MS;
  let stopped = false;
  let overdue = false;
  let deadline: NodeJS.Timeout | undefined;
  const opening = setTimeout(() => controller.abort(new NoAnswerInTime(openTimeoutMs)), openTimeoutMs);
  opening.unref();
  openWatchStream({
    kubeConfig: o.kubeConfig,
    path: o.path,
    params: { ...o.params, timeoutSeconds: String(lifetime.timeoutSeconds) },
    signal: controller.signal,
    onOpen: () => {
      clearTimeout(opening);
      deadline = setTimeout(() => {
        overdue = true;
        controller.abort();
      }, lifetime.deadlineMs);
      deadline.unref();
      if (!stopped) o.onOpen();
    },
    onEvent: (type, object) => {
      if (!stopped) o.onEvent(type, object);
    },
    onEnd: (err) => {
      clearTimeout(opening);
      clearTimeout(deadline);
      if (stopped) return;
      if (overdue) o.onEnd({ kind: 'overdue', timeoutSeconds: lifetime.timeoutSeconds });
      else if (err === null) o.onEnd({ kind: 'closed' });
      else o.onEnd({ kind: 'failed', error: err });
    },
  });
  return {
    stop() {
      stopped = true;
      clearTimeout(opening);
      clearTimeout(deadline);
      controller.abort();
    },
  };
}
