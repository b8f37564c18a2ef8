/**
 * How the wait for the agent's first certificate ends when it ends without one: stopped, or out
 * of time with the last failure's code and the advice that fits it.
 */
import { ERROR_CATALOGUE, RampartError, type ErrorCode } from '../core/errors.js';

/** A renewal failure as the logs and the first-certificate wait see it. */
export interface Failure {
  readonly code: string;
  readonly message: string;
  /** The message already says what to check (the CA client's own advice for an untrusted or non-TLS server). */
  readonly advised?: boolean;
}

/** The manager was stopped before its first certificate arrived. */
export class ManagerStopped extends Error {
  constructor() {
    super('the certificate manager was stopped before it obtained a certificate');
    this.name = 'ManagerStopped';
  }
}

/** The first certificate did not arrive in time; carries the last failure's code and message. */
export class FirstCertificateTimeout extends RampartError {
  readonly lastCode: string | undefined;
  constructor(timeoutMs: number, last: Failure | null) {
    super(
      // The last failure's own code when it has one: a CA that answered is not "unreachable".
      last !== null && last.code in ERROR_CATALOGUE ? (last.code as ErrorCode) : 'RAMPART_ERR_CA_UNREACHABLE',
      `no certificate within ${Math.round(timeoutMs / 100) / 10}s: ${last?.message ?? 'the CA did not answer'}${hintFor(last)}`,
    );
    this.lastCode = last?.code;
  }
}

const CODE_CATEGORY_HINT = {
  RAMPART_ERR_CA_UNREACHABLE: '; check --ca-url and that the CA is running',
  RAMPART_ERR_UNAUTHENTICATED: '; check that --token-file holds a token the CA accepts',
  RAMPART_ERR_TOKEN_FILE: '',
  RAMPART_ERR_AUTHN_BACKEND_UNAVAILABLE: '; the CA is up but cannot check tokens now (its Kubernetes API server or JWKS source)',
} as const;

function hintFor(last: Failure | null): string {
  // The client's own advice (a CA bundle that does not trust the server, a serving certificate
  // for another host, a port without TLS) fits better than the generic "is it running" (it was).
  if (last?.advised === true) return '';
  if (last === null) return CODE_CATEGORY_HINT.RAMPART_ERR_CA_UNREACHABLE;
  return last.code in CODE_CATEGORY_HINT ? CODE_CATEGORY_HINT[last.code as keyof typeof CODE_CATEGORY_HINT] : '';
}
