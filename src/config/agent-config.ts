/**
 * The `rampart agent` configuration: flags (and POD_NAME from the environment for the agent's
 * instance id), validated once and frozen. Errors say which flag is wrong and how to fix it.
 */
import { hostname } from 'node:os';
import { ConfigError } from '../core/errors.js';
import { InvalidSpiffeIdError, isValidSpiffeId, validateAllowPattern } from '../core/identity.js';
import { refuseListenClashes } from './listen-clash.js';
import { caUrlFlag, DEFAULT_CA_URL, durationFlag, hostPort, timerDurationFlag, type HostPort } from './values.js';

/** Flags as parsed by the CLI. */
export interface AgentFlags {
  'ca-url'?: string;
  'ca-bundle'?: string;
  'token-file'?: string;
  'out-dir'?: string;
  ttl?: string;
  inbound?: string[];
  allow?: string[];
  outbound?: string[];
  'monitoring-listen'?: string;
  'log-level'?: string;
  tunnel?: string;
  'startup-timeout'?: string;
  'drain-timeout'?: string;
}

export interface InboundRoute {
  readonly listen: HostPort;
  readonly backend: HostPort;
}

export interface OutboundRoute {
  readonly listen: HostPort;
  readonly upstream: HostPort;
  readonly expectedId: string;
}

export type AgentLogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** Everything `rampart agent` needs, validated. */
export interface AgentConfig {
  readonly caUrl: string;
  readonly caBundleFile: string;
  readonly tokenFile: string;
  /** Null: keep credentials in memory only (proxy mode without files). */
  readonly outDir: string | null;
  readonly ttlSeconds: number | undefined;
  readonly inbound: readonly InboundRoute[];
  readonly allow: readonly string[];
  readonly outbound: readonly OutboundRoute[];
  readonly monitoringListen: HostPort;
  readonly logLevel: AgentLogLevel;
  readonly tunnel: 'auto' | 'off';
  /** The first certificate must arrive within this, or the agent exits with the reason. */
  readonly startupTimeoutMs: number;
  /** On SIGTERM open connections get this long to finish. */
  readonly drainTimeoutMs: number;
  /** Sent as Rampart-Agent-Id so the CA tells pods of one service account apart. */
  readonly agentId: string;
}

export const AGENT_DEFAULTS = {
  caUrl: DEFAULT_CA_URL,
  caBundleFile: 'certs/root-cert.pem',
  tokenFile: '/var/run/secrets/rampart/token',
  monitoringListen: '127.0.0.1:15020',
  startupTimeout: '60s',
  drainTimeout: '5s',
} as const;

const LOG_LEVELS: readonly AgentLogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function invalid(message: string): ConfigError {
  return new ConfigError('RAMPART_ERR_CONFIG_INVALID', message);
}

function splitOnce(text: string, sep: string, flag: string, shape: string, whole: string = text): [string, string] {
  const at = text.indexOf(sep);
  if (at <= 0 || at === text.length - 1) throw invalid(`${flag} "${whole}" must be ${shape}`);
  return [text.slice(0, at), text.slice(at + 1)];
}

function target(text: string, flag: string, whole: string, shape: string): HostPort {
  let hp: HostPort;
  try {
    hp = hostPort(text, flag);
  } catch {
    throw invalid(`${flag} "${whole}" must be ${shape}; "${text}" is not HOST:PORT`);
  }
  if (hp.port === 0) throw invalid(`${flag} "${whole}": the destination port must be 1-65535, not 0`);
  return hp;
}

function listenAddress(text: string, flag: string, whole: string, shape: string): HostPort {
  try {
    return hostPort(text, flag);
  } catch {
    throw invalid(`${flag} "${whole}" must be ${shape}; "${text}" is not HOST:PORT`);
  }
}

/** Parses `LISTEN=BACKEND`. */
export function parseInbound(text: string): InboundRoute {
  const shape = 'LISTEN=BACKEND, e.g. 0.0.0.0:15006=127.0.0.1:8080';
  const [listen, backend] = splitOnce(text, '=', '--inbound', shape);
  return { listen: listenAddress(listen, '--inbound', text, shape), backend: target(backend, '--inbound', text, shape) };
}

/** Parses `LISTEN=HOST:PORT#SPIFFE_ID`. */
export function parseOutbound(text: string): OutboundRoute {
  const shape = 'LISTEN=HOST:PORT#SPIFFE_ID, e.g. 127.0.0.1:15001=backend:15006#spiffe://cluster.local/ns/shop/sa/backend';
  const [listen, rest] = splitOnce(text, '=', '--outbound', shape);
  const [upstream, expectedId] = splitOnce(rest, '#', '--outbound', shape, text);
  if (!isValidSpiffeId(expectedId)) throw invalid(`--outbound "${text}": "${expectedId}" is not a valid SPIFFE ID (spiffe://<trust-domain>/<path>)`);
  return { listen: listenAddress(listen, '--outbound', text, shape), upstream: target(upstream, '--outbound', text, shape), expectedId };
}

