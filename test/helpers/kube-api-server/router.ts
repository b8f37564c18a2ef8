/** HTTP layer of the test API server: authentication, request log, fault injection, REST verbs and watch streams. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { compileSelectors } from './selectors.js';
import { findResource, parseResourcePath, apiVersionOf, type ParsedPath, type ResourceType } from './resources.js';
import { errors, KubeApiError, type KubeStatus } from './status.js';
import { jsonPatch, mergePatch } from './patch.js';
import type { ObjectStore, WatchEvent } from './object-store.js';
import type { ServiceAccountIssuer, TokenReviewStatus } from './service-account-issuer.js';
import { discoveryDocument } from './discovery.js';
import type { KubeObject } from './validation.js';

/** One served request, as an RBAC audit would see it. */
export interface RequestLogEntry {
  readonly method: string;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  /** Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection; '' for non-resource paths. */
  readonly verb: string;
  readonly apiGroup: string;
  readonly resource: string;
  readonly subresource: string | undefined;
  readonly namespace: string | undefined;
  readonly name: string | undefined;
  /** Authenticated username, or 'system:anonymous'. */
  user: string;
  /** HTTP status answered (0 while a watch is still streaming). */
  status: number;
}

/** A scripted failure: the next `count` requests matching verb/resource answer `status`. */
export interface Fault {
  readonly verb?: string;
  readonly resource?: string;
  readonly namespace?: string;
  readonly status: number;
  remaining: number;
}

/**
 * A scripted hang: requests matching every given field are held unanswered, as by a frozen API
 * server or proxy, until `release` lets them through. One whose client gave up meanwhile is
 * dropped, as it never reached the server.
 */
export interface Stall {
  readonly verb?: string;
  readonly resource?: string;
  readonly namespace?: string;
  readonly user?: string;
  /** Requests held so far (including released and abandoned ones). */
  held: number;
  readonly waiters: Set<() => void>;
}

/** Counters of TokenReview calls. */
export interface TokenReviewCounters {
  total: number;
  authenticated: number;
  rejected: number;
}

/** Everything the router needs from the server. */
export interface RouterContext {
  readonly store: ObjectStore;
  readonly issuer: ServiceAccountIssuer;
  readonly staticTokens: Map<string, string>;
  readonly log: RequestLogEntry[];
  readonly faults: Fault[];
  readonly stalls: Set<Stall>;
  readonly tokenReviews: TokenReviewCounters;
  readonly openWatches: Set<ServerResponse>;
  /** Mutes an open watch for good: no more events and no timeout end, the stream left open. */
  readonly watchMutes: Map<ServerResponse, () => void>;
}

const MAX_BODY = 3 * 1024 * 1024;

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new KubeApiError({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Request entity too large: limit is 3145728', reason: 'RequestEntityTooLarge', code: 413 });
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw errors.badRequest('the request body is not valid JSON');
  }
}

function verbOf(method: string, p: ParsedPath | null, watch: boolean): string {
  if (p === null) return '';
  const named = p.name !== undefined;
  switch (method) {
    case 'GET':
      return watch ? 'watch' : named ? 'get' : 'list';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return named ? 'delete' : 'deletecollection';
    default:
      return method.toLowerCase();
  }
}

async function authenticate(ctx: RouterContext, req: IncomingMessage): Promise<string | null> {
  const header = req.headers.authorization;
  if (header === undefined || !header.startsWith('Bearer ')) return null;
  const token = header.slice('Bearer '.length).trim();
  const known = ctx.staticTokens.get(token);
  if (known !== undefined) return known;
  // Service-account tokens for the API server's own audience authenticate too (in-cluster clients).
  const review = await ctx.issuer.review(token, undefined);
  return review.authenticated === true ? (review.user.username ?? null) : null;
}

