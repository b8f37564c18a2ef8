/** Classifies failures of client-node calls so callers can map them to Rampart errors. */
import * as k8s from '@kubernetes/client-node';

/** What went wrong talking to the API server. */
export interface KubeFailure {
  /** HTTP status, or undefined when no response arrived (connection refused, reset, TLS, timeout). */
  readonly httpStatus: number | undefined;
  /** `Status.reason` of the answer, when it carried one. */
  readonly reason: string | undefined;
  /** True for no response, 5xx and 429: worth retrying, and not the caller's fault. */
  readonly transient: boolean;
  /** A short description safe for logs (never the request body). */
  readonly summary: string;
  /** When no response arrived: the socket error code (ECONNREFUSED…) or the error's name. */
  readonly noResponseCause?: string;
}

function statusReason(body: unknown): string | undefined {
  let parsed: unknown = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  const reason = (parsed as { reason?: unknown } | null | undefined)?.reason;
  return typeof reason === 'string' ? reason : undefined;
}

/** Classifies an error thrown by a client-node API call or Watch. */
export function classifyKubeError(e: unknown): KubeFailure {
  if (e instanceof k8s.ApiException) {
    const code = e.code;
    const reason = statusReason(e.body);
    return { httpStatus: code, reason, transient: code >= 500 || code === 429, summary: `HTTP ${code}${reason === undefined ? '' : ` ${reason}`}` };
  }
  const status = (e as { statusCode?: unknown } | null)?.statusCode;
  if (typeof status === 'number') return { httpStatus: status, reason: undefined, transient: status >= 500 || status === 429, summary: `HTTP ${status}` };
  const code = (e as { code?: unknown } | null)?.code;
  const name = e instanceof Error ? e.name : 'Error';
  return {
    httpStatus: undefined,
    reason: undefined,
    transient: true,
    summary: `${name}${typeof code === 'string' ? ` ${code}` : ''}: no response from the API server`,
    noResponseCause: typeof code === 'string' ? code : name === 'AbortError' ? 'no answer in time' : name,
  };
}

/** True when the error is an HTTP answer with this status. */
export function isHttpStatus(e: unknown, status: number): boolean {
  return classifyKubeError(e).httpStatus === status;
}
