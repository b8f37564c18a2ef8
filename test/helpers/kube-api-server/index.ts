/**
 * # Kubernetes API test server
 *
 * A real HTTPS server on 127.0.0.1 (port 0) that speaks the Kubernetes REST API closely enough
 * for `@kubernetes/client-node` to drive it unmodified. No kube-apiserver binary is available to
 * the test suite, so this serves the real paths with the real semantics that Rampart relies on.
 *
 * ```ts
 * const api = await startKubeApiServer();
 * const kc = api.kubeConfig();                     // client-node KubeConfig, admin token
 * const core = kc.makeApiClient(k8s.CoreV1Api);
 * const token = await api.mintServiceAccountToken({ namespace: 'shop', serviceAccount: 'web', audiences: ['rampart-ca'] });
 * await api.close();
 * ```
 *
 * Served:
 * - `POST /apis/authentication.k8s.io/v1/tokenreviews`: validates tokens from
 *   `mintServiceAccountToken` (RS256, issuer `api.issuerUrl`): signature, issuer, `exp`
 *   (strict), `nbf` (60 s leeway), audience intersection with `spec.audiences` (empty means the
 *   API server's own audiences), bound pod not revoked (`revokePod`). Static tokens
 *   (`adminToken`, `addToken`) are audience-agnostic: accepted only for the API audiences. Answers 201 with
 *   `status.{authenticated, user:{username, uid, groups, extra}, audiences, error}`.
 * - core/v1 `namespaces`, `configmaps`, `secrets`, `serviceaccounts` and
 *   coordination.k8s.io/v1 `leases`: list (label/field selectors, equality only), get,
 *   create (201; 409 AlreadyExists), replace/PUT (409 Conflict on a stale
 *   `metadata.resourceVersion`; none means unconditional; a no-op write keeps the version and
 *   emits nothing), PATCH (merge, strategic-merge treated as merge, JSON patch), delete
 *   (preconditions honoured), and watch (`?watch=true`, `resourceVersion`, `fieldSelector`,
 *   `labelSelector`, `timeoutSeconds`), namespaced or cluster-wide (`/api/v1/configmaps?watch=1`).
 * - Discovery (`/api`, `/api/v1`, `/apis`, `/apis/<group>/<version>`) and `/version`, so
 *   `kubectl` can be pointed at the server (`writeKubeconfig`).
 * - `metadata.resourceVersion` comes from one global counter bumped on every write. Watch with
 *   no resourceVersion or "0" first sends synthetic ADDED events; with N it replays history after
 *   N, or sends one `ERROR` event with a 410 Expired Status when N is older than the retained
 *   history (`historyLimit`).
 * - Namespaces: `default`, `kube-system`, `kube-public`, `kube-node-lease` exist at start (the
 *   first three cannot be deleted). Deleting one makes it Terminating (MODIFIED event), then
 *   removes every object in it and the namespace (after `namespaceTerminationMs`, default 0).
 *   Creating in a missing namespace is 404; in a Terminating one 403.
 * - Validation the real server does: DNS-1123 names (422 Invalid), Secret `data` must be base64
 *   (`stringData` is folded into `data`), ConfigMap keys, 1 MiB limit, Lease
 *   `acquireTime`/`renewTime` must be MicroTime with exactly six fractional digits (400, as
 *   JavaScript's `toISOString()` output is refused by a real API server).
 * - Every request needs a bearer token: `api.adminToken`, one added with `addToken`, or a
 *   service-account token for the API server's audience. 401 Status otherwise.
 * - `GET /openid/v1/jwks`, `/.well-known/openid-configuration`, `/version`, `/healthz`.
 *
 * Test hooks: `requests` (method, path, verb, apiGroup, resource, namespace, name, user, status)
 * for deriving RBAC from what code really calls; `tokenReviews` counters; `injectFault` for 5xx
 * or 429 answers (`clearFaults` ends them); `stall` holds matching requests unanswered until
 * released (a hung API server or a frozen proxy in front of it); `closeWatches()` drops every open watch stream (a server-side timeout);
 * `silenceWatches()` mutes every open watch stream without closing it (a dropped NAT entry);
 * `goDown()` closes the listener and every socket (state is kept), `comeBack()` listens again on
 * the same port; `close()`.
 */
