/**
 * Shares agent sightings between CA replicas through one ConfigMap per replica in the CA's
 * namespace, so `activate` (by hand on any replica, or on the leader's schedule) is judged over
 * every agent, not only the ones whose connections the Service happened to send to this replica.
 * Each replica writes its own ConfigMap, so there is no write contention; it reads the others
 * with one labelled list per round. A ConfigMap is owned by its replica's Pod (when POD_UID is
 * given), so Kubernetes' garbage collector removes it with the Pod; the CA itself needs no
 * right to delete anything. One left without an owner is ignored once older than the horizon.
 */
import type * as k8s from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { PeerSightings } from '../core/ca/propagation.js';
import type { Clock } from '../core/clock.js';
import { API_CALL_TIMEOUT_MS, timedCall } from './abortable-call.js';
import { classifyKubeError, isHttpStatus } from './api-errors.js';

/** Label every sightings ConfigMap carries; peers are listed by it. */
export const SIGHTINGS_LABEL = 'rampart.dev/ca-agent-sightings';
export const SIGHTINGS_KEY = 'sightings.json';

/** The ConfigMap name of a replica: its identity (the pod name) made a valid object name. */
export function sightingsConfigMapName(replica: string): string {
  const safe = replica.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '');
  return `rampart-ca-agents-${safe || 'replica'}`.slice(0, 253).replace(/-+$/, '');
}

export interface ConfigMapPropagationExchangeOptions {
  readonly core: k8s.CoreV1Api;
  readonly namespace: string;
  readonly replica: string;
  /** The replica's Pod UID (downward API `metadata.uid`), to make the Pod the ConfigMap's owner. */
  readonly podUid?: string | undefined;
  readonly clock: Clock;
  readonly logger?: Logger;
  /** How often to write (when changed) and read the peers. Default 5 s. */
  readonly intervalMs?: number;
  /** Written even when unchanged at least this often, so peers know this replica is alive. Default 30 s. */
  readonly heartbeatMs?: number;
}

function parseSightings(data: string | undefined): PeerSightings | null {
  if (data === undefined) return null;
  try {
    const v = JSON.parse(data) as Partial<PeerSightings> | null;
    if (v === null || typeof v !== 'object' || typeof v.replica !== 'string' || typeof v.updatedAt !== 'number' || typeof v.agentsSeen !== 'number' || !Array.isArray(v.behind)) return null;
    const behind = v.behind.filter((b) => typeof b?.agent === 'string' && typeof b.sequence === 'number' && typeof b.lastSeen === 'number');
    return { replica: v.replica, updatedAt: v.updatedAt, agentsSeen: v.agentsSeen, behind, behindOmitted: typeof v.behindOmitted === 'number' ? v.behindOmitted : 0 };
  } catch {
    return null;
  }
}

/** Shares this replica's agent sightings and collects the others', over ConfigMaps `rampart-ca-agents-<replica>`. */
export class ConfigMapPropagationExchange {
  private own: (() => PeerSightings) | null = null;
  private latest: readonly PeerSightings[] = [];
  private written: { text: string; at: number } | null = null;
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> | null = null;
  private stopped = false;
  /** Ends the round's calls at stop(): waiting them out held a replica's shutdown up to 20 s (outside QA). */
  private readonly stopping = new AbortController();
  private failing = false;
  private readonly name: string;

  constructor(private readonly o: ConfigMapPropagationExchangeOptions) {
    this.name = sightingsConfigMapName(o.replica);
  }

  start(own: () => PeerSightings): void {
    this.own = own;
    this.schedule(0);
  }

  peers(): readonly PeerSightings[] {
    return this.latest;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.stopping.abort();
    await this.round;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.round = this.exchange().finally(() => {
        this.round = null;
        this.schedule(this.o.intervalMs ?? 5_000);
      });
    }, ms);
    this.timer.unref();
  }

  private async exchange(): Promise<void> {
    try {
      await this.writeOwn();
      await this.readPeers();
      if (this.failing) this.o.logger?.info({ event: 'sightings-exchange-recovered' }, 'sharing agent sightings with the other replicas again');
      this.failing = false;
    } catch (err) {
      if (this.stopped) return;
      // Peers' last sightings stay in use; they age out by their own updatedAt.
      if (!this.failing) this.o.logger?.warn({ event: 'sightings-exchange-failed', reason: classifyKubeError(err).summary }, 'could not share agent sightings with the other replicas; retrying');
      this.failing = true;
    }
  }

  private async writeOwn(): Promise<void> {
    if (this.own === null) return;
    const sightings = this.own();
    // updatedAt changes every round; compare the rest so an idle replica writes only its heartbeat.
    const text = JSON.stringify({ ...sightings, updatedAt: 0 });
    const now = this.o.clock.now();
    if (this.written !== null && this.written.text === text && now - this.written.at < (this.o.heartbeatMs ?? 30_000)) return;
    const body: k8s.V1ConfigMap = {
      metadata: {
        name: this.name,
        namespace: this.o.namespace,
        labels: { [SIGHTINGS_LABEL]: 'true', 'app.kubernetes.io/part-of': 'rampart' },
        // No blockOwnerDeletion: setting it would need the right to delete the Pod.
        ...(this.o.podUid ? { ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: this.o.replica, uid: this.o.podUid }] } : {}),
      },
      data: { [SIGHTINGS_KEY]: JSON.stringify(sightings) },
    };
    try {
      await this.o.core.replaceNamespacedConfigMap({ name: this.name, namespace: this.o.namespace, body }, timedCall(API_CALL_TIMEOUT_MS, this.stopping.signal));
    } catch (err) {
      if (!isHttpStatus(err, 404)) throw err;
      await this.o.core.createNamespacedConfigMap({ namespace: this.o.namespace, body }, timedCall(API_CALL_TIMEOUT_MS, this.stopping.signal));
    }
    this.written = { text, at: now };
  }

  private async readPeers(): Promise<void> {
    const list = await this.o.core.listNamespacedConfigMap({ namespace: this.o.namespace, labelSelector: SIGHTINGS_LABEL }, timedCall(API_CALL_TIMEOUT_MS, this.stopping.signal));
    const peers: PeerSightings[] = [];
    for (const cm of list.items) {
      if (cm.metadata?.name === this.name) continue;
      const sightings = parseSightings(cm.data?.[SIGHTINGS_KEY]);
      if (sightings !== null) peers.push(sightings);
    }
    this.latest = peers;
  }
}
