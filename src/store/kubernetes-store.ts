/**
 * CA state in a Kubernetes Secret (`rampart-ca` in the CA's namespace), shared by every replica.
 * The Secret's resourceVersion is the revision, so `save` is an API-server compare-and-swap, and
 * each replica watches the Secret to pick up writes by the others.
 *
 * A replica that misses a write signs under a state the others left, even a retired root, so the
 * watch is not trusted alone: each stream's life is bounded (watch-lifetime.ts), and a periodic
 * read of the Secret checks that the watch has seen its latest revision, re-listing when not.
 */
import type * as k8s from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { ConflictError, StateError, UnavailableError, isRampartError } from '../core/errors.js';
import type { CaState, StateStore, StoredState, UnreadableState } from '../core/ports.js';
import { API_CALL_TIMEOUT_MS, timedCall } from '../k8s/abortable-call.js';
import { classifyKubeError, isHttpStatus } from '../k8s/api-errors.js';
import { WatchBackoff } from '../k8s/watch-backoff.js';
import { startBoundedWatch, type BoundedWatch } from '../k8s/bounded-watch.js';
import { declaresNewerSchema, decodeState, encodeState } from './state-codec.js';

/** Default Secret name (DESIGN section 8). */
export const STATE_SECRET_NAME = 'rampart-ca';
/** Key of the state JSON inside the Secret. */
export const STATE_SECRET_KEY = 'state.json';

/** Options of {@link KubernetesStateStore}. */
export interface KubernetesStateStoreOptions {
  readonly core: k8s.CoreV1Api;
  /** For the watch (client-node's Watch needs the KubeConfig itself). */
  readonly kubeConfig: k8s.KubeConfig;
  /** The CA's own namespace. */
  readonly namespace: string;
  readonly secretName?: string;
  readonly logger?: Logger;
  /** First pause before re-establishing a failed watch; it doubles per failure. Default 1 s. */
  readonly watchRetryMs?: number;
  /** Ceiling of that pause. Default 30 s. */
  readonly watchRetryMaxMs?: number;
  /**
   * How long a read or write of the Secret may go unanswered before it fails as unreachable.
   * Default 10 s. Without it a hung API server (or a black-holed connection) held a rotation
   * step, and the request that asked for it, until TCP gave up.
   */
  readonly callTimeoutMs?: number;
  /** Least life of one watch stream (see watch-lifetime.ts). Default 5 min. */
  readonly watchTimeoutMs?: number;
  /**
   * How often the Secret is read to confirm the watch is current; 0 turns it off. Default 1 min:
   * the longest a replica trails a write it did not hear about, at one read a minute.
   */
  readonly stateCheckIntervalMs?: number;
}

/** Default of {@link KubernetesStateStoreOptions.stateCheckIntervalMs}. */
export const DEFAULT_STATE_CHECK_INTERVAL_MS = 60_000;
/** How long a check waits for the event of a write it read before it calls the watch stale. */
const EVENT_GRACE_MS = 2_000;

/**
 * Says whether the API server could not be reached, refused the CA, or failed: each has its own
 * fix, and "answered" fits only the last two. At start-up this is what `rampart ca` exits with.
 */
function unavailable(e: unknown, what: string, secret: string, server: string): UnavailableError {
  const f = classifyKubeError(e);
  const head = `cannot ${what} the CA state Secret ${secret}`;
  let message: string;
  if (f.httpStatus === undefined) {
    message = `${head}: cannot reach the Kubernetes API server at ${server} (${f.noResponseCause ?? 'no response'}); check that it is up and that this process can reach it (the kubeconfig's server address, or KUBERNETES_SERVICE_HOST/PORT in a pod, and any network policy)`;
  } else if (f.httpStatus === 401 || f.httpStatus === 403) {
    message = `${head}: the Kubernetes API server at ${server} refused it (${f.summary}); check the CA's credentials and its RBAC (get, create, update on Secrets in its namespace)`;
  } else {
    message = `${head}: the Kubernetes API server at ${server} answered ${f.summary}; retry shortly`;
  }
  return new UnavailableError('RAMPART_ERR_NOT_READY', message, { retryAfterSeconds: 1 });
}

