/**
 * In-memory etcd stand-in: objects per resource type, one global resourceVersion counter bumped
 * on every write, a bounded history of changes for `watch?resourceVersion=N`, and live watchers.
 */
import { randomUUID, randomBytes } from 'node:crypto';
import { apiVersionOf, RESOURCES, type ResourceType } from './resources.js';
import { deleteSuccess, errors, type ErrorTarget, type KubeStatus } from './status.js';
import type { Matcher } from './selectors.js';
import { validateAndDefault, type KubeObject } from './validation.js';

/** One event of a watch stream. */
export interface WatchEvent {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'ERROR';
  readonly object: unknown;
}

interface Change {
  readonly rv: number;
  readonly resource: ResourceType;
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly before: KubeObject | undefined;
  readonly after: KubeObject;
}

interface Watcher {
  readonly resource: ResourceType;
  readonly namespace: string | undefined;
  readonly matcher: Matcher;
  readonly emit: (event: WatchEvent) => void;
}

/** Options of the store. */
export interface ObjectStoreOptions {
  /** Changes kept for watch resumption; older resourceVersions answer 410 Expired. */
  readonly historyLimit: number;
  /** How long a deleted namespace stays Terminating before its contents are purged (0: at once). */
  readonly namespaceTerminationMs: number;
  readonly now: () => number;
}

const PROTECTED_NAMESPACES = new Set(['default', 'kube-system', 'kube-public']);
const SERVER_MANAGED_META = ['uid', 'resourceVersion', 'creationTimestamp', 'deletionTimestamp', 'generation', 'managedFields', 'selfLink'];

function key(namespace: string | undefined, name: string): string {
  return `${namespace ?? ''}/${name}`;
}

function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

