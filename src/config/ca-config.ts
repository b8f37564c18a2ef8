/**
 * The `rampart ca` configuration: defaults, then the --config JSON file, then flags. Validated
 * once and frozen; nothing else in the CA reads flags, files or the environment for settings.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { refuseListenClashes } from './listen-clash.js';
import { ConfigError } from '../core/errors.js';
import { formatDuration } from '../core/clock.js';
import { formatSpiffeId, parseSpiffeId, validateTrustDomain } from '../core/identity.js';
import { DEFAULT_TTL_POLICY, type TtlPolicy } from '../core/ca/policy.js';
import { DEFAULT_LIFETIMES, type CaLifetimes } from '../core/ca/rotation.js';
import { durationFlag, hostPort, type HostPort } from './values.js';
import { checkLeaseTimings } from './lease-timings.js';
import { usableCpus } from './cpu-budget.js';

const MIN_ROOT_TTL_MS = 3_600_000;

export const AUTHENTICATOR_NAMES = ['dev', 'jwks', 'kubernetes', 'svid'] as const;
export type AuthenticatorName = (typeof AUTHENTICATOR_NAMES)[number];

export interface JwksSettings {
  readonly issuer: string;
  readonly file?: string;
  /** Where `file` was set (`--jwks-file` or `config "jwks.file"`), for error messages. */
  readonly fileSetting?: string;
  readonly url?: string;
  readonly discovery?: boolean;
  readonly caFile?: string;
  readonly audience: string;
}

export interface KubernetesSettings {
  readonly namespace: string;
  /** Path of a kubeconfig; in-cluster credentials are used when absent. */
  readonly kubeconfig?: string;
  readonly audience: string;
  readonly tokenReviewRatePerSecond: number;
  /** KUBERNETES_SERVICE_HOST/PORT for in-cluster access (read here, the only place env is read). */
  readonly inClusterHost?: string;
  readonly inClusterPort?: string;
  /** This replica's name for leader election (POD_NAME, else hostname-pid). */
  readonly identity: string;
  /** This replica's Pod UID (POD_UID), which owns the ConfigMap of its agent sightings. */
  readonly podUid?: string;
  /** Lease timings; defaults follow client-go (15 s lease, 10 s renew deadline, 2 s retry). */
  readonly leaderElection?: { readonly leaseDurationMs?: number; readonly renewDeadlineMs?: number; readonly retryPeriodMs?: number };
  /** Least life of a watch stream (`--watch-timeout`); absent: the store's and publisher's default, 5 min. */
  readonly watchTimeoutMs?: number;
  /** How often the state Secret is read to confirm the watch (`--state-check-interval`); absent: 1 min. */
  readonly stateCheckIntervalMs?: number;
}

export interface CaConfig {
  readonly stateDir: string;
  readonly store: 'file' | 'kubernetes';
  readonly listen: HostPort;
  readonly monitoringListen: HostPort;
  readonly trustDomain: string;
  readonly authn: readonly AuthenticatorName[];
  readonly ttl: TtlPolicy;
  readonly lifetimes: CaLifetimes;
  readonly pluggedCaDir?: string;
  readonly adminIdentities: readonly string[];
  readonly jwks?: JwksSettings;
  readonly kubernetes: KubernetesSettings;
  /** Extra DNS names / IPs for the serving certificate (Service names in a cluster). */
  readonly servingNames: readonly string[];
  readonly autoRotate: boolean;
  readonly bundleRefreshIntervalMs: number;
  readonly maxInFlight: number;
  readonly workers: number;
  /** Requests each signing process serves itself on a throwaway CA before it listens (runtime/issue-path-warm-up.ts); 0 = none. */
  readonly warmUpRequests: number;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  readonly crashAt?: string;
}