function conflict(name: string): ConflictError {
  return new ConflictError('RAMPART_ERR_STATE_CONFLICT', `another CA replica changed Secret ${name} first; reload the state and retry`);
}

/** StateStore on one Secret with resourceVersion compare-and-swap and a self-healing watch. */
export class KubernetesStateStore implements StateStore {
  private readonly name: string;
  private readonly listeners = new Set<(stored: StoredState | null) => void>();
  private readonly unreadableListeners = new Set<(unreadable: UnreadableState) => void>();
  /** Revisions this instance wrote; their watch events are not "changes by others". */
  private readonly ownRevisions = new Set<string>();
  private lastSeenRevision: string | undefined;
  /** The Secret's revision as the list or watch last showed it; null: it was absent. */
  private secretSeen: string | null | undefined;
  /** Counts what the list and watch delivered, so a check can tell whether one raced it. */
  private sightings = 0;
  private checkTimer: NodeJS.Timeout | undefined;
  /**
   * Revision of the state this instance last loaded or saved; null when load() found none,
   * undefined before either. The watch's first list compares against it: the caller holds that
   * state, so anything written between its load and watch() is news to it.
   */
  private knownRevision: string | null | undefined;
  private readonly backoff: WatchBackoff;
  private attempt: BoundedWatch | undefined;
  /** The current attempt's stream is open (the server answered it). */
  private watchOpen = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private watching = false;
  private closed = false;
  /**
   * Bumped per watch attempt, so a state check can tell that a new one started while it read. A
   * stopped attempt calls nothing back, so its late events need no guard.
   */
  private generation = 0;

  private readonly callTimeoutMs: number;

  constructor(private readonly opts: KubernetesStateStoreOptions) {
    this.name = opts.secretName ?? STATE_SECRET_NAME;
    this.callTimeoutMs = opts.callTimeoutMs ?? API_CALL_TIMEOUT_MS;
    this.backoff = new WatchBackoff({ firstMs: opts.watchRetryMs ?? 1000, maxMs: opts.watchRetryMaxMs ?? 30_000 });
  }

  private unavailable(e: unknown, what: string): UnavailableError {
    return unavailable(e, what, `${this.opts.namespace}/${this.name}`, this.opts.kubeConfig.getCurrentCluster()?.server ?? 'its configured address');
  }

  private decode(secret: k8s.V1Secret): StoredState | null {
    const b64 = secret.data?.[STATE_SECRET_KEY];
    const revision = secret.metadata?.resourceVersion;
    if (b64 === undefined || revision === undefined) return null;
    return { state: decodeState(Buffer.from(b64, 'base64').toString('utf8')), revision };
  }

  private async read(): Promise<k8s.V1Secret | null> {
    try {
      return await this.opts.core.readNamespacedSecret({ name: this.name, namespace: this.opts.namespace }, timedCall(this.callTimeoutMs));
    } catch (e) {
      if (isHttpStatus(e, 404)) return null;
      throw this.unavailable(e, 'read');
    }
  }

  /** Reads the state; null when the Secret or its `state.json` key does not exist yet. */
  async load(): Promise<StoredState | null> {
    const secret = await this.read();
    const stored = secret === null ? null : this.decode(secret);
    this.knownRevision = stored?.revision ?? null;
    return stored;
  }

