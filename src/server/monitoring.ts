/**
 * The plain-HTTP monitoring listener: /healthz, /readyz, /metrics.
 *
 * Plain node:http rather than fastify: the agent runs one per pod, and loading fastify for
 * three fixed GET routes cost about 15 MB of resident memory per agent (measured with
 * /proc/self/status before and after loading fastify and listening).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { answerClientError, answerConnect, framingProblem } from './framing-errors.js';
import { deferContinue } from './expect-continue.js';
import { lingerOnClose } from './lingering-close.js';
import { statusOf } from './error-handler.js';
import { bodyLeftUnread } from './unread-body.js';
import { pathInMessage } from './path-in-message.js';

export interface MonitoringOptions {
  readonly registry: Registry;
  /** True when ready, or the reason it is not. */
  readonly ready: () => boolean | string;
  /** Overrides how the exposition is produced (the cluster primary merges its workers'). */
  readonly metrics?: () => Promise<string>;
}

export interface MonitoringServer {
  readonly server: http.Server;
  listen(at: { host: string; port: number }): Promise<AddressInfo>;
  close(): Promise<void>;
}

function send(res: http.ServerResponse, status: number, contentType: string, body: string, headOnly: boolean): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(headOnly ? undefined : body);
}

const JSON_TYPE = 'application/json; charset=utf-8';

/** The path of a request target, in origin form or absolute form (RFC 9112 section 3.2.2 wants both). */
function pathOf(target: string): string {
  let path = target;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(path)) {
    try {
      path = new URL(path).pathname;
    } catch {
      // Not a URL after all: routed as it is, to a 404.
    }
  }
  return (path.split('?', 1)[0] ?? '/').slice(0, 200);
}

export function createMonitoringServer(options: MonitoringOptions): MonitoringServer {
  const exposition = options.metrics ?? (() => options.registry.metrics());
  // Node would answer a request without Host itself, with a bare 400 (see hostHeaderProblem).
  const server = http.createServer({ requireHostHeader: false }, (req, res) => {
    const headOnly = req.method === 'HEAD';
    // No route here reads a body.
    if (bodyLeftUnread(req)) res.setHeader('connection', 'close');
    const framing = framingProblem(req);
    if (framing !== null) {
      res.setHeader('connection', 'close');
      send(res, statusOf(framing.code), JSON_TYPE, JSON.stringify({ error: framing }), false);
      return;
    }
    const path = pathOf(req.url ?? '/');
    const known = path === '/healthz' || path === '/readyz' || path === '/metrics';
    if (!known) {
      send(res, 404, JSON_TYPE, JSON.stringify({ error: { code: 'RAMPART_ERR_NOT_FOUND', message: `no route ${String(req.method)} ${pathInMessage(path)}; this listener serves GET /healthz, /readyz and /metrics` } }), headOnly);
    } else if (req.method !== 'GET' && !headOnly) {
      // As on the API listener: a known path asked with another method is 405 with Allow (RFC 9110).
      res.setHeader('allow', 'GET, HEAD');
      send(res, 405, JSON_TYPE, JSON.stringify({ error: { code: 'RAMPART_ERR_METHOD_NOT_ALLOWED', message: `${path} takes GET or HEAD, not ${String(req.method)}` } }), false);
    } else if (path === '/healthz') {
      send(res, 200, JSON_TYPE, JSON.stringify({ status: 'ok' }), headOnly);
    } else if (path === '/readyz') {
      const ready = options.ready();
      if (ready === true) send(res, 200, JSON_TYPE, JSON.stringify({ status: 'ready' }), headOnly);
      else send(res, 503, JSON_TYPE, JSON.stringify({ status: 'not-ready', reason: typeof ready === 'string' ? ready : 'not ready' }), headOnly);
    } else if (path === '/metrics') {
      exposition().then(
        (text) => send(res, 200, options.registry.contentType, text, headOnly),
        (err: unknown) => send(res, 500, JSON_TYPE, JSON.stringify({ error: { code: 'RAMPART_ERR_INTERNAL', message: `metrics could not be collected: ${err instanceof Error ? err.message : String(err)}` } }), false),
      );
    }
  });
  server.on('clientError', answerClientError);
  deferContinue(server);
  server.on('connect', answerConnect);
  // As on the API listener: a client still uploading to a closing connection reads its answer.
  lingerOnClose(server);
  // Scrapers and probes hold keep-alive connections; they must not keep a stopping process up.
  server.keepAliveTimeout = 5_000;
  return {
    server,
    listen: (at) =>
      new Promise<AddressInfo>((resolve, reject) => {
        server.once('error', reject);
        server.listen(at.port, at.host, () => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        });
      }),
    close: () =>
      new Promise<void>((resolve) => {
        if (!server.listening) {
          resolve();
          return;
        }
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
