/** `rampart token`: mint a dev service-account token for the embedded dev issuer. */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DEV_KEY_FILE, MAX_DEV_TOKEN_TTL_SECONDS, mintDevToken } from '../../authn/dev.js';
import { MAX_NAMESPACE_CHARS, MAX_SERVICE_ACCOUNT_CHARS } from '../../authn/jwt-claims.js';
import { formatDuration, parseDuration } from '../../core/clock.js';
import { isRampartError } from '../../core/errors.js';
import { validatePathSegment } from '../../core/identity.js';
import { parseFlags, required, UsageError, type FlagSpec } from '../args.js';

export const TOKEN_HELP = `Usage: rampart token --namespace NS --service-account SA [flags]

Prints a dev token shaped like a Kubernetes projected service-account token, signed by the
dev issuer key in the CA's state directory (created if missing).

Flags:
  --namespace NS          (required)
  --service-account SA    (required)
  --audience AUD          token audience (default rampart-ca)
  --ttl D                 lifetime, e.g. 10m, 1h; a bare number is seconds (default 1h; 1s to 366d)
  --pod-name NAME  --pod-uid UID   pod the token is bound to (optional)
  --state-dir DIR         CA state directory (default certs/)
`;

const RFC1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const RFC1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

const SPEC: FlagSpec = {
  namespace: { type: 'string', short: 'n' },
  'service-account': { type: 'string' },
  audience: { type: 'string' },
  ttl: { type: 'string' },
  'pod-name': { type: 'string' },
  'pod-uid': { type: 'string' },
  'state-dir': { type: 'string' },
};

interface TokenFlags {
  namespace?: string;
  'service-account'?: string;
  audience?: string;
  ttl?: string;
  'pod-name'?: string;
  'pod-uid'?: string;
  'state-dir'?: string;
  help?: boolean;
}

/**
 * Names the flag when a value cannot be a SPIFFE path segment or a Kubernetes name of that kind,
 * rather than the ID it would make: both are a flag value the command cannot use (exit 2).
 */
function kubernetesNameFlag(value: string, flag: string, maxChars: number): string {
  try {
    validatePathSegment(value);
  } catch (err) {
    const reason = isRampartError(err) ? err.message.replace(/^invalid SPIFFE ID ".*": /s, '') : 'it is not a SPIFFE path segment';
    throw new UsageError(`--${flag} "${value}" cannot be part of a SPIFFE ID: ${reason}`);
  }
  if (value.length > maxChars) throw new UsageError(`--${flag} is ${value.length} characters long; Kubernetes allows at most ${maxChars}`);
  // What Kubernetes would accept (RFC 1123): a dev token stands for a real service account, and
  // `Default` would mint an identity no cluster can have.
  const grammar = flag === 'namespace' ? RFC1123_LABEL : RFC1123_SUBDOMAIN;
  if (!grammar.test(value)) {
    throw new UsageError(`--${flag} "${value}" is not a Kubernetes ${flag === 'namespace' ? 'namespace name (lowercase letters, digits and "-", starting and ending with a letter or digit)' : 'service account name (lowercase letters, digits, "-" and ".", starting and ending with a letter or digit)'}`);
  }
  return value;
}

// Kubernetes' own limits for what a bound token names: a pod name is a DNS subdomain, its UID an
// RFC 4122 UUID. A dev token stands for one a cluster would issue, so it takes no other value.
const MAX_POD_NAME_CHARS = 253;
const POD_UID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function podNameFlag(value: string): string {
  if (value.length > MAX_POD_NAME_CHARS) throw new UsageError(`--pod-name is ${value.length} characters long; Kubernetes allows at most ${MAX_POD_NAME_CHARS}`);
  if (!RFC1123_SUBDOMAIN.test(value)) throw new UsageError(`--pod-name "${value}" is not a Kubernetes pod name (lowercase letters, digits, "-" and ".", starting and ending with a letter or digit)`);
  return value;
}

function podUidFlag(value: string): string {
  if (!POD_UID.test(value)) throw new UsageError(`--pod-uid "${value}" is not a Kubernetes UID (a lowercase UUID such as 0b3c6d0e-6f2a-4c1e-9b7d-2f1e8a9c4d5b)`);
  return value;
}

export async function runToken(argv: readonly string[]): Promise<number> {
  const { values } = parseFlags<TokenFlags>(argv, SPEC);
  if (values.help) {
    process.stdout.write(TOKEN_HELP);
    return 0;
  }
  let ttlSeconds: number | undefined;
  if (values.ttl !== undefined) {
    const ms = parseDuration(values.ttl);
    if (ms === null) throw new UsageError(`--ttl "${values.ttl}" is not a duration such as 10m or 1h`);
    // Too short and too long are one kind of mistake, refused alike (0s was a usage error, 400d a TTL_INVALID exit 1).
    if (ms < 1000 || ms > MAX_DEV_TOKEN_TTL_SECONDS * 1000) {
      throw new UsageError(`--ttl "${values.ttl}" is out of range: a dev token lives from 1s to ${formatDuration(MAX_DEV_TOKEN_TTL_SECONDS * 1000)}`);
    }
    ttlSeconds = Math.round(ms / 1000);
  }
  const stateDir = values['state-dir'] ?? 'certs';
  // Run from another directory (or with a mistyped --state-dir), this makes a key no running CA
  // knows, and the token's 401 gives no reason: say where the key went (stderr; the token is stdout).
  const newIssuer = !existsSync(join(stateDir, DEV_KEY_FILE));
  const token = await mintDevToken({
    stateDir,
    namespace: kubernetesNameFlag(required(values.namespace, 'namespace'), 'namespace', MAX_NAMESPACE_CHARS),
    serviceAccount: kubernetesNameFlag(required(values['service-account'], 'service-account'), 'service-account', MAX_SERVICE_ACCOUNT_CHARS),
    ...(values.audience !== undefined ? { audience: values.audience } : {}),
    ...(ttlSeconds !== undefined ? { ttlSeconds } : {}),
    ...(values['pod-name'] !== undefined ? { podName: podNameFlag(values['pod-name']) } : {}),
    ...(values['pod-uid'] !== undefined ? { podUid: podUidFlag(values['pod-uid']) } : {}),
  });
  process.stdout.write(`${token}\n`);
  if (newIssuer) {
    const where = resolve(stateDir);
    process.stderr.write(`rampart token: created a new dev issuer key in ${where}; only a CA running with --state-dir ${where} accepts this token (one started elsewhere answers 401)\n`);
  }
  return 0;
}