  private body(next: CaState, resourceVersion?: string): k8s.V1Secret {
    return {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: this.name,
        namespace: this.opts.namespace,
        labels: { 'app.kubernetes.io/name': 'rampart', 'app.kubernetes.io/component': 'ca-state' },
        ...(resourceVersion === undefined ? {} : { resourceVersion }),
      },
      type: 'Opaque',
      data: { [STATE_SECRET_KEY]: Buffer.from(encodeState(next), 'utf8').toString('base64') },
    };
  }

  /**
   * Compare-and-swap write. `expectedRevision` null creates the Secret (or fills a pre-created
   * empty one, as manifests may ship it so RBAC can name it); otherwise the write carries the
   * revision as `metadata.resourceVersion` and the API server refuses it if anyone wrote since.
   */
  async save(next: CaState, expectedRevision: string | null): Promise<string> {
    let written: k8s.V1Secret;
    try {
      if (expectedRevision === null) {
        try {
          written = await this.opts.core.createNamespacedSecret({ namespace: this.opts.namespace, body: this.body(next) }, timedCall(this.callTimeoutMs));
        } catch (e) {
          if (!isHttpStatus(e, 409)) throw e;
          const existing = await this.read();
          if (existing === null || existing.data?.[STATE_SECRET_KEY] !== undefined || existing.metadata?.resourceVersion === undefined) throw conflict(this.name);
          written = await this.replace(next, existing.metadata.resourceVersion, existing);
        }
      } else {
        written = await this.replace(next, expectedRevision);
      }
    } catch (e) {
      if (isRampartError(e)) throw e;
      if (isHttpStatus(e, 409) || isHttpStatus(e, 404)) throw conflict(this.name);
      throw this.unavailable(e, 'write');
    }
    const revision = written.metadata?.resourceVersion;
    if (revision === undefined) throw new StateError('RAMPART_ERR_STATE_CORRUPT', `the API server returned Secret ${this.name} without a resourceVersion`);
    this.ownRevisions.add(revision);
    this.knownRevision = revision;
    return revision;
  }

  private async replace(next: CaState, resourceVersion: string, existing?: k8s.V1Secret): Promise<k8s.V1Secret> {
    const body = this.body(next, resourceVersion);
    // Keep labels/annotations others put on a pre-created Secret.
    if (existing?.metadata !== undefined) body.metadata = { ...existing.metadata, ...body.metadata, labels: { ...existing.metadata.labels, ...body.metadata?.labels } };
    return this.opts.core.replaceNamespacedSecret({ name: this.name, namespace: this.opts.namespace, body }, timedCall(this.callTimeoutMs));
  }

  /** Calls `listener` with every state another writer saves. Returns the unsubscribe function. */
  watch(listener: (stored: StoredState | null) => void, onUnreadable?: (unreadable: UnreadableState) => void): () => void {
    this.listeners.add(listener);
    if (onUnreadable !== undefined) this.unreadableListeners.add(onUnreadable);
    if (!this.watching && !this.closed) {
      this.watching = true;
      void this.establish(true);
      this.scheduleCheck();
    }
    return () => {
      this.listeners.delete(listener);
      if (onUnreadable !== undefined) this.unreadableListeners.delete(onUnreadable);
      if (this.listeners.size === 0) this.stopWatch();
    };
  }

  private stopWatch(): void {
    this.watching = false;
    this.generation += 1;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    clearTimeout(this.checkTimer);
    this.checkTimer = undefined;
    this.dropAttempt();
  }

  /** Ends the current watch attempt without a word from it. */
  private dropAttempt(): void {
    this.attempt?.stop();
    this.attempt = undefined;
    this.watchOpen = false;
  }

  private deliver(secret: k8s.V1Secret): void {
    const revision = secret.metadata?.resourceVersion;
    this.sighted(revision ?? null);
    if (revision === undefined || revision === this.lastSeenRevision) return;
    this.lastSeenRevision = revision;
    if (this.ownRevisions.delete(revision)) return;
    let stored: StoredState | null;
    try {
      stored = this.decode(secret);
    } catch (e) {
      if (isRampartError(e) && this.unreadableListeners.size > 0) {
        const b64 = secret.data?.[STATE_SECRET_KEY] ?? '';
        this.notifyUnreadable({ revision, reason: e.message, newerSchema: declaresNewerSchema(Buffer.from(b64, 'base64').toString('utf8')) });
        return;
      }
      this.opts.logger?.error(
        { secret: this.name, revision, code: isRampartError(e) ? e.code : undefined, reason: e instanceof Error ? e.message : String(e) },
        'CA state Secret changed to content that does not validate; ignoring it',
      );
      return;
    }
    this.notify(stored);
  }

  private notifyUnreadable(unreadable: UnreadableState): void {
    for (const l of [...this.unreadableListeners]) {
      try {
        l(unreadable);
      } catch (e) {
        this.opts.logger?.error({ err: e instanceof Error ? e.message : String(e) }, 'state watch listener threw');
      }
    }
  }

  /** `null`: the Secret, or its state key, is gone. */
  private notify(stored: StoredState | null): void {
    for (const l of [...this.listeners]) {
      try {
        l(stored);
      } catch (e) {
        this.opts.logger?.error({ err: e instanceof Error ? e.message : String(e) }, 'state watch listener threw');
      }
    }
  }

  /**
   * List-then-watch, like an informer. The first list catches up with the state the caller
   * loaded: a write between its load() and watch() shows up only here, as the watch starts after
   * it. After a drop the watch resumes from the last seen resourceVersion, and re-lists
   * (delivering any missed write) when the API server says that version is too old.
   */
  private async establish(initial: boolean, relist = false): Promise<void> {
    if (!this.watching) return;
    let from = this.lastSeenRevision;
    try {
      if (initial || relist || from === undefined) {
        const list = await this.opts.core.listNamespacedSecret({ namespace: this.opts.namespace, fieldSelector: `metadata.name=${this.name}` }, timedCall(this.callTimeoutMs));
        if (!this.watching) return;
        const current = list.items[0];
        if (initial) this.catchUp(current);
        else if (current !== undefined) this.deliver(current);
        else if (typeof this.secretSeen === 'string') this.deleted(undefined);
        from = list.metadata?.resourceVersion;
      }
    } catch (e) {
      this.retryAfterFailure(e, 'cannot list the CA state Secret; retrying', initial, relist);
      return;
    }
    let expired = false;
    this.generation += 1;
    this.attempt = startBoundedWatch({
      kubeConfig: this.opts.kubeConfig,
      path: `/api/v1/namespaces/${encodeURIComponent(this.opts.namespace)}/secrets`,
      params: { fieldSelector: `metadata.name=${this.name}`, resourceVersion: from, allowWatchBookmarks: 'true' },
      ...(this.opts.watchTimeoutMs === undefined ? {} : { watchTimeoutMs: this.opts.watchTimeoutMs }),
      openTimeoutMs: this.callTimeoutMs,
      onOpen: () => {
        this.watchOpen = true;
        const failures = this.backoff.established();
        if (failures > 0) this.opts.logger?.info({ secret: this.name, failedAttempts: failures }, 'CA state watch re-established');
      },
      onEvent: (type, object) => {
        const obj = object as k8s.V1Secret & { code?: number };
        this.sightings += 1;
        if (type === 'ERROR') {
          expired = obj.code === 410;
          return;
        }
        if (type === 'ADDED' || type === 'MODIFIED') this.deliver(obj);
        else if (type === 'DELETED') this.deleted(obj.metadata?.resourceVersion);
        else if (type === 'BOOKMARK') this.lastSeenRevision = obj.metadata?.resourceVersion ?? this.lastSeenRevision;
      },
      onEnd: (end) => {
        if (!this.watching) return;
        this.attempt = undefined;
        this.watchOpen = false;
        if (end.kind === 'failed') {
          this.retryAfterFailure(end.error, 'CA state watch dropped; re-establishing', false, expired);
          return;
        }
        // A clean end is the server's watch timeout, not an outage: resume without backing off.
        // An overdue one is re-listed, as it may have been silent for minutes.
        if (end.kind === 'overdue') {
          this.opts.logger?.warn(
            { secret: this.name, timeoutSeconds: end.timeoutSeconds },
            'CA state watch outlived its timeout without the API server ending it (a dropped connection that never closed?); re-listing',
          );
        }
        this.scheduleRetry(false, expired || end.kind === 'overdue', this.backoff.closedMs);
      },
    });
  }

  private sighted(revision: string | null): void {
    this.secretSeen = revision;
    this.sightings += 1;
  }

  /** The Secret is gone; `revision` is its deletion's, when the watch reported it. */
  private deleted(revision: string | undefined): void {
    if (revision !== undefined) this.lastSeenRevision = revision;
    this.sighted(null);
    this.opts.logger?.warn({ secret: this.name }, 'CA state Secret was deleted');
    this.notify(null);
  }

  private scheduleCheck(): void {
    const interval = this.opts.stateCheckIntervalMs ?? DEFAULT_STATE_CHECK_INTERVAL_MS;
    // One chain of checks: a re-subscription while a check is in flight must not start a second.
    if (interval <= 0 || !this.watching || this.checkTimer !== undefined) return;
    // A quarter either way, so replicas started together do not read together.
    this.checkTimer = setTimeout(() => {
      this.checkTimer = undefined;
      void this.checkWatchIsCurrent().finally(() => this.scheduleCheck());
    }, interval * (0.75 + Math.random() / 2));
    this.checkTimer.unref();
  }

  /**
   * Reads the Secret and compares its revision with what the watch last showed. A difference
   * that no delivery raced, and that is not this replica's own write on its way, means the watch
   * missed a write, usually because its stream went silent: it is then replaced by a re-list.
   * Outages are the watch's to report; a failed read only waits for the next check.
   */
  private async checkWatchIsCurrent(): Promise<void> {
    if (!this.watchOpen || this.secretSeen === undefined) return;
    const generation = this.generation;
    const sightings = this.sightings;
    let current: k8s.V1Secret | null;
    try {
      current = await this.read();
    } catch (e) {
      this.opts.logger?.debug({ secret: this.name, reason: e instanceof Error ? e.message : String(e) }, 'cannot read the CA state Secret to check the watch; next check later');
      return;
    }
    const revision = current?.metadata?.resourceVersion ?? null;
    const nothingMissed = (): boolean =>
      !this.watching || generation !== this.generation || sightings !== this.sightings || !this.watchOpen || revision === this.secretSeen || (revision !== null && this.ownRevisions.has(revision));
    if (nothingMissed()) return;
    // A write's event may be on its way still: give it a moment before calling the watch stale.
    await new Promise((resolve) => setTimeout(resolve, EVENT_GRACE_MS).unref());
    if (nothingMissed()) return;
    this.opts.logger?.warn(
      { secret: this.name, revision, watchRevision: this.secretSeen },
      'CA state watch missed a change to the Secret; re-listing and watching anew',
    );
    this.generation += 1;
    this.dropAttempt();
    await this.establish(false, true);
  }

  /**
   * The first list after watch(): delivers the Secret unless it is the state this instance
   * already holds, and reports it gone when it vanished since this instance loaded or saved it.
   * An instance that did neither holds nothing to compare with: what the list shows is its start.
   */
  private catchUp(current: k8s.V1Secret | undefined): void {
    const revision = current?.metadata?.resourceVersion;
    this.sighted(revision ?? null);
    if (current === undefined) {
      if (this.knownRevision !== undefined && this.knownRevision !== null) this.deleted(undefined);
    } else if (this.knownRevision === undefined || revision === this.knownRevision) {
      this.lastSeenRevision = revision;
      if (revision !== undefined) this.ownRevisions.delete(revision);
    } else {
      this.deliver(current);
    }
  }

  /** One warning per outage; the repeats are at debug, each with the growing delay. */
  private retryAfterFailure(e: unknown, message: string, initial: boolean, relist: boolean): void {
    const { delayMs, first } = this.backoff.failed();
    const fields = { secret: this.name, apiServer: classifyKubeError(e).summary, retryInMs: delayMs };
    if (first) this.opts.logger?.warn(fields, message);
    else this.opts.logger?.debug(fields, message);
    this.scheduleRetry(initial, relist, delayMs);
  }

  private scheduleRetry(initial: boolean, relist: boolean, delayMs: number): void {
    if (!this.watching || this.retryTimer !== undefined) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.establish(initial, relist);
    }, delayMs);
  }

  /** ConfigMaps are published by the leader's RootCertPublisher (src/k8s/root-cert-publisher.ts); nothing to do here. */
  async publishBundle(_pem: string): Promise<void> {}

  /** Stops the watch. */
  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
    this.unreadableListeners.clear();
    this.stopWatch();
  }
}
