/**
 * Per-call cancellation for client-node requests. client-node 1.x sets no request timeout, so a
 * call to an API server that hangs (or over a black-holed connection) stays pending until TCP
 * gives up, minutes later. Passing these options to a call hands `signal` to its fetch, which
 * then rejects with an AbortError as soon as the signal fires.
 */
import * as k8s from '@kubernetes/client-node';

/** Options for one client-node call that aborts it when `signal` fires. */
export function abortableCall(signal: AbortSignal): k8s.ConfigurationOptions {
  const attach: k8s.ObservableMiddleware = {
    pre(context) {
      context.setSignal(signal);
      return new k8s.Observable(Promise.resolve(context));
    },
    post: (response) => new k8s.Observable(Promise.resolve(response)),
  };
  // 'append' keeps whatever middleware the client was built with; the default replaces it.
  return { middleware: [attach], middlewareMergeStrategy: 'append' };
}

/** How long one plain API call (not a watch) may take before it counts as no answer. */
export const API_CALL_TIMEOUT_MS = 10_000;

/** Options for one client-node call that gives up after `ms`, or as soon as `until` fires. */
export function timedCall(ms = API_CALL_TIMEOUT_MS, until?: AbortSignal): k8s.ConfigurationOptions {
  const timeout = AbortSignal.timeout(ms);
  return abortableCall(until === undefined ? timeout : AbortSignal.any([until, timeout]));
}