/** Flags as strings (from parseArgs), every one optional. */
export interface CaFlags {
  readonly 'state-dir'?: string;
  readonly store?: string;
  readonly listen?: string;
  readonly 'monitoring-listen'?: string;
  readonly 'trust-domain'?: string;
  readonly authn?: string;
  readonly 'default-ttl'?: string;
  readonly 'min-ttl'?: string;
  readonly 'max-ttl'?: string;
  readonly 'root-ttl'?: string;
  readonly 'intermediate-ttl'?: string;
  readonly 'plugged-ca'?: string;
  readonly config?: string;
  readonly 'jwks-issuer'?: string;
  readonly 'jwks-file'?: string;
  readonly 'jwks-url'?: string;
  readonly kubeconfig?: string;
  readonly namespace?: string;
  readonly 'serving-name'?: readonly string[];
  readonly 'auto-rotate'?: string;
  readonly 'bundle-refresh-interval'?: string;
  readonly 'max-in-flight'?: string;
  readonly workers?: string;
  readonly 'warm-up-requests'?: string;
  readonly 'log-level'?: string;
  readonly 'lease-duration'?: string;
  readonly 'renew-deadline'?: string;
  readonly 'retry-period'?: string;
  readonly 'watch-timeout'?: string;
  readonly 'state-check-interval'?: string;
}

function invalid(message: string): ConfigError {
  return new ConfigError('RAMPART_ERR_CONFIG_INVALID', message);
}

type Json = Record<string, unknown>;