function faultFor(ctx: RouterContext, entry: RequestLogEntry): Fault | undefined {
  const f = ctx.faults.find(
    (x) => x.remaining > 0 && (x.verb === undefined || x.verb === entry.verb) && (x.resource === undefined || x.resource === entry.resource) && (x.namespace === undefined || x.namespace === entry.namespace),
  );
  if (f !== undefined) f.remaining -= 1;
  return f;
}

function stallFor(ctx: RouterContext, e: RequestLogEntry): Stall | undefined {
  for (const s of ctx.stalls) {
    if ((s.verb === undefined || s.verb === e.verb) && (s.resource === undefined || s.resource === e.resource) && (s.namespace === undefined || s.namespace === e.namespace) && (s.user === undefined || s.user === e.user)) return s;
  }
  return undefined;
}

/** Holds the request until its stall is released; false when the client went away meanwhile. */
function holdWhileStalled(stall: Stall, res: ServerResponse): Promise<boolean> {
  stall.held += 1;
  return new Promise((resolve) => {
    const go = (): void => {
      stall.waiters.delete(go);
      res.off('close', go);
      resolve(!res.destroyed && !res.writableEnded);
    };
    stall.waiters.add(go);
    res.once('close', go);
  });
}

function faultStatus(code: number): KubeStatus {
  const reason = code === 429 ? 'TooManyRequests' : code === 503 ? 'ServiceUnavailable' : code === 504 ? 'Timeout' : 'InternalError';
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `injected failure (${reason})`, reason, code };
}

/** Handles one request end to end; never throws. */
export async function route(ctx: RouterContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'https://kube.invalid');
  const query = Object.fromEntries(url.searchParams.entries());
  const watch = query['watch'] === 'true' || query['watch'] === '1';
  const parsed = parseResourcePath(url.pathname);
  const method = req.method ?? 'GET';
  const entry: RequestLogEntry = {
    method,
    path: url.pathname,
    query,
    verb: verbOf(method, parsed, watch),
    apiGroup: parsed?.group ?? '',
    resource: parsed?.plural ?? '',
    subresource: parsed?.subresource,
    namespace: parsed?.namespace ?? (parsed?.plural === 'namespaces' ? parsed.name : undefined),
    name: parsed?.name,
    user: 'system:anonymous',
    status: 0,
  };
  ctx.log.push(entry);
  const settle = (): void => {
    if (res.headersSent) entry.status = res.statusCode;
  };
  res.on('finish', settle);
  res.on('close', settle);
  try {
    const user = await authenticate(ctx, req);
    if (user === null) throw errors.unauthorized();
    entry.user = user;
    const stall = stallFor(ctx, entry);
    if (stall !== undefined && !(await holdWhileStalled(stall, res))) return;
    const fault = faultFor(ctx, entry);
    if (fault !== undefined) {
      send(res, fault.status, faultStatus(fault.status), fault.status === 429 ? { 'retry-after': '1' } : {});
      return;
    }
    await dispatch(ctx, req, res, url, parsed, watch);
  } catch (e) {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (e instanceof KubeApiError) send(res, e.code, e.status);
    else send(res, 500, errors.internal(e instanceof Error ? e.message : 'unexpected').status);
  }
}

