/** Small helpers for tests that drive the API test server with client-node. */
import * as k8s from '@kubernetes/client-node';

/** A watch event as client-node delivers it. */
export interface SeenEvent {
  readonly type: string;
  readonly name: string;
  readonly namespace: string | undefined;
  readonly resourceVersion: string | undefined;
  readonly object: { metadata?: { name?: string; namespace?: string; resourceVersion?: string } } & Record<string, unknown>;
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes (then throws with `what`). */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 5000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Runs a client-node Watch and records its events; `stop()` aborts it. */
export async function recordWatch(kc: k8s.KubeConfig, path: string, params: Record<string, string> = {}) {
  const events: SeenEvent[] = [];
  let ended: unknown = undefined;
  let isEnded = false;
  const controller = await new k8s.Watch(kc).watch(
    path,
    params,
    (type, obj: SeenEvent['object']) => {
      events.push({ type, name: obj.metadata?.name ?? '', namespace: obj.metadata?.namespace, resourceVersion: obj.metadata?.resourceVersion, object: obj });
    },
    (err) => {
      isEnded = true;
      ended = err;
    },
  );
  return {
    events,
    get ended() {
      return isEnded;
    },
    get endError() {
      return ended;
    },
    stop: () => controller.abort(),
  };
}

/** The HTTP code and parsed Status body of a client-node ApiException. */
export function apiFailure(e: unknown): { code: number; status: { reason?: string; message?: string; code?: number; details?: Record<string, unknown> } } {
  if (!(e instanceof k8s.ApiException)) throw e;
  const body: unknown = typeof e.body === 'string' ? JSON.parse(e.body) : e.body;
  return { code: e.code, status: (body ?? {}) as { reason?: string; message?: string } };
}