function readConfigFile(path: string): Json {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw invalid(`cannot read --config ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
    return parsed as Json;
  } catch (err) {
    throw invalid(err instanceof SyntaxError ? `--config ${path} is not valid JSON` : `--config ${path} is not a JSON object`);
  }
}

/**
 * Every key a config file may hold, per section (docs/configuration.md). A misspelt key is
 * refused rather than ignored: `trustdomain` silently running as cluster.local is an outage later.
 */
const CONFIG_KEYS = {
  '': ['stateDir', 'store', 'listen', 'monitoringListen', 'trustDomain', 'authn', 'defaultTtl', 'minTtl', 'maxTtl', 'rootTtl', 'intermediateTtl', 'pluggedCa', 'admin', 'jwks', 'kubernetes', 'servingNames', 'autoRotate', 'bundleRefreshInterval', 'maxInFlight', 'workers', 'warmUpRequests', 'logLevel'],
  admin: ['identities'],
  jwks: ['issuer', 'file', 'url', 'caFile', 'audience'],
  kubernetes: ['kubeconfig', 'namespace', 'audience', 'tokenReviewRatePerSecond', 'leaseDuration', 'renewDeadline', 'retryPeriod', 'watchTimeout', 'stateCheckInterval'],
} as const;

function checkKeys(object: Json, where: keyof typeof CONFIG_KEYS): void {
  const known: readonly string[] = CONFIG_KEYS[where];
  for (const key of Object.keys(object)) {
    if (!known.includes(key)) {
      const path = where === '' ? key : `${where}.${key}`;
      throw invalid(`config "${path}" is not a known key; ${where === '' ? 'top-level' : `"${where}"`} keys are ${known.join(', ')} (docs/configuration.md)`);
    }
  }
}

/**
 * The JSON type each scalar key takes (docs/configuration.md: "values take their JSON type").
 * Durations are strings like "90s": a bare 3600 would read as seconds to one user and milliseconds
 * to another. A boolean written as "false" is refused rather than guessed.
 */
const SCALAR_KINDS: Readonly<Record<string, 'string' | 'duration' | 'boolean' | 'count' | 'workers'>> = {
  stateDir: 'string', store: 'string', listen: 'string', monitoringListen: 'string', trustDomain: 'string', authn: 'string',
  pluggedCa: 'string', logLevel: 'string', kubeconfig: 'string', namespace: 'string', audience: 'string',
  defaultTtl: 'duration', minTtl: 'duration', maxTtl: 'duration', rootTtl: 'duration', intermediateTtl: 'duration',
  bundleRefreshInterval: 'duration', leaseDuration: 'duration', renewDeadline: 'duration', retryPeriod: 'duration',
  watchTimeout: 'duration', stateCheckInterval: 'duration',
  autoRotate: 'boolean', maxInFlight: 'count', workers: 'workers', warmUpRequests: 'count',
};

const KIND_WANTED = {
  string: 'a string',
  duration: 'a duration string such as "90s", "5m", "1h" or "30d"',
  boolean: 'true or false (a JSON boolean, not a string)',
  count: 'a whole number',
  workers: 'a whole number or "auto"',
} as const;

/** A scalar setting of the config file as its flag text, after checking its JSON type. */
function str(file: Json, key: string, where = ''): string | undefined {
  const v = file[key];
  if (v === undefined) return undefined;
  const kind = SCALAR_KINDS[key] ?? 'string';
  const ok =
    kind === 'boolean' ? typeof v === 'boolean'
    : kind === 'count' ? typeof v === 'number' && Number.isInteger(v)
    : kind === 'workers' ? (typeof v === 'number' && Number.isInteger(v)) || v === 'auto'
    : typeof v === 'string';
  if (!ok) throw invalid(`config "${where === '' ? key : `${where}.${key}`}" must be ${KIND_WANTED[kind]}, got ${JSON.stringify(v)}`);
  return String(v);
}

/** A list setting: a JSON list of strings (`authn` also takes its comma-separated flag form). */
function stringList(file: Json, key: string): readonly string[] | undefined {
  const v = file[key];
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.some((item) => typeof item !== 'string')) throw invalid(`config "${key}" must be a list of strings`);
  return v as string[];
}

function positiveNumber(file: Json, key: string, where: string, fallback: number): number {
  const v = file[key];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw invalid(`config "${where}.${key}" must be a positive number`);
  return v;
}

// A DNS name of RFC 1123 labels, optionally with a wildcard first label, as a serving SAN allows.
const DNS_NAME = /^(?:\*\.)?(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

function servingName(name: string, label: string): string {
  if (isIP(name) !== 0 || (name.length <= 253 && DNS_NAME.test(name))) return name;
  throw invalid(`${label} "${name}" is neither a DNS name (letters, digits, "-", dots; "*." only as the first label) nor an IP address`);
}

function section(file: Json, key: string): Json {
  const v = file[key];
  if (v === undefined) return {};
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw invalid(`config "${key}" must be an object`);
  return v as Json;
}

/** Names a setting in messages where its bad value came from: the flag, or the config file's key. */
function settingName(flags: CaFlags, flag: keyof CaFlags, section: Json, key: string, path = key): string {
  return flags[flag] === undefined && section[key] !== undefined ? `config "${path}"` : `--${flag}`;
}

/** A bad value as messages quote it: a pasted blob is cut short. */
const quoted = (text: string): string => `"${text.length > 24 ? `${text.slice(0, 24)}…` : text}"`;

function wholeNumber(text: string | undefined, name: string, fallback: number, most = Number.MAX_SAFE_INTEGER): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text)) throw invalid(`${name} must be a whole number (0 or more), got ${quoted(text)}`);
  // Past 2^53 a count is no longer exact (9007199254740993 read as ...992), and each setting has
  // a ceiling beyond which it can only be a typo.
  if (Number(text) > most) throw invalid(`${name} must be at most ${most}, got ${quoted(text)}`);
  return Number(text);
}

function positiveInt(text: string | undefined, name: string, fallback: number, most = Number.MAX_SAFE_INTEGER): number {
  if (text !== undefined && (!/^\d+$/.test(text) || Number(text) < 1)) throw invalid(`${name} must be a positive whole number, got "${text}"`);
  return wholeNumber(text, name, fallback, most);
}

/** More warm-up than this only delays the start: V8 has optimised the path long before. */
export const MAX_WARM_UP_REQUESTS = 20_000;

/**
 * The most signing workers: each is a node process holding the signer (about 60 MB), and more
 * than the cores only adds memory and context switches; a mistyped count must not fork thousands.
 */
export const MAX_WORKERS = 256;

/** `--workers N`, or `auto`: one signing process per CPU the process may use (cgroup quota included). */
function workerCount(text: string | undefined, name: string): number {
  if (text === 'auto') return usableCpus();
  if (text !== undefined && !/^\d+$/.test(text)) throw invalid(`${name} must be a positive whole number or "auto", got "${text}"`);
  return positiveInt(text, name, 1, MAX_WORKERS);
}

/** Builds the frozen CA config. `env` is passed in so tests can control it. */
export function loadCaConfig(flags: CaFlags, env: NodeJS.ProcessEnv): CaConfig {
  const file = flags.config ? readConfigFile(flags.config) : {};
  checkKeys(file, '');
  const pick = (flag: keyof CaFlags, key: string): string | undefined => (flags[flag] as string | undefined) ?? str(file, key);
  const named = (flag: keyof CaFlags, key: string): string => settingName(flags, flag, file, key);

  const trustDomain = pick('trust-domain', 'trustDomain') ?? 'cluster.local';
  try {
    validateTrustDomain(trustDomain);
  } catch {
    throw invalid(`${named('trust-domain', 'trustDomain')} "${trustDomain}" is not a valid trust domain (lowercase letters, digits, ".", "-", "_")`);
  }
  const authnText = flags.authn ?? (Array.isArray(file['authn']) ? stringList(file, 'authn')?.join(',') : str(file, 'authn')) ?? 'dev,svid';
  const authn = authnText.split(',').map((s) => s.trim()).filter(Boolean);
  for (const name of authn) {
    if (!(AUTHENTICATOR_NAMES as readonly string[]).includes(name)) throw invalid(`--authn "${name}" is unknown; choose from ${AUTHENTICATOR_NAMES.join(', ')}`);
  }
  if (authn.length === 0) throw invalid('--authn must name at least one authenticator');

  const ttl: TtlPolicy = {
    defaultTtlMs: durationFlag(pick('default-ttl', 'defaultTtl'), named('default-ttl', 'defaultTtl')) ?? DEFAULT_TTL_POLICY.defaultTtlMs,
    minTtlMs: durationFlag(pick('min-ttl', 'minTtl'), named('min-ttl', 'minTtl')) ?? DEFAULT_TTL_POLICY.minTtlMs,
    maxTtlMs: durationFlag(pick('max-ttl', 'maxTtl'), named('max-ttl', 'maxTtl')) ?? DEFAULT_TTL_POLICY.maxTtlMs,
  };
  if (!(ttl.minTtlMs <= ttl.defaultTtlMs && ttl.defaultTtlMs <= ttl.maxTtlMs)) {
    // The values as read: `--default-ttl 10` is 10 seconds, which a reader may not expect.
    const shown = `${formatDuration(ttl.minTtlMs)} <= ${formatDuration(ttl.defaultTtlMs)} <= ${formatDuration(ttl.maxTtlMs)}`;
    throw invalid(`TTLs must satisfy --min-ttl <= --default-ttl <= --max-ttl (minTtl, defaultTtl, maxTtl in a config file), but they read ${shown} (a number without a unit is seconds)`);
  }
  if (ttl.minTtlMs < 1000) throw invalid(`${named('min-ttl', 'minTtl')} must be at least 1s`);

  const lifetimes: CaLifetimes = {
    rootTtlMs: durationFlag(pick('root-ttl', 'rootTtl'), named('root-ttl', 'rootTtl')) ?? DEFAULT_LIFETIMES.rootTtlMs,
    intermediateTtlMs: durationFlag(pick('intermediate-ttl', 'intermediateTtl'), named('intermediate-ttl', 'intermediateTtl')) ?? DEFAULT_LIFETIMES.intermediateTtlMs,
  };
  // The schedule prepares a successor at 1/2 of a root's life and activates it at 5/6, and a
  // retiring root holds back the next prepare for RETIRE_MARGIN_MS: with roots much shorter than an
  // hour a root expires before its successor can sign (measured from outside with 6m roots).
  if (lifetimes.rootTtlMs < MIN_ROOT_TTL_MS) throw invalid(`${named('root-ttl', 'rootTtl')} must be at least 1h, so that each root's successor is prepared, propagated and active before it expires`);
  if (lifetimes.intermediateTtlMs > lifetimes.rootTtlMs) throw invalid('--intermediate-ttl must not exceed --root-ttl');

  const admin = section(file, 'admin');
  checkKeys(admin, 'admin');
  const rawAdmins = admin['identities'] ?? [formatSpiffeId(trustDomain, 'ns', 'rampart-system', 'sa', 'rampart-admin')];
  if (!Array.isArray(rawAdmins) || rawAdmins.some((a) => typeof a !== 'string')) throw invalid('config admin.identities must be a list of SPIFFE IDs');
  for (const id of rawAdmins as string[]) {
    try {
      parseSpiffeId(id);
    } catch {
      throw invalid(`admin identity "${id}" is not a valid SPIFFE ID`);
    }
  }

  const jwksFile = section(file, 'jwks');
  checkKeys(jwksFile, 'jwks');
  // Where tokens are checked, a value that is the wrong type or expanded to nothing is an error,
  // never "not given": an empty --jwks-file would otherwise fall through to the URL or discovery.
  const jwksSetting = (flag: 'jwks-issuer' | 'jwks-file' | 'jwks-url' | undefined, key: string): string | undefined => {
    const fromFlag = flag === undefined ? undefined : flags[flag];
    if (fromFlag !== undefined) {
      if (fromFlag === '') throw invalid(`--${flag} must not be empty`);
      return fromFlag;
    }
    const v = jwksFile[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v === '') throw invalid(`config "jwks.${key}" must be a non-empty string`);
    return v;
  };
  let jwks: JwksSettings | undefined;
  if (!authn.includes('jwks')) {
    const stray = (['jwks-issuer', 'jwks-file', 'jwks-url'] as const).find((f) => flags[f] !== undefined);
    if (stray) throw invalid(`--${stray} only applies to the jwks authenticator; add jwks to --authn or drop --${stray}`);
    // The same for the config file: settings that would silently do nothing are refused.
    if (Object.keys(jwksFile).length > 0) throw invalid(`config "jwks" only applies to the jwks authenticator; add jwks to ${named('authn', 'authn')} or remove the "jwks" section`);
  }
  if (authn.includes('jwks')) {
    const jwksIssuer = jwksSetting('jwks-issuer', 'issuer');
    if (!jwksIssuer) throw invalid('--authn jwks needs --jwks-issuer (and --jwks-file or --jwks-url, or OIDC discovery from the issuer)');
    const fileP = jwksSetting('jwks-file', 'file');
    const url = jwksSetting('jwks-url', 'url');
    // Each names where the keys come from; taking one and dropping the other silently would
    // verify tokens against keys the operator did not mean (a flag does not override the other
    // setting's config key either: the two are different settings).
    if (fileP && url) {
      const fileName = settingName(flags, 'jwks-file', jwksFile, 'file', 'jwks.file');
      const urlName = settingName(flags, 'jwks-url', jwksFile, 'url', 'jwks.url');
      throw invalid(`${fileName} and ${urlName} both say where the jwks keys come from; give one of them (or neither, for OIDC discovery from the issuer)`);
    }
    const caFile = jwksSetting(undefined, 'caFile');
    // A CA bundle means the operator expects an HTTPS fetch; with a file there is none to trust it for.
    if (caFile && fileP) throw invalid(`jwks.caFile only applies to a JWKS URL or OIDC discovery, not to ${settingName(flags, 'jwks-file', jwksFile, 'file', 'jwks.file')}; drop one of them`);
    jwks = {
      issuer: jwksIssuer,
      audience: jwksSetting(undefined, 'audience') ?? 'rampart-ca',
      ...(fileP ? { file: fileP, fileSetting: settingName(flags, 'jwks-file', jwksFile, 'file', 'jwks.file') } : url ? { url } : { discovery: true }),
      ...(caFile ? { caFile } : {}),
    };
  }

  const k8s = section(file, 'kubernetes');
  checkKeys(k8s, 'kubernetes');
  const store = pick('store', 'store') ?? 'file';
  if (store !== 'file' && store !== 'kubernetes') throw invalid(`${named('store', 'store')} must be file or kubernetes, got "${store}"`);
  const kubeconfig = flags.kubeconfig ?? str(k8s, 'kubeconfig', 'kubernetes') ?? env['KUBECONFIG'];
  const logLevel = pick('log-level', 'logLevel') ?? env['RAMPART_LOG_LEVEL'] ?? 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) throw invalid(`${flags['log-level'] === undefined && file['logLevel'] === undefined ? 'RAMPART_LOG_LEVEL' : named('log-level', 'logLevel')} "${logLevel}" is not a log level; use fatal, error, warn, info, debug, trace or silent`);
  const autoRotate = pick('auto-rotate', 'autoRotate') ?? 'true';
  if (autoRotate !== 'true' && autoRotate !== 'false') throw invalid(`${named('auto-rotate', 'autoRotate')} must be true or false`);
  // Like every other setting, the flags replace the file's list rather than add to it.
  const fileServingNames = stringList(file, 'servingNames');
  const servingNames = (flags['serving-name'] ?? fileServingNames ?? []).map((n) => servingName(n, flags['serving-name'] ? '--serving-name' : 'config "servingNames"'));

  const stateDir = pick('state-dir', 'stateDir') ?? 'certs';
  if (stateDir === '') throw invalid(`${named('state-dir', 'stateDir')} is empty; name the directory for the CA's keys and state (default certs)`);
  const listenText = pick('listen', 'listen') ?? '127.0.0.1:8443';
  const monitoringText = pick('monitoring-listen', 'monitoringListen') ?? '127.0.0.1:9090';
  const config: CaConfig = {
    stateDir,
    store,
    listen: hostPort(listenText, named('listen', 'listen')),
    monitoringListen: hostPort(monitoringText, named('monitoring-listen', 'monitoringListen')),
    trustDomain,
    authn: authn as AuthenticatorName[],
    ttl,
    lifetimes,
    ...(pick('plugged-ca', 'pluggedCa') ? { pluggedCaDir: pick('plugged-ca', 'pluggedCa') as string } : {}),
    adminIdentities: rawAdmins as string[],
    ...(jwks ? { jwks } : {}),
    kubernetes: {
      namespace: flags.namespace ?? str(k8s, 'namespace', 'kubernetes') ?? env['POD_NAMESPACE'] ?? 'rampart-system',
      ...(kubeconfig ? { kubeconfig } : {}),
      audience: str(k8s, 'audience', 'kubernetes') ?? 'rampart-ca',
      tokenReviewRatePerSecond: positiveNumber(k8s, 'tokenReviewRatePerSecond', 'kubernetes', 50),
      ...(env['KUBERNETES_SERVICE_HOST'] ? { inClusterHost: env['KUBERNETES_SERVICE_HOST'] } : {}),
      ...(env['KUBERNETES_SERVICE_PORT'] ? { inClusterPort: env['KUBERNETES_SERVICE_PORT'] } : {}),
      identity: env['POD_NAME'] ?? `${hostname()}-${process.pid}`,
      ...(env['POD_UID'] ? { podUid: env['POD_UID'] } : {}),
      ...leaseTimings(flags, k8s),
      ...watchTimings(flags, k8s),
    },
    servingNames,
    autoRotate: autoRotate === 'true',
    bundleRefreshIntervalMs: durationFlag(pick('bundle-refresh-interval', 'bundleRefreshInterval'), named('bundle-refresh-interval', 'bundleRefreshInterval')) ?? 60_000,
    maxInFlight: positiveInt(pick('max-in-flight', 'maxInFlight'), named('max-in-flight', 'maxInFlight'), 1024),
    workers: workerCount(pick('workers', 'workers'), named('workers', 'workers')),
    warmUpRequests: wholeNumber(pick('warm-up-requests', 'warmUpRequests'), named('warm-up-requests', 'warmUpRequests'), 0, MAX_WARM_UP_REQUESTS),
    logLevel: logLevel as CaConfig['logLevel'],
    ...(env['RAMPART_CRASH_AT'] ? { crashAt: env['RAMPART_CRASH_AT'] } : {}),
  };
  // Found at bind time it read "already in use; stop the process listening there", the process
  // being this CA, after a root was made and rolled back (outside QA).
  refuseListenClashes([
    { flag: named('listen', 'listen'), text: listenText, listen: config.listen },
    { flag: named('monitoring-listen', 'monitoringListen'), text: monitoringText, listen: config.monitoringListen },
  ]);
  return deepFreeze(config);
}