/** Deterministic JSON (sorted keys) to detect no-op updates. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) =>
    val !== null && typeof val === 'object' && !Array.isArray(val)
      ? Object.fromEntries(Object.entries(val as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : val,
  );
}

/** The object database behind the HTTP layer. */
export class ObjectStore {
  private rv = 1000;
  private compactedRv = 1000;
  private readonly objects = new Map<ResourceType, Map<string, KubeObject>>();
  private readonly history: Change[] = [];
  private readonly watchers = new Set<Watcher>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly opts: ObjectStoreOptions) {
    for (const r of RESOURCES) this.objects.set(r, new Map());
  }

  /** Current global resourceVersion (what a list answers with). */
  resourceVersion(): string {
    return String(this.rv);
  }

  private table(r: ResourceType): Map<string, KubeObject> {
    return this.objects.get(r) as Map<string, KubeObject>;
  }

  private target(r: ResourceType, name: string | undefined): ErrorTarget {
    return { resource: r.plural, group: r.group, ...(name === undefined ? {} : { name }) };
  }

  private namespaceType(): ResourceType {
    return RESOURCES.find((x) => x.plural === 'namespaces') as ResourceType;
  }

  private record(resource: ResourceType, type: Change['type'], before: KubeObject | undefined, after: KubeObject): void {
    const change: Change = { rv: this.rv, resource, type, before: before === undefined ? undefined : clone(before), after: clone(after) };
    this.history.push(change);
    while (this.history.length > this.opts.historyLimit) {
      const dropped = this.history.shift() as Change;
      this.compactedRv = dropped.rv;
    }
    for (const w of [...this.watchers]) {
      const event = this.eventFor(w, change);
      if (event !== null) w.emit(event);
    }
  }

  /** Translates a change into what one watcher sees, honouring its selectors like the watch cache does. */
  private eventFor(w: Watcher, c: Change): WatchEvent | null {
    if (w.resource !== c.resource) return null;
    if (w.namespace !== undefined && c.after.metadata.namespace !== w.namespace) return null;
    const was = c.before !== undefined && w.matcher(c.before);
    const is = w.matcher(c.after);
    if (c.type === 'DELETED') return was || is ? { type: 'DELETED', object: clone(c.after) } : null;
    if (was && is) return { type: 'MODIFIED', object: clone(c.after) };
    if (!was && is) return { type: 'ADDED', object: clone(c.after) };
    if (was && !is) return { type: 'DELETED', object: clone(c.after) };
    return null;
  }

  /** Reads one object. */
  get(r: ResourceType, namespace: string | undefined, name: string): KubeObject {
    const obj = this.table(r).get(key(namespace, name));
    if (obj === undefined) throw errors.notFound(this.target(r, name));
    return clone(obj);
  }

  /** Lists objects of a type, optionally in one namespace, filtered by selectors. */
  list(r: ResourceType, namespace: string | undefined, matcher: Matcher): KubeObject[] {
    return [...this.table(r).values()]
      .filter((o) => (namespace === undefined || o.metadata.namespace === namespace) && matcher(o))
      .sort((a, b) => key(a.metadata.namespace, a.metadata.name ?? '').localeCompare(key(b.metadata.namespace, b.metadata.name ?? '')))
      .map(clone);
  }

  private checkNamespaceWritable(r: ResourceType, namespace: string | undefined, name: string): void {
    if (!r.namespaced) return;
    const ns = this.table(this.namespaceType()).get(key(undefined, namespace ?? ''));
    if (ns === undefined) throw errors.notFound({ resource: 'namespaces', group: '', name: namespace ?? '' });
    if (ns.metadata.deletionTimestamp !== undefined) {
      throw errors.forbidden(`${r.plural} "${name}" is forbidden: unable to create new content in namespace ${namespace ?? ''} because it is being terminated`, this.target(r, name));
    }
  }

  /** Creates an object; 409 AlreadyExists when the name is taken. */
  create(r: ResourceType, namespace: string | undefined, body: KubeObject): KubeObject {
    const obj = clone(body);
    obj.apiVersion = apiVersionOf(r);
    obj.kind = r.kind;
    obj.metadata = { ...(obj.metadata ?? {}) };
    for (const f of SERVER_MANAGED_META) delete obj.metadata[f];
    if (obj.metadata.name === undefined && typeof obj.metadata.generateName === 'string') {
      obj.metadata.name = obj.metadata.generateName + randomBytes(3).toString('hex').slice(0, 5);
    }
    if (r.namespaced) obj.metadata.namespace = namespace;
    else delete obj.metadata.namespace;
    const name = obj.metadata.name ?? '';
    validateAndDefault(r, obj, this.target(r, name));
    this.checkNamespaceWritable(r, namespace, name);
    if (this.table(r).has(key(namespace, name))) throw errors.alreadyExists(this.target(r, name));
    if (r.kind === 'Namespace') obj['status'] = { phase: 'Active' };
    this.rv += 1;
    obj.metadata.uid = randomUUID();
    obj.metadata.resourceVersion = String(this.rv);
    obj.metadata.creationTimestamp = rfc3339(this.opts.now());
    this.table(r).set(key(namespace, name), obj);
    this.record(r, 'ADDED', undefined, obj);
    return clone(obj);
  }

  /**
   * Replaces an object (PUT). A stale `metadata.resourceVersion` answers 409 Conflict; an absent
   * one is an unconditional update. A write that changes nothing keeps the resourceVersion and
   * emits no event, as etcd's GuaranteedUpdate does.
   */
  update(r: ResourceType, namespace: string | undefined, name: string, body: KubeObject): KubeObject {
    const existing = this.table(r).get(key(namespace, name));
    if (existing === undefined) throw errors.notFound(this.target(r, name));
    const obj = clone(body);
    obj.apiVersion = apiVersionOf(r);
    obj.kind = r.kind;
    obj.metadata = { ...(obj.metadata ?? {}) };
    const wanted = obj.metadata.resourceVersion;
    if (wanted !== undefined && wanted !== '' && wanted !== existing.metadata.resourceVersion) throw errors.conflict(this.target(r, name));
    if (obj.metadata.uid !== undefined && obj.metadata.uid !== existing.metadata.uid) {
      throw errors.preconditionFailed(this.target(r, name), `Precondition failed: UID in precondition: ${obj.metadata.uid}, UID in object meta: ${existing.metadata.uid ?? ''}`);
    }
    for (const f of SERVER_MANAGED_META) delete obj.metadata[f];
    delete obj.metadata.generateName;
    obj.metadata.namespace = existing.metadata.namespace;
    if (obj.metadata.namespace === undefined) delete obj.metadata.namespace;
    validateAndDefault(r, obj, this.target(r, name));
    // As the real API server: an immutable ConfigMap or Secret keeps its data and stays immutable;
    // only a delete (and a new object) changes it.
    if ((r.kind === 'ConfigMap' || r.kind === 'Secret') && existing['immutable'] === true) {
      for (const field of ['data', 'binaryData', 'stringData'] as const) {
        if (canonical(obj[field] ?? null) !== canonical(existing[field] ?? null)) throw errors.invalid(r.kind, this.target(r, name), field, 'Forbidden: field is immutable when `immutable` is set');
      }
      if (obj['immutable'] !== true) throw errors.invalid(r.kind, this.target(r, name), 'immutable', 'Forbidden: field is immutable when `immutable` is set');
    }
    // Status is a subresource: a main-resource PUT cannot change it.
    if (existing['status'] !== undefined) obj['status'] = clone(existing['status']);
    for (const f of ['uid', 'creationTimestamp', 'deletionTimestamp', 'resourceVersion'] as const) {
      if (existing.metadata[f] !== undefined) obj.metadata[f] = existing.metadata[f];
    }
    if (canonical(obj) === canonical(existing)) return clone(existing);
    this.rv += 1;
    obj.metadata.resourceVersion = String(this.rv);
    this.table(r).set(key(namespace, name), obj);
    this.record(r, 'MODIFIED', existing, obj);
    return clone(obj);
  }

  /**
   * Deletes an object. Namespaces go Terminating first and their contents are purged
   * (immediately, or after `namespaceTerminationMs`); the answer is the namespace object, while
   * other kinds answer a Success Status, like the real server.
   */
  delete(r: ResourceType, namespace: string | undefined, name: string, preconditions?: { resourceVersion?: string; uid?: string }): KubeObject | KubeStatus {
    const existing = this.table(r).get(key(namespace, name));
    if (existing === undefined) throw errors.notFound(this.target(r, name));
    if (preconditions?.resourceVersion !== undefined && preconditions.resourceVersion !== existing.metadata.resourceVersion) {
      throw errors.preconditionFailed(this.target(r, name), `Precondition failed: ResourceVersion in precondition: ${preconditions.resourceVersion}, ResourceVersion in object meta: ${existing.metadata.resourceVersion ?? ''}`);
    }
    if (preconditions?.uid !== undefined && preconditions.uid !== existing.metadata.uid) {
      throw errors.preconditionFailed(this.target(r, name), `Precondition failed: UID in precondition: ${preconditions.uid}, UID in object meta: ${existing.metadata.uid ?? ''}`);
    }
    if (r.kind === 'Namespace') return this.deleteNamespace(r, existing);
    this.remove(r, existing);
    return deleteSuccess(this.target(r, name), existing.metadata.uid ?? '');
  }

  private remove(r: ResourceType, existing: KubeObject): void {
    this.rv += 1;
    const gone = clone(existing);
    gone.metadata.resourceVersion = String(this.rv);
    this.table(r).delete(key(existing.metadata.namespace, existing.metadata.name ?? ''));
    this.record(r, 'DELETED', existing, gone);
  }

  private deleteNamespace(r: ResourceType, existing: KubeObject): KubeObject {
    const name = existing.metadata.name ?? '';
    if (PROTECTED_NAMESPACES.has(name)) throw errors.forbidden(`namespaces "${name}" is forbidden: this namespace may not be deleted`, this.target(r, name));
    if (existing.metadata.deletionTimestamp !== undefined) return clone(existing);
    const terminating = clone(existing);
    terminating.metadata.deletionTimestamp = rfc3339(this.opts.now());
    terminating['status'] = { phase: 'Terminating' };
    this.rv += 1;
    terminating.metadata.resourceVersion = String(this.rv);
    this.table(r).set(key(undefined, name), terminating);
    this.record(r, 'MODIFIED', existing, terminating);
    const finalize = (): void => {
      for (const type of RESOURCES) {
        if (!type.namespaced) continue;
        for (const obj of [...this.table(type).values()]) if (obj.metadata.namespace === name) this.remove(type, obj);
      }
      const current = this.table(r).get(key(undefined, name));
      if (current !== undefined) this.remove(r, current);
    };
    if (this.opts.namespaceTerminationMs <= 0) finalize();
    else {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        finalize();
      }, this.opts.namespaceTerminationMs);
      this.timers.add(timer);
    }
    return clone(terminating);
  }

  /**
   * Starts a watch. No resourceVersion (or "0"): synthetic ADDED for every current match, then
   * changes. resourceVersion N: every change after N from history, then live changes; N older
   * than the retained history yields one ERROR event with a 410 Expired Status (the caller then
   * ends the stream). Returns the function that stops the watch.
   */
  watch(r: ResourceType, namespace: string | undefined, matcher: Matcher, resourceVersion: string | null, emit: (e: WatchEvent) => void): { stop: () => void; expired: boolean } {
    const w: Watcher = { resource: r, namespace, matcher, emit };
    if (resourceVersion === null || resourceVersion === '' || resourceVersion === '0') {
      for (const obj of this.list(r, namespace, matcher)) emit({ type: 'ADDED', object: obj });
    } else {
      const from = Number(resourceVersion);
      if (!Number.isInteger(from) || from < 0) throw errors.badRequest(`invalid resourceVersion "${resourceVersion}"`);
      if (from < this.compactedRv) {
        emit({ type: 'ERROR', object: errors.expired(`too old resource version: ${from} (${this.compactedRv})`).status });
        return { stop: () => undefined, expired: true };
      }
      for (const c of this.history) {
        if (c.rv <= from) continue;
        const e = this.eventFor(w, c);
        if (e !== null) emit(e);
      }
    }
    this.watchers.add(w);
    return { stop: () => this.watchers.delete(w), expired: false };
  }

  /** Cancels pending namespace finalizers. */
  close(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.watchers.clear();
  }
}
