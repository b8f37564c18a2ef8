/**
 * Keeps ConfigMap `rampart-root-cert` (key `root-cert.pem`) with the current trust bundle in
 * every namespace: created when a namespace appears, rewritten when the bundle changes or
 * someone edits it, recreated when deleted. Run it on the elected leader only.
 *
 * Failed writes back off like the watches (watch-backoff.ts). Retried every second, each with a
 * warning, an API server outage used to cost a request and a log line per namespace per second
 * for as long as it lasted, on a server that was struggling already.
 */
import type * as k8s from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { timedCall } from './abortable-call.js';
import { classifyKubeError, isHttpStatus } from './api-errors.js';
import { startListWatch, type ListWatchHandle } from './list-watch.js';
import { WatchBackoff } from './watch-backoff.js';

/** ConfigMap name and key agents mount (DESIGN section 9). */
export const ROOT_CERT_CONFIGMAP = 'rampart-root-cert';
export const ROOT_CERT_KEY = 'root-cert.pem';

/** Options of {@link RootCertPublisher}. */
export interface RootCertPublisherOptions {
  readonly core: k8s.CoreV1Api;
  readonly kubeConfig: k8s.KubeConfig;
  readonly logger?: Logger;
  /** First pause before retrying failed writes or re-establishing a failed watch; it doubles per failure. Default 1 s. */
  readonly retryMs?: number;
  /** Ceiling of that pause. Default 30 s. */
  readonly retryMaxMs?: number;
  /** Least life of one watch stream (see watch-lifetime.ts). Default 5 min. */
  readonly watchTimeoutMs?: number;
}

/** A root-cert ConfigMap someone marked `immutable: true`: only deleting it lets it be repaired. */
class ImmutableConfigMap extends Error {}

/** Reconciles the root-cert ConfigMap into all active namespaces. */
export class RootCertPublisher {
  private bundle: string | undefined;
  private readonly active = new Set<string>();
  private readonly queue = new Set<string>();
  private draining = false;
  /** Namespaces whose immutable ConfigMap was reported, with the bundle it was reported for. */
  private readonly immutableLogged = new Map<string, string | undefined>();
  private retryTimer: NodeJS.Timeout | undefined;
  private watches: ListWatchHandle[] = [];
  private running = false;
  private idleWaiters: Array<() => void> = [];
  /** Paces retries of failed writes; one per publisher, since an outage fails every namespace alike. */
  private readonly writeBackoff: WatchBackoff;

  constructor(private readonly opts: RootCertPublisherOptions) {
    this.writeBackoff = new WatchBackoff({ firstMs: opts.retryMs ?? 1000, maxMs: opts.retryMaxMs ?? 30_000 });
  }

  /** Sets the bundle PEM and rewrites every namespace's copy that differs. */
  setBundle(pem: string): void {
    if (pem.trim() === '') throw new RangeError('the trust bundle must not be empty');
    if (pem === this.bundle) return;
    this.bundle = pem;
    for (const ns of this.active) this.enqueue(ns);
  }

