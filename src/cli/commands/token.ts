/** `rampart token`: mint a dev service-account token for the embedded dev issuer. */
import { mintDevToken } from '../../authn/dev.js';
import { parseDuration } from '../../core/clock.js';
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
  --ttl D                 lifetime, e.g. 10m, 1h (default 1h)
  --pod-name NAME  --pod-uid UID   pod the token is bound to (optional)
  --state-dir DIR         CA state directory (default certs/)
`;

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

/** Names the flag when a value cannot be a SPIFFE path segment, rather than the ID it would make. */
function pathSegmentFlag(value: string, flag: string): string {
  try {
    return validatePathSegment(value);
  } catch (err) {
    const reason = isRampartError(err) ? err.message.replace(/^invalid SPIFFE ID ".*": /s, '') : 'it is not a SPIFFE path segment';
    throw new UsageError(`--${flag} "${value}" cannot be part of a SPIFFE ID: ${reason}`);
  }
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
    if (ms === null || ms < 1000) throw new UsageError(`--ttl "${values.ttl}" is not a duration such as 10m or 1h`);
    ttlSeconds = Math.round(ms / 1000);
  }
  const token = await mintDevToken({
    stateDir: values['state-dir'] ?? 'certs',
    namespace: pathSegmentFlag(required(values.namespace, 'namespace'), 'namespace'),
    serviceAccount: pathSegmentFlag(required(values['service-account'], 'service-account'), 'service-account'),
    ...(values.audience !== undefined ? { audience: values.audience } : {}),
    ...(ttlSeconds !== undefined ? { ttlSeconds } : {}),
    ...(values['pod-name'] !== undefined ? { podName: values['pod-name'] } : {}),
    ...(values['pod-uid'] !== undefined ? { podUid: values['pod-uid'] } : {}),
  });
  process.stdout.write(`${token}\n`);
  return 0;
}
