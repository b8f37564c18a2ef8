/**
 * Keeps long-lived connections spread over the CA's signing workers.
 *
 * The workers accept from the shared listening socket themselves (node:cluster SCHED_NONE),
 * instead of the primary accepting every connection and passing it to a worker over IPC one at
 * a time. But a burst of
 * keep-alive clients can land on whichever worker wakes first, and stays there. So a worker
 * that holds more than its share of the cluster's connections answers the next request on an
 * excess connection with `Connection: close`; the client reconnects, and the kernel gives the
 * new connection to a worker waiting in accept, which is the less busy one.
 */
import type { TLSSocket } from 'node:tls';
import type { Server as HttpsServer } from 'node:https';
import type { FastifyInstance } from 'fastify';

/** Connections a worker may hold before it gives some up: its share plus slack (no limit alone). */
export function connectionLimit(clusterOpen: number, workers: number): number {
  if (workers < 2 || clusterOpen <= 0) return Infinity;
  const share = Math.ceil(clusterOpen / workers);
  // Slack keeps a worker from closing connections over a difference of one or two.
  return share + Math.max(2, Math.ceil(share / 10));
}

/** How many of `localOpen` connections this worker should give up (0 when within its share). */
export function excessConnections(localOpen: number, clusterOpen: number, workers: number): number {
  return Math.max(0, localOpen - connectionLimit(clusterOpen, workers));
}

export interface ConnectionBalance {
  /** TLS connections open on this worker. */
  open(): number;
  /** The cluster-wide count of open connections and workers, as the primary last reported it. */
  update(clusterOpen: number, workers: number): void;
}

/** Counts `server`'s connections and closes this worker's excess ones after their next answer. */
export function balanceConnections(app: FastifyInstance): ConnectionBalance {
  const server = app.server as HttpsServer;
  let open = 0;
  let closing = 0;
  // Derived once per report from the primary, so a request only compares two numbers.
  let limit = Infinity;
  const marked = new WeakSet<object>();
  server.on('secureConnection', (socket: TLSSocket) => {
    open++;
    socket.once('close', () => open--);
  });
  app.addHook('onRequest', (request, reply, done) => {
    const socket = request.raw.socket;
    if (open - closing > limit && !marked.has(socket)) {
      marked.add(socket);
      closing++;
      socket.once('close', () => closing--);
      void reply.header('connection', 'close');
    }
    done();
  });
  return {
    open: () => open,
    update(total, count) {
      limit = connectionLimit(total, count);
    },
  };
}