  /** Starts watching namespaces and the ConfigMaps. */
  start(): void {
    if (this.running) return;
    this.running = true;
    const { core, kubeConfig, logger } = this.opts;
    const retry = {
      retryMs: this.opts.retryMs ?? 1000,
      ...(this.opts.retryMaxMs === undefined ? {} : { retryMaxMs: this.opts.retryMaxMs }),
      ...(this.opts.watchTimeoutMs === undefined ? {} : { watchTimeoutMs: this.opts.watchTimeoutMs }),
    };
    this.watches.push(
      startListWatch<k8s.V1Namespace>({
        what: 'namespaces',
        kubeConfig,
        path: '/api/v1/namespaces',
        list: () => core.listNamespace({}, timedCall()),
        ...retry,
        ...(logger === undefined ? {} : { logger }),
        onSync: (items) => {
          const names = new Set(items.filter((n) => this.isActive(n)).map((n) => n.metadata?.name ?? ''));
          for (const ns of [...this.active]) if (!names.has(ns)) this.active.delete(ns);
          for (const ns of names) {
            this.active.add(ns);
            this.enqueue(ns);
          }
        },
        onEvent: (type, n) => {
          const name = n.metadata?.name;
          if (name === undefined) return;
          if (type !== 'DELETED' && this.isActive(n)) {
            if (!this.active.has(name)) {
              this.active.add(name);
              this.enqueue(name);
            }
          } else {
            this.active.delete(name);
            this.queue.delete(name);
          }
        },
      }),
      startListWatch<k8s.V1ConfigMap>({
        what: 'root-cert configmaps',
        kubeConfig,
        path: '/api/v1/configmaps',
        params: { fieldSelector: `metadata.name=${ROOT_CERT_CONFIGMAP}` },
        list: () => core.listConfigMapForAllNamespaces({ fieldSelector: `metadata.name=${ROOT_CERT_CONFIGMAP}` }, timedCall()),
        ...retry,
        ...(logger === undefined ? {} : { logger }),
        onSync: (items) => {
          for (const cm of items) if (this.differs(cm)) this.enqueue(cm.metadata?.namespace ?? '');
        },
        onEvent: (type, cm) => {
          const ns = cm.metadata?.namespace ?? '';
          if (type === 'DELETED' || this.differs(cm)) this.enqueue(ns);
        },
      }),
    );
  }

  private isActive(n: k8s.V1Namespace): boolean {
    return n.metadata?.deletionTimestamp === undefined && n.status?.phase !== 'Terminating';
  }

  private differs(cm: k8s.V1ConfigMap): boolean {
    return this.bundle !== undefined && cm.data?.[ROOT_CERT_KEY] !== this.bundle;
  }

  private enqueue(ns: string): void {
    if (!this.running || ns === '' || !this.active.has(ns) || this.bundle === undefined) return;
    this.queue.add(ns);
    // While a retry is scheduled the API server is failing: new work waits for that retry, which
    // writes the bundle current then, so a bundle set meanwhile is the one written.
    if (!this.draining && this.retryTimer === undefined) void this.drain();
  }

  /** One namespace at a time, so two writes to the same ConfigMap never race each other. */
  private async drain(): Promise<void> {
    this.draining = true;
    const failed = new Set<string>();
    let reconciled = 0;
    let lastFailure = { namespace: '', apiServer: '' };
    while (this.running && this.queue.size > 0) {
      const ns = this.queue.values().next().value as string;
      this.queue.delete(ns);
      if (!this.active.has(ns)) continue;
      try {
        await this.ensure(ns);
        reconciled += 1;
        this.immutableLogged.delete(ns);
      } catch (e) {
        if (e instanceof ImmutableConfigMap) {
          // Retrying cannot help; the ConfigMap watch brings the namespace back once it is deleted.
          if (this.immutableLogged.get(ns) !== this.bundle) {
            this.opts.logger?.error(
              { event: 'root-cert-configmap-immutable', namespace: ns },
              `ConfigMap ${ROOT_CERT_CONFIGMAP} in namespace ${ns} is marked immutable, so it keeps an old trust bundle; delete it (kubectl -n ${ns} delete configmap ${ROOT_CERT_CONFIGMAP}) and it is recreated with the current one`,
            );
            this.immutableLogged.set(ns, this.bundle);
          }
          continue;
        }
        const f = classifyKubeError(e);
        // Gone or terminating namespaces are not failures: their watch event removes them.
        if (f.httpStatus === 404 || f.httpStatus === 403) continue;
        lastFailure = { namespace: ns, apiServer: f.summary };
        failed.add(ns);
        if (f.transient) {
          // No answer, 5xx or 429: the API server itself is failing, and every other namespace
          // would cost it a request (or a 10 s timeout) to fail alike. They wait for the retry,
          // this one going last then, so a failure that is this namespace's alone holds no other back.
          failed.delete(ns);
          for (const rest of this.queue) failed.add(rest);
          failed.add(ns);
          this.queue.clear();
        }
      }
    }
    this.draining = false;
    if (!this.running) return;
    if (failed.size > 0) this.retryLater(failed, lastFailure);
    else if (reconciled > 0) this.recovered();
    if (this.queue.size === 0 && failed.size === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  /** One warning per outage; the repeats are at debug, each with the growing delay. */
  private retryLater(failed: ReadonlySet<string>, failure: { namespace: string; apiServer: string }): void {
    const { delayMs, first } = this.writeBackoff.failed();
    const fields = { event: 'root-cert-publish-failed', ...failure, waitingNamespaces: failed.size, retryInMs: delayMs };
    const message = 'could not publish the root certificate ConfigMap; will retry';
    if (first) this.opts.logger?.warn(fields, message);
    else this.opts.logger?.debug(fields, message);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      // What was queued during the wait goes first, the namespace that failed last.
      const order = [...[...this.queue].filter((ns) => !failed.has(ns)), ...failed];
      this.queue.clear();
      for (const ns of order) if (this.active.has(ns)) this.queue.add(ns);
      // Written with the bundle current now.
      if (this.running && !this.draining && this.queue.size > 0) void this.drain();
    }, delayMs);
  }