async function dispatch(ctx: RouterContext, req: IncomingMessage, res: ServerResponse, url: URL, p: ParsedPath | null, watch: boolean): Promise<void> {
  const method = req.method ?? 'GET';
  if (method === 'GET' && ['/healthz', '/livez', '/readyz'].includes(url.pathname)) {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    return;
  }
  if (method === 'GET' && url.pathname === '/version') return send(res, 200, { major: '1', minor: '31', gitVersion: 'v1.31.0-rampart-test' });
  if (method === 'GET' && url.pathname === '/openid/v1/jwks') return send(res, 200, await ctx.issuer.jwks());
  if (method === 'GET' && url.pathname === '/.well-known/openid-configuration') {
    return send(res, 200, { issuer: ctx.issuer.issuer, jwks_uri: `${ctx.issuer.issuer}/openid/v1/jwks`, response_types_supported: ['id_token'], subject_types_supported: ['public'], id_token_signing_alg_values_supported: ['RS256'] });
  }
  if (method === 'GET') {
    const discovery = discoveryDocument(url.pathname, req.headers.host ?? '127.0.0.1');
    if (discovery !== undefined) return send(res, 200, discovery);
  }
  if (p === null) throw errors.pathNotFound();
  if (p.group === 'authentication.k8s.io' && p.version === 'v1' && p.plural === 'tokenreviews') {
    if (method !== 'POST' || p.name !== undefined) throw errors.methodNotAllowed();
    return tokenReview(ctx, req, res);
  }
  const r = findResource(p);
  if (r === undefined || p.subresource !== undefined) throw errors.pathNotFound();
  if (!r.namespaced && p.namespace !== undefined) throw errors.pathNotFound();
  const t = { resource: r.plural, group: r.group, ...(p.name === undefined ? {} : { name: p.name }) };
  const ns = p.namespace;

  if (method === 'GET' && watch) return startWatch(ctx, req, res, r, ns, url);
  if (method === 'GET' && p.name === undefined) {
    const matcher = compileSelectors(url.searchParams.get('labelSelector'), url.searchParams.get('fieldSelector'));
    const items = ctx.store.list(r, ns, matcher).map(({ apiVersion: _a, kind: _k, ...rest }) => rest);
    return send(res, 200, { kind: `${r.kind}List`, apiVersion: apiVersionOf(r), metadata: { resourceVersion: ctx.store.resourceVersion() }, items });
  }
  if (method === 'GET') return send(res, 200, ctx.store.get(r, ns, p.name as string));
  if (method === 'POST' && p.name === undefined) {
    if (r.namespaced && ns === undefined) throw errors.methodNotAllowed();
    const body = objectBody(await readBody(req), r);
    if (body.metadata.namespace !== undefined && ns !== undefined && body.metadata.namespace !== ns) {
      throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    return send(res, 201, ctx.store.create(r, ns, body));
  }
  if (p.name === undefined) throw errors.methodNotAllowed();
  const name = p.name;
  if (method === 'PUT') {
    const body = objectBody(await readBody(req), r);
    if (body.metadata.name !== name) throw errors.badRequest(`the name of the object (${body.metadata.name ?? ''}) does not match the name on the URL (${name})`);
    if (body.metadata.namespace !== undefined && ns !== undefined && body.metadata.namespace !== ns) {
      throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    return send(res, 200, ctx.store.update(r, ns, name, body));
  }
  if (method === 'PATCH') {
    const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
    const patch = await readBody(req);
    const current = ctx.store.get(r, ns, name);
    let next: unknown;
    if (type === 'application/merge-patch+json' || type === 'application/strategic-merge-patch+json') next = mergePatch(current, patch);
    else if (type === 'application/json-patch+json') next = jsonPatch(current, patch);
    else throw errors.unsupportedMediaType(type);
    const body = objectBody(next, r);
    // A patch without resourceVersion applies to whatever is current; one with it is a precondition.
    const patchedRv = (patch as { metadata?: { resourceVersion?: string } } | undefined)?.metadata?.resourceVersion;
    if (type !== 'application/json-patch+json' && patchedRv === undefined) delete body.metadata.resourceVersion;
    if (body.metadata.name !== name) throw errors.badRequest('metadata.name cannot be changed by a patch');
    return send(res, 200, ctx.store.update(r, ns, name, body));
  }
  if (method === 'DELETE') {
    const opts = (await readBody(req)) as { preconditions?: { resourceVersion?: string; uid?: string } } | undefined;
    return send(res, 200, ctx.store.delete(r, ns, name, opts?.preconditions));
  }
  throw errors.methodNotAllowed();
}

function objectBody(body: unknown, r: ResourceType): KubeObject {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw errors.badRequest(`${r.kind} in version "${r.version}" cannot be handled as a ${r.kind}: expected a JSON object`);
  const obj = body as KubeObject;
  if (obj.kind !== undefined && obj.kind !== r.kind) throw errors.badRequest(`${r.kind} in version "${r.version}" cannot be handled as a ${r.kind}: the kind is "${String(obj.kind)}"`);
  if (obj.metadata === undefined || typeof obj.metadata !== 'object') obj.metadata = {};
  return obj;
}

async function tokenReview(ctx: RouterContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = (await readBody(req)) as { kind?: string; spec?: { token?: unknown; audiences?: unknown } } | undefined;
  if (body?.kind !== undefined && body.kind !== 'TokenReview') throw errors.badRequest(`TokenReview in version "v1" cannot be handled as a TokenReview: the kind is "${String(body.kind)}"`);
  const token = body?.spec?.token;
  if (typeof token !== 'string' || token === '') throw errors.invalid('TokenReview', { resource: 'tokenreviews', group: 'authentication.k8s.io' }, 'spec.token', 'Required value: token must not be empty');
  const audiences = Array.isArray(body?.spec?.audiences) ? (body.spec.audiences as unknown[]).filter((a): a is string => typeof a === 'string') : undefined;
  ctx.tokenReviews.total += 1;
  const status = staticTokenReview(ctx, token, audiences) ?? (await ctx.issuer.review(token, audiences));
  if (status.authenticated === true) ctx.tokenReviews.authenticated += 1;
  else ctx.tokenReviews.rejected += 1;
  send(res, 201, { kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1', metadata: { creationTimestamp: null }, spec: body?.spec ?? {}, status });
}

/**
 * Static tokens are audience-agnostic: like the real server, they authenticate only when the
 * requested audiences intersect the API server's own, and then answer with that intersection.
 */
function staticTokenReview(ctx: RouterContext, token: string, audiences: readonly string[] | undefined): TokenReviewStatus | null {
  const username = ctx.staticTokens.get(token);
  if (username === undefined) return null;
  const wanted = audiences === undefined || audiences.length === 0 ? ctx.issuer.apiAudiences : audiences;
  const granted = wanted.filter((a) => ctx.issuer.apiAudiences.includes(a));
  if (granted.length === 0) return { user: {}, error: '[invalid bearer token, token lookup failed]' };
  return { authenticated: true, user: { username, groups: ['system:authenticated'] }, audiences: granted };
}

function startWatch(ctx: RouterContext, req: IncomingMessage, res: ServerResponse, r: ResourceType, ns: string | undefined, url: URL): void {
  const matcher = compileSelectors(url.searchParams.get('labelSelector'), url.searchParams.get('fieldSelector'));
  // Status and headers go out only once the watch is registered, so bad parameters still answer 400.
  const buffered: WatchEvent[] = [];
  let open = false;
  let muted = false;
  const write = (e: WatchEvent): void => {
    if (muted) return;
    if (!open) {
      buffered.push(e);
      return;
    }
    res.write(JSON.stringify(e) + '\n');
  };
  const w = ctx.store.watch(r, ns, matcher, url.searchParams.get('resourceVersion'), write);
  res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked', 'cache-control': 'no-cache' });
  res.flushHeaders();
  open = true;
  for (const e of buffered) res.write(JSON.stringify(e) + '\n');
  if (w.expired) {
    res.end();
    return;
  }
  ctx.openWatches.add(res);
  const timeoutSeconds = Number(url.searchParams.get('timeoutSeconds') ?? '0');
  const timer = timeoutSeconds > 0 ? setTimeout(() => res.end(), timeoutSeconds * 1000) : undefined;
  ctx.watchMutes.set(res, () => {
    muted = true;
    if (timer !== undefined) clearTimeout(timer);
  });
  const stop = (): void => {
    w.stop();
    if (timer !== undefined) clearTimeout(timer);
    ctx.openWatches.delete(res);
    ctx.watchMutes.delete(res);
  };
  res.on('close', stop);
}
