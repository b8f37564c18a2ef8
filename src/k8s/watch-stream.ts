/**
 * One Kubernetes watch request, in place of client-node's `Watch`. That one hands back its abort
 * handle only once the API server has answered, so a watch whose request never got an answer (a
 * new connection into a black hole, a hung API server) could not be given up: it hung for good,
 * and the replica behind it stayed stale (outside QA of the silent-watch fix). This one is ended
 * by its `signal` at any stage, connecting, waiting for the answer or streaming.
 *
 * The request carries what the KubeConfig applies to every call (TLS material, bearer token or
 * basic auth, the agent it builds for the cluster), so it authenticates as client-node's calls do.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { createInterface } from 'node:readline';
import type * as k8s from '@kubernetes/client-node';

/** Options of {@link openWatchStream}. */
export interface WatchStreamOptions {
  readonly kubeConfig: k8s.KubeConfig;
  /** Collection path, e.g. `/api/v1/namespaces`. */
  readonly path: string;
  /** Query parameters besides `watch=true`. */
  readonly params: Readonly<Record<string, string | undefined>>;
  /** Ends the watch at any stage; it then ends with the signal's reason as its error. */
  readonly signal: AbortSignal;
  /** The server answered 200: the stream is open. */
  readonly onOpen: () => void;
  /** One event of the stream; lines that are not JSON are skipped. */
  readonly onEvent: (type: string, object: unknown) => void;
  /** Called once: null when the server ended the stream, else why it ended. */
  readonly onEnd: (err: Error | null) => void;
}

/** An answer other than 200; `statusCode` is what classifyKubeError reads. */
export class WatchRefused extends Error {
  constructor(readonly statusCode: number) {
    super(`the API server answered the watch with HTTP ${statusCode}`);
    this.name = 'WatchRefused';
  }
}

/** Most of a refusal's body read; the rest is dropped (it only names the status). */
const MAX_REFUSAL_BODY = 64 * 1024;

function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  const e = new Error(typeof reason === 'string' ? `watch aborted: ${reason}` : 'watch aborted');
  e.name = 'AbortError';
  return e;
}

/** Starts the watch; everything after comes through the callbacks. */
export function openWatchStream(o: WatchStreamOptions): void {
  let ended = false;
  const end = (err: Error | null): void => {
    if (ended) return;
    ended = true;
    o.onEnd(err);
  };
  // Never before the caller has the attempt in hand.
  const endSoon = (err: Error): void => process.nextTick(() => end(err));
  if (o.signal.aborted) return endSoon(abortError(o.signal));
  const cluster = o.kubeConfig.getCurrentCluster();
  if (cluster === null) return endSoon(new Error('the kubeconfig names no current cluster'));
  const url = new URL(cluster.server + o.path);
  url.searchParams.set('watch', 'true');
  for (const [key, value] of Object.entries(o.params)) if (value !== undefined) url.searchParams.set(key, value);
  const options: RequestOptions = {};
  o.kubeConfig.applyToHTTPSOptions(options).then(
    () => {
      if (o.signal.aborted) return end(abortError(o.signal));
      const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
      const req = send(url, { ...options, method: 'GET', signal: o.signal });
      req.on('error', (e) => end(o.signal.aborted ? abortError(o.signal) : e));
      req.on('response', (res) => (res.statusCode === 200 ? stream(res) : refuse(res)));
      req.end();
    },
    (e: unknown) => end(e instanceof Error ? e : new Error(String(e))),
  );

  const refuse = (res: IncomingMessage): void => {
    let read = 0;
    res.on('data', (chunk: Buffer) => {
      read += chunk.length;
      if (read > MAX_REFUSAL_BODY) res.destroy();
    });
    res.on('error', () => undefined);
    res.on('close', () => end(new WatchRefused(res.statusCode ?? 0)));
  };

  const stream = (res: IncomingMessage): void => {
    // Notices a peer that is gone for good; a silent one that still acks is the deadline's job.
    res.socket.setKeepAlive(true, 30_000);
    o.onOpen();
    const lines = createInterface({ input: res, crlfDelay: Infinity });
    // readline passes the input's errors on to the interface; the response's own listener ends the watch.
    lines.on('error', () => undefined);
    lines.on('line', (line) => {
      if (ended || line.trim() === '') return;
      let event: { type?: unknown; object?: unknown };
      try {
        event = JSON.parse(line) as { type?: unknown; object?: unknown };
      } catch {
        return;
      }
      if (typeof event.type === 'string') o.onEvent(event.type, event.object);
    });
    res.on('error', (e) => end(o.signal.aborted ? abortError(o.signal) : e));
    res.on('close', () => end(o.signal.aborted ? abortError(o.signal) : res.complete ? null : new Error('the watch stream was cut off')));
  };
}