import { createServer, type Server } from 'node:https';
import type { Socket } from 'node:net';
import type { ServerResponse } from 'node:http';
import { writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { generateServingTls } from './tls.js';
import { ObjectStore } from './object-store.js';
import { RESOURCES, type ResourceType } from './resources.js';
import { ServiceAccountIssuer, type MintOptions, type ServiceAccountDirectory } from './service-account-issuer.js';
import { route, type Fault, type RequestLogEntry, type Stall, type TokenReviewCounters } from './router.js';

export type { MintOptions } from './service-account-issuer.js';
export type { RequestLogEntry, TokenReviewCounters } from './router.js';

/** Options of `startKubeApiServer`. */
export interface KubeApiServerOptions {
  /** Service-account token issuer URL (also the API server's own audience). */
  readonly issuerUrl?: string;
  /**
   * The API server's own audiences (`--api-audiences`). Default: the issuer URL. Static tokens
   * pass a TokenReview only for these.
   */
  readonly apiAudiences?: readonly string[];
  /** Changes retained for watch resumption. Default 10,000. */
  readonly historyLimit?: number;
  /** Delay before a deleted namespace's contents are purged. Default 0. */
  readonly namespaceTerminationMs?: number;
  /** Time source for token validation and timestamps (ms since epoch). Default Date.now. */
  readonly now?: () => number;
}

/** A running test API server. */
export interface KubeApiServer {
  /** `https://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** CA certificate that signed the serving certificate. */
  readonly caPem: string;
  /** Token of user `kubernetes-admin` (system:masters). */
  readonly adminToken: string;
  readonly issuerUrl: string;
  /** Every request served, oldest first. */
  readonly requests: readonly RequestLogEntry[];
  readonly tokenReviews: Readonly<TokenReviewCounters>;
  /** The options for `KubeConfig.loadFromOptions`, for the admin or a given token. */
  kubeConfigOptions(token?: string): object;
  /** A client-node KubeConfig pointing at this server. */
  kubeConfig(token?: string): k8s.KubeConfig;
  /** Writes a kubeconfig YAML/JSON file (JSON is valid YAML) and returns its path. */
  writeKubeconfig(path: string, token?: string): Promise<string>;
  mintServiceAccountToken(o: MintOptions): Promise<string>;
  /** Public JWKS of the token issuer. */
  serviceAccountJwks(): Promise<{ keys: object[] }>;
  /** Makes tokens bound to this pod uid fail review. */
  revokePod(podUid: string): void;
  /** Accepts `token` as user `username` from now on. */
  addToken(token: string, username: string): void;
  /** The next `count` requests matching verb/resource/namespace answer `status` (e.g. 500, 503, 429). */
  injectFault(f: { verb?: string; resource?: string; namespace?: string; status: number; count?: number }): void;
  /** Ends every injected fault, however many answers it had left. */
  clearFaults(): void;
  /**
   * Holds every request matching all the given fields (verb, resource, namespace, authenticated
   * user) without answering, from now until `release()`; released ones are then served.
   */
  stall(match: { verb?: string; resource?: string; namespace?: string; user?: string }): StallHandle;
  clearRequestLog(): void;
  /** Ends every open watch stream cleanly, as the server-side watch timeout does. */
  closeWatches(): void;
  /**
   * Silences every watch stream open now, for good: no more events, not even the end its
   * `timeoutSeconds` asked for, and no FIN or RST, as when a NAT entry or a load balancer's flow
   * is dropped or a proxy freezes. Watches opened afterwards work. Returns how many it silenced.
   */
  silenceWatches(): number;
  /** Simulates an outage: stops listening and destroys every connection. State is kept. */
  goDown(): Promise<void>;
  /** Listens again on the same port. */
  comeBack(): Promise<void>;
  readonly isUp: boolean;
  close(): Promise<void>;
}

/** A stall in force: `held` counts the requests it has held so far. */
export interface StallHandle {
  readonly held: number;
  release(): void;
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(e);
    server.once('error', onError);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', onError);
      const addr = server.address();
      resolve(typeof addr === 'object' && addr !== null ? addr.port : port);
    });
  });
}

/** ServiceAccount objects in `store`, for the token issuer. */
function serviceAccountDirectory(store: ObjectStore): ServiceAccountDirectory {
  const saType = RESOURCES.find((r) => r.plural === 'serviceaccounts') as ResourceType;
  const nsType = RESOURCES.find((r) => r.plural === 'namespaces') as ResourceType;
  const uidOf = (r: ResourceType, namespace: string | undefined, name: string): string | undefined => {
    try {
      return store.get(r, namespace, name).metadata.uid;
    } catch {
      return undefined;
    }
  };
  return {
    lookup: (namespace, name) => uidOf(saType, namespace, name),
    ensure(namespace, name) {
      const existing = uidOf(saType, namespace, name);
      if (existing !== undefined) return existing;
      if (uidOf(nsType, undefined, namespace) === undefined) return undefined;
      return store.create(saType, namespace, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name } }).metadata.uid;
    },
  };
}