  /** A round wrote everything it tried: log the end of an outage, if there was one, and start over. */
  private recovered(): void {
    const failedAttempts = this.writeBackoff.established();
    if (failedAttempts > 0) this.opts.logger?.info({ event: 'root-cert-publish-recovered', failedAttempts }, 'root certificate ConfigMaps are written again');
  }

  private async ensure(namespace: string): Promise<void> {
    const pem = this.bundle;
    if (pem === undefined) return;
    const { core } = this.opts;
    let existing: k8s.V1ConfigMap;
    try {
      existing = await core.readNamespacedConfigMap({ name: ROOT_CERT_CONFIGMAP, namespace }, timedCall());
    } catch (e) {
      if (!isHttpStatus(e, 404)) throw e;
      try {
        await core.createNamespacedConfigMap({
          namespace,
          body: { metadata: { name: ROOT_CERT_CONFIGMAP, namespace, labels: { 'app.kubernetes.io/name': 'rampart', 'app.kubernetes.io/component': 'trust-bundle' } }, data: { [ROOT_CERT_KEY]: pem } },
        }, timedCall());
        this.opts.logger?.info({ namespace }, 'published root certificate ConfigMap');
      } catch (err) {
        // Someone created it meanwhile: look again.
        if (isHttpStatus(err, 409)) this.queue.add(namespace);
        else throw err;
      }
      return;
    }
    if (existing.data?.[ROOT_CERT_KEY] === pem) return;
    // The API server refuses any change to an immutable ConfigMap (422), and this CA may not delete.
    if (existing.immutable === true) throw new ImmutableConfigMap();
    try {
      // The API server refuses a key in both data and binaryData: a copy moved there goes.
      const { [ROOT_CERT_KEY]: _moved, ...binaryData } = existing.binaryData ?? {};
      const body: k8s.V1ConfigMap = { ...existing, data: { ...existing.data, [ROOT_CERT_KEY]: pem } };
      if (existing.binaryData !== undefined) body.binaryData = binaryData;
      await core.replaceNamespacedConfigMap({ name: ROOT_CERT_CONFIGMAP, namespace, body }, timedCall());
      this.opts.logger?.info({ namespace }, 'updated root certificate ConfigMap');
    } catch (e) {
      if (isHttpStatus(e, 409)) this.queue.add(namespace);
      else throw e;
    }
  }

  /** Resolves once no write is queued or in flight (for tests and graceful handover). */
  whenIdle(): Promise<void> {
    if (!this.draining && this.queue.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops watching and writing. */
  stop(): void {
    this.running = false;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    // Leading again later is a fresh start, not the next attempt of an old outage.
    this.writeBackoff.established();
    for (const w of this.watches) w.stop();
    this.watches = [];
    this.queue.clear();
    for (const w of this.idleWaiters.splice(0)) w();
  }
}
