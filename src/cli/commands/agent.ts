/** `rampart agent`: keep this workload's certificate fresh and proxy its traffic over mTLS. */
import { loadAgentConfig, type AgentFlags } from '../../config/agent-config.js';
import { isRampartError } from '../../core/errors.js';
import { createLogger } from '../../observability/logger.js';
import { isStartCancelled } from '../../agent/start-cancelled.js';
import { startAgent } from '../../agent/start-agent.js';
import { parseFlags, type FlagSpec } from '../args.js';
import { waitForShutdownSignal } from '../signals.js';

export const AGENT_HELP = `Usage: rampart agent [flags]

Per-pod agent: reads the service-account token, keeps a fresh key and X.509-SVID (renewed at
half its life), writes them to --out-dir, follows the trust bundle, and terminates/originates
mutual TLS for the local app.

Flags:
  --ca-url URL             CA API (default https://localhost:8443)
  --ca-bundle FILE         roots trusted to reach the CA (default certs/root-cert.pem)
  --token-file FILE        service-account token, re-read on every request
                           (default /var/run/secrets/rampart/token)
  --out-dir DIR            write cert-chain.pem, key.pem (0600), root-cert.pem here, atomically
                           (all three swap together through the ..data link, as kubelet does: an
                           app that reads the key and chain as a pair should read both from
                           DIR/..data/ after resolving it once)
  --ttl D                  requested certificate lifetime, e.g. 1h (a bare number is seconds);
                           the CA clamps it to its --min-ttl/--max-ttl, logged as ttl-clamped
  --inbound LISTEN=BACKEND mTLS listener forwarding to a local backend (repeatable)
  --allow ID_OR_PATTERN    peers admitted by --inbound: a SPIFFE ID or spiffe://td/ns/x/* (repeatable)
  --outbound LISTEN=HOST:PORT#SPIFFE_ID
                           plain TCP listener for the app, mTLS to the upstream, which must
                           present exactly SPIFFE_ID (repeatable)
  --tunnel auto|off        pool agent-to-agent connections as HTTP/2 tunnels (default auto);
                           a pooled session is PINGed every 30 s and dropped when its peer
                           stops answering; sessions a burst opened close after 60 s unused,
                           down to one
  --monitoring-listen HOST:PORT  /healthz /readyz /metrics (default 127.0.0.1:15020)
  --startup-timeout D      give up when no first certificate arrives within D (default 60s);
                           a SIGTERM, SIGINT or SIGHUP before then stops the agent at once (exit 0)
  --drain-timeout D        on SIGTERM, SIGINT or SIGHUP, let open connections finish for up to D
                           (default 5s; a second signal exits at once, code 1);
                           both timeouts are timers, at most 24.8 days (2^31-1 ms)
  --log-level LEVEL        pino level (default $RAMPART_LOG_LEVEL, else info)

Example:
  rampart agent --ca-url https://localhost:8443 --ca-bundle certs/root-cert.pem \\
    --token-file demo.token --out-dir /tmp/demo-certs \\
    --inbound 127.0.0.1:15006=127.0.0.1:8080 --allow 'spiffe://cluster.local/ns/default/*'
`;

const SPEC: FlagSpec = {
  'ca-url': { type: 'string' },
  'ca-bundle': { type: 'string' },
  'token-file': { type: 'string' },
  'out-dir': { type: 'string' },
  ttl: { type: 'string' },
  inbound: { type: 'string', multiple: true },
  allow: { type: 'string', multiple: true },
  outbound: { type: 'string', multiple: true },
  'monitoring-listen': { type: 'string' },
  'log-level': { type: 'string' },
  tunnel: { type: 'string' },
  'startup-timeout': { type: 'string' },
  'drain-timeout': { type: 'string' },
};

/** Runs the agent until SIGTERM, SIGINT or SIGHUP; returns the exit code. */
export async function runAgent(argv: readonly string[]): Promise<number> {
  const { values } = parseFlags<AgentFlags & { help?: boolean }>(argv, SPEC);
  if (values.help) {
    process.stdout.write(AGENT_HELP);
    return 0;
  }
  const config = loadAgentConfig(values, process.env);
  const logger = createLogger({ name: 'rampart-agent', level: config.logLevel });
  // Listen for the signal from the start: a SIGTERM during start-up must stop the agent then,
  // not after the first certificate or the start-up deadline.
  const cancel = new AbortController();
  // SIGHUP drains too: the terminal an agent was started from closing is no reason to cut its
  // connections. A second signal while draining (Ctrl-C twice) stops at once, and says so.
  const signal = waitForShutdownSignal({
    signals: ['SIGINT', 'SIGTERM', 'SIGHUP'],
    onRepeat: (again) => {
      logger.warn({ event: 'agent-stopped-abruptly', signal: again }, `second ${again}: exiting now without waiting for open connections`);
      logger.flush();
      process.exit(1);
    },
  }).then((received) => {
    cancel.abort();
    return received;
  });
  let agent;
  try {
    agent = await startAgent(config, { logger, signal: cancel.signal });
  } catch (err) {
    if (isStartCancelled(err)) {
      const received = await signal;
      const when = err.phase === 'before-first-certificate' ? 'before its first certificate' : 'after its first certificate, before its listeners were up';
      logger.info({ event: 'agent-stopped', signal: received, phase: err.phase }, `stopped by ${received} during start-up, ${when}`);
      logger.flush();
      return 0;
    }
    // Start-up failures (unreadable token, CA not answering, token refused) are operator
    // errors: one line saying what to fix, exit 2, like a bad flag.
    if (isRampartError(err)) {
      logger.flush();
      process.stderr.write(`rampart agent: ${err.message} [${err.code}]\n`);
      return 2;
    }
    throw err;
  }
  const received = await signal;
  logger.info({ signal: received, drainMs: config.drainTimeoutMs }, 'draining connections and shutting down');
  await agent.stop();
  logger.info('agent stopped');
  logger.flush();
  return 0;
}