/** Starts a Kubernetes API test server on 127.0.0.1 with a fresh CA and issuer key. */
export async function startKubeApiServer(opts: KubeApiServerOptions = {}): Promise<KubeApiServer> {
  const now = opts.now ?? Date.now;
  const tls = await generateServingTls();
  const store = new ObjectStore({ historyLimit: opts.historyLimit ?? 10_000, namespaceTerminationMs: opts.namespaceTerminationMs ?? 0, now });
  const issuer = new ServiceAccountIssuer(opts.issuerUrl ?? 'https://kubernetes.default.svc.cluster.local', now, opts.apiAudiences, serviceAccountDirectory(store));
  const nsType = RESOURCES.find((r) => r.plural === 'namespaces');
  for (const name of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
    if (nsType !== undefined) store.create(nsType, undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  }
  const adminToken = randomBytes(24).toString('base64url');
  const ctx = {
    store,
    issuer,
    staticTokens: new Map<string, string>([[adminToken, 'kubernetes-admin']]),
    log: [] as RequestLogEntry[],
    faults: [] as Fault[],
    stalls: new Set<Stall>(),
    tokenReviews: { total: 0, authenticated: 0, rejected: 0 },
    openWatches: new Set<ServerResponse>(),
    watchMutes: new Map<ServerResponse, () => void>(),
  };
  const sockets = new Set<Socket>();
  const server = createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    void route(ctx, req, res);
  });
  server.on('secureConnection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const port = await listen(server, 0);
  let up = true;
  let closed = false;

  const release = (s: Stall): void => {
    ctx.stalls.delete(s);
    for (const go of [...s.waiters]) go();
  };

  const drop = async (): Promise<void> => {
    if (!up) return;
    up = false;
    const done = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const w of ctx.openWatches) w.destroy();
    ctx.openWatches.clear();
    for (const s of sockets) s.destroy();
    sockets.clear();
    await done;
  };

  const options = (token?: string): object => ({
    clusters: [{ name: 'rampart-test', server: `https://127.0.0.1:${port}`, caData: Buffer.from(tls.caPem).toString('base64') }],
    users: [{ name: 'rampart-test-user', token: token ?? adminToken }],
    contexts: [{ name: 'rampart-test', cluster: 'rampart-test', user: 'rampart-test-user', namespace: 'default' }],
    currentContext: 'rampart-test',
  });

  return {
    url: `https://127.0.0.1:${port}`,
    port,
    caPem: tls.caPem,
    adminToken,
    issuerUrl: issuer.issuer,
    get requests() {
      return ctx.log;
    },
    get tokenReviews() {
      return ctx.tokenReviews;
    },
    get isUp() {
      return up;
    },
    kubeConfigOptions: options,
    kubeConfig(token?: string) {
      const kc = new k8s.KubeConfig();
      kc.loadFromOptions(options(token));
      return kc;
    },
    async writeKubeconfig(path: string, token?: string) {
      const doc = {
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'rampart-test', cluster: { server: `https://127.0.0.1:${port}`, 'certificate-authority-data': Buffer.from(tls.caPem).toString('base64') } }],
        users: [{ name: 'rampart-test-user', user: { token: token ?? adminToken } }],
        contexts: [{ name: 'rampart-test', context: { cluster: 'rampart-test', user: 'rampart-test-user', namespace: 'default' } }],
        'current-context': 'rampart-test',
      };
      await writeFile(path, JSON.stringify(doc, null, 2), { mode: 0o600 });
      return path;
    },
    mintServiceAccountToken: (o) => issuer.mint(o),
    serviceAccountJwks: () => issuer.jwks(),
    revokePod: (uid) => issuer.revokePod(uid),
    addToken: (token, username) => void ctx.staticTokens.set(token, username),
    injectFault: (f) => void ctx.faults.push({ ...f, remaining: f.count ?? 1 }),
    clearFaults: () => void ctx.faults.splice(0, ctx.faults.length),
    stall(match) {
      const s: Stall = { ...match, held: 0, waiters: new Set() };
      ctx.stalls.add(s);
      return {
        get held() {
          return s.held;
        },
        release: () => release(s),
      };
    },
    clearRequestLog: () => void ctx.log.splice(0, ctx.log.length),
    closeWatches() {
      for (const w of ctx.openWatches) w.end();
      ctx.openWatches.clear();
    },
    silenceWatches() {
      for (const mute of ctx.watchMutes.values()) mute();
      const silenced = ctx.watchMutes.size;
      ctx.watchMutes.clear();
      return silenced;
    },
    goDown: drop,
    async comeBack() {
      if (up || closed) return;
      await listen(server, port);
      up = true;
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const s of [...ctx.stalls]) release(s);
      store.close();
      await drop();
    },
  };
}