function leaseTimings(flags: CaFlags, k8s: Json): Pick<KubernetesSettings, 'leaderElection'> {
  const name = (flag: 'lease-duration' | 'renew-deadline' | 'retry-period', key: string): string => settingName(flags, flag, k8s, key, `kubernetes.${key}`);
  const duration = (flag: 'lease-duration' | 'renew-deadline' | 'retry-period', key: string): number | undefined => durationFlag(flags[flag] ?? str(k8s, key, 'kubernetes'), name(flag, key));
  const lease = duration('lease-duration', 'leaseDuration');
  const renew = duration('renew-deadline', 'renewDeadline');
  const retry = duration('retry-period', 'retryPeriod');
  if (lease === undefined && renew === undefined && retry === undefined) return {};
  const l = lease ?? 15_000;
  const r = renew ?? Math.min(10_000, Math.floor((l * 2) / 3));
  const p = retry ?? Math.min(2_000, Math.floor(r / 4));
  checkLeaseTimings(
    { ms: l, name: name('lease-duration', 'leaseDuration'), given: lease !== undefined },
    { ms: r, name: name('renew-deadline', 'renewDeadline'), given: renew !== undefined },
    { ms: p, name: name('retry-period', 'retryPeriod'), given: retry !== undefined },
  );
  return { leaderElection: { leaseDurationMs: l, renewDeadlineMs: r, retryPeriodMs: p } };
}

