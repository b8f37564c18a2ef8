/** The demo's application: a tiny HTTP server that says who it is and counts requests. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** A running demo service on 127.0.0.1. */
export interface DemoService {
  readonly name: string;
  readonly port: number;
  /** Requests answered so far. */
  readonly served: number;
  close(): Promise<void>;
}

/** Starts `name` on 127.0.0.1:0; every answer is `hello from NAME (request #N)`. */
export async function startDemoService(name: string): Promise<DemoService> {
  let served = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    // Drain the request body before answering, so keep-alive stays in step.
    req.resume();
    req.on('end', () => {
      served++;
      const body = `hello from ${name} (request #${served})\n`;
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  // A client's keep-alive connection must not be closed under it while a request is on its way:
  // keep idle connections far longer than any pause in the demo's or the drill's traffic.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    name,
    port,
    get served() {
      return served;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
