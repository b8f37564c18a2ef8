/** Plain HTTP GETs through an agent's outbound listener, as the application would make them. */
import { request, type Agent } from 'node:http';

/** What one request came to. */
export type GetResult = { readonly ok: true; readonly status: number; readonly body: string } | { readonly ok: false; readonly error: string };

/**
 * GET http://127.0.0.1:PORT/PATH. Without `agent`, a new connection that closes after the
 * answer; with a keep-alive agent, a pooled one. Never rejects: failures are results.
 */
export function getThrough(port: number, options: { path?: string; agent?: Agent; timeoutMs?: number } = {}): Promise<GetResult> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (r: GetResult): void => {
      if (settled) return;
      settled = true;
      resolve(r);
    };
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: options.path ?? '/',
        method: 'GET',
        agent: options.agent ?? false,
        headers: options.agent ? {} : { connection: 'close' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => finish({ ok: false, error: err.message }));
        res.on('aborted', () => finish({ ok: false, error: 'response aborted' }));
        res.on('end', () => finish({ ok: true, status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.setTimeout(options.timeoutMs ?? 15_000, () => {
      req.destroy(new Error(`no answer within ${Math.round((options.timeoutMs ?? 15_000) / 1000)} s`));
    });
    req.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, error: err.code ? `${err.code}: ${err.message}` : err.message }));
    req.end();
  });
}