/** A watch lives up to twice `--watch-timeout`; past an hour it no longer bounds a silent stream usefully. */
const MAX_WATCH_TIMEOUT_MS = 60 * 60_000;
const MIN_WATCH_TIMEOUT_MS = 1000;

function watchTimings(flags: CaFlags, k8s: Json): Pick<KubernetesSettings, 'watchTimeoutMs' | 'stateCheckIntervalMs'> {
  const setting = (flag: 'watch-timeout' | 'state-check-interval', key: string): { ms: number | undefined; name: string } => {
    const name = settingName(flags, flag, k8s, key, `kubernetes.${key}`);
    return { ms: durationFlag(flags[flag] ?? str(k8s, key, 'kubernetes'), name), name };
  };
  const watch = setting('watch-timeout', 'watchTimeout');
  const check = setting('state-check-interval', 'stateCheckInterval');
  for (const { ms, name } of [watch, check]) {
    if (ms !== undefined && (ms < MIN_WATCH_TIMEOUT_MS || ms > MAX_WATCH_TIMEOUT_MS)) throw invalid(`${name} must be between 1s and 1h, got ${formatDuration(ms)}`);
  }
  // The API server takes whole seconds; 1500ms silently read as 1s (outside QA).
  if (watch.ms !== undefined && watch.ms % 1000 !== 0) throw invalid(`${watch.name} must be whole seconds, as the API server's timeoutSeconds, got ${watch.ms} ms`);
  return {
    ...(watch.ms === undefined ? {} : { watchTimeoutMs: watch.ms }),
    ...(check.ms === undefined ? {} : { stateCheckIntervalMs: check.ms }),
  };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