const ALLOW_FORMS = 'use an exact ID (spiffe://cluster.local/ns/shop/sa/web) or a prefix ending in "/*" (spiffe://cluster.local/ns/shop/* or spiffe://cluster.local/*)';

function parseAllow(text: string): string {
  try {
    return validateAllowPattern(text);
  } catch (err) {
    const why = err instanceof InvalidSpiffeIdError ? err.reason : (err as Error).message;
    throw invalid(`--allow "${text}" is not a SPIFFE ID or a prefix pattern: ${why}; ${ALLOW_FORMS}`);
  }
}

function defaultAgentId(env: NodeJS.ProcessEnv): string {
  const raw = env['POD_NAME'] ?? `${hostname()}-${process.pid}`;
  const cleaned = raw.replace(/[^A-Za-z0-9._:-]/g, '-').slice(0, 128);
  return cleaned === '' ? `agent-${process.pid}` : cleaned;
}

/** Builds the frozen agent configuration from flags and the environment. */
export function loadAgentConfig(flags: AgentFlags, env: NodeJS.ProcessEnv = {}): AgentConfig {
  const inbound = (flags.inbound ?? []).map(parseInbound);
  const outbound = (flags.outbound ?? []).map(parseOutbound);
  const allow = (flags.allow ?? []).map(parseAllow);
  if (inbound.length > 0 && allow.length === 0) throw invalid('--inbound needs at least one --allow SPIFFE_ID_OR_PATTERN naming who may connect');
  if (inbound.length === 0 && allow.length > 0) throw invalid('--allow only applies to --inbound listeners; add an --inbound LISTEN=BACKEND or drop --allow');
  const ttlMs = durationFlag(flags.ttl, '--ttl');
  // As for `rampart ca`: one variable sets both in a pod spec or a shell.
  const logLevel = flags['log-level'] ?? env['RAMPART_LOG_LEVEL'] ?? 'info';
  if (!LOG_LEVELS.includes(logLevel as AgentLogLevel)) throw invalid(`${flags['log-level'] === undefined ? 'RAMPART_LOG_LEVEL' : '--log-level'} "${logLevel}" must be one of ${LOG_LEVELS.join(', ')}`);
  const tunnel = flags.tunnel ?? 'auto';
  if (tunnel !== 'auto' && tunnel !== 'off') throw invalid(`--tunnel "${tunnel}" must be auto or off`);
  const ne = (value: string | undefined, flag: string, fallback: string): string => {
    if (value === undefined) return fallback;
    if (value.trim() === '') throw invalid(`${flag} must not be empty`);
    return value;
  };
  const config: AgentConfig = {
    caUrl: caUrlFlag(ne(flags['ca-url'], '--ca-url', AGENT_DEFAULTS.caUrl), '--ca-url'),
    caBundleFile: ne(flags['ca-bundle'], '--ca-bundle', AGENT_DEFAULTS.caBundleFile),
    tokenFile: ne(flags['token-file'], '--token-file', AGENT_DEFAULTS.tokenFile),
    outDir: flags['out-dir'] === undefined ? null : ne(flags['out-dir'], '--out-dir', ''),
    ttlSeconds: ttlMs === undefined ? undefined : Math.max(1, Math.ceil(ttlMs / 1000)),
    inbound,
    allow,
    outbound,
    monitoringListen: hostPort(flags['monitoring-listen'] ?? AGENT_DEFAULTS.monitoringListen, '--monitoring-listen'),
    logLevel: logLevel as AgentLogLevel,
    tunnel,
    startupTimeoutMs: timerDurationFlag(flags['startup-timeout'] ?? AGENT_DEFAULTS.startupTimeout, '--startup-timeout') as number,
    drainTimeoutMs: timerDurationFlag(flags['drain-timeout'] ?? AGENT_DEFAULTS.drainTimeout, '--drain-timeout') as number,
    agentId: defaultAgentId(env),
  };
  refuseListenClashes([
    ...inbound.map((route, i) => ({ flag: '--inbound', text: flags.inbound?.[i] ?? '', listen: route.listen })),
    ...outbound.map((route, i) => ({ flag: '--outbound', text: flags.outbound?.[i] ?? '', listen: route.listen })),
    { flag: flags['monitoring-listen'] === undefined ? '--monitoring-listen (default)' : '--monitoring-listen', text: flags['monitoring-listen'] ?? AGENT_DEFAULTS.monitoringListen, listen: config.monitoringListen },
  ]);
  return Object.freeze({ ...config, inbound: Object.freeze(inbound), outbound: Object.freeze(outbound), allow: Object.freeze(allow) });
}
