/** `rampart root status|prepare|activate|retire`: drive root rotation through the admin API. */
import { isBearerTokenText } from '../../agent/token-source.js';
import { readFileSync } from 'node:fs';
import { CaClient, CaUnreachableError } from '../../client/ca-client.js';
import type { RotationStatus } from '../../runtime/rotation-status.js';
import { ConfigError, UnavailableError } from '../../core/errors.js';
import { parseFlags, UsageError, type FlagSpec } from '../args.js';
import { readTrustFile } from '../../client/trust-file.js';
import { caUrlFlag, DEFAULT_CA_URL } from '../../config/values.js';

export const ROOT_HELP = `Usage: rampart root status|prepare|activate|retire [flags]

Root key rotation, phase by phase: prepare (new root into the bundle) -> activate (its
intermediate signs; the old root retires) -> retire (old root removed once its leaves expired).

Flags:
  --ca-url URL        CA API (default https://localhost:8443)
  --ca-bundle FILE    roots to trust for the CA's TLS (default certs/root-cert.pem)
  --token-file FILE   token of an admin identity (see admin.identities)
  --force             skip the propagation / leaf-expiry safety checks
  --json              print the status as JSON
`;

const SPEC: FlagSpec = {
  'ca-url': { type: 'string' },
  'ca-bundle': { type: 'string' },
  'token-file': { type: 'string' },
  force: { type: 'boolean' },
  json: { type: 'boolean' },
};

interface RootFlags {
  'ca-url'?: string;
  'ca-bundle'?: string;
  'token-file'?: string;
  force?: boolean;
  json?: boolean;
  help?: boolean;
}

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

/** What signs now, and who renews it: the CA itself, or the operator for a plugged-in CA. */
function intermediateLines(intermediate: RotationStatus['intermediate']): string[] {
  if (intermediate === null) return ['no signing intermediate'];
  if (!intermediate.plugged) return [`signing intermediate valid until ${intermediate.notAfter} (renews at ${intermediate.renewAt ?? '?'})`];
  return [
    'plugged-in CA: the operator supplies the root and intermediate (--plugged-ca); the CA renews neither',
    `plugged-in chain valid until ${intermediate.notAfter} (its first expiry): replace ca-cert.pem and ca-key.pem before then`,
  ];
}

/** Renders the admin status as a readable table. */
export function formatStatus(status: RotationStatus): string {
  const rows = status.roots.map((r) => {
    let note = '';
    if (r.propagation) note = `propagation ${r.propagation.agentsUpToDate}/${r.propagation.agentsSeen} agents${r.propagation.propagated ? ' (ready to activate)' : `: not yet, ${r.propagation.reason}`}`;
    if (r.retireableAt) note = `retire after ${r.retireableAt}`;
    return [r.phase, String(r.generation), r.fingerprint.slice(0, 16), r.notAfter, r.plugged ? 'plugged' : 'generated', note];
  });
  const header = ['PHASE', 'GEN', 'FINGERPRINT', 'NOT AFTER', 'SOURCE', 'NOTE'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => pad(c, widths[i] ?? 0)).join('  ').trimEnd();
  const out = [
    `trust domain ${status.trustDomain}, bundle sequence ${status.sequence}`,
    '',
    line(header),
    ...rows.map(line),
    '',
    ...intermediateLines(status.intermediate),
  ];
  const schedule = status.schedule;
  if (schedule) {
    // Older CAs do not send autoRotate; they always ran the schedule.
    const heading = status.autoRotate === false ? 'automatic root rotation is off (--auto-rotate false; the intermediate still renews itself); the root schedule it would follow:' : 'automatic schedule:';
    out.push(
      schedule.prepareAt === null
        ? `${heading} no new root is prepared for a plugged-in root (plug in its successor); a root prepared meanwhile is activated from ${schedule.activateAt}`
        : `${heading} prepare at ${schedule.prepareAt}, activate at ${schedule.activateAt}`,
    );
  }
  if (status.nextStep) out.push(`next automatic step due now: ${status.nextStep}`);
  return `${out.join('\n')}\n`;
}

const STEPS = ['status', 'prepare', 'activate', 'retire'] as const;
type Step = (typeof STEPS)[number];

function isStep(word: string): word is Step {
  return (STEPS as readonly string[]).includes(word);
}

/**
 * A step whose connection broke after the request went out may have been taken: say so, and
 * to look before retrying (outside QA: a CA killed mid-step had taken it in 4 of 24 such cases).
 */
async function adminStepSaying(client: CaClient, step: 'prepare' | 'activate' | 'retire', force: boolean, token: string): Promise<unknown> {
  try {
    return await client.adminStep(step, force, token);
  } catch (err) {
    if (err instanceof CaUnreachableError && err.requestSent) {
      throw new UnavailableError('RAMPART_ERR_CA_UNREACHABLE', `${err.message}; the ${step} request had gone out before the connection broke, so the CA may have taken the step: run rampart root status before retrying`, { cause: err });
    }
    throw err;
  }
}

export async function runRoot(argv: readonly string[]): Promise<number> {
  if (argv.length === 0) {
    process.stdout.write(ROOT_HELP);
    return 2;
  }
  // The step may sit anywhere among the flags (`root --ca-url URL status` as well as
  // `root status --ca-url URL`), as in kubectl and git: admins paste flags from runbooks first.
  const { values, positionals } = parseFlags<RootFlags>(argv, SPEC, true);
  if (values.help) {
    process.stdout.write(ROOT_HELP);
    return 0;
  }
  const [step, ...extra] = positionals;
  if (step === undefined) throw new UsageError('name a step: rampart root status|prepare|activate|retire [flags]');
  if (!isStep(step)) throw new UsageError(`unknown step "${step}"; use status, prepare, activate or retire`);
  if (extra.length > 0) throw new UsageError(`one step at a time: "${step}" was given, then "${extra.join(' ')}"`);
  // Accepted silently, it read as if status had been forced past something.
  if (step === 'status' && values.force === true) throw new UsageError('--force applies to prepare, activate and retire; status changes nothing');
  const url = caUrlFlag(values['ca-url'] ?? DEFAULT_CA_URL, '--ca-url');
  const trust = readTrustFile(values['ca-bundle'] ?? 'certs/root-cert.pem', '--ca-bundle');
  let token: string | undefined;
  if (values['token-file'] !== undefined) {
    try {
      token = readFileSync(values['token-file'], 'utf8').trim();
    } catch (err) {
      throw new ConfigError('RAMPART_ERR_TOKEN_FILE', `cannot read --token-file ${values['token-file']} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    // A key or a multi-line file was an internal error ("Invalid character in header content").
    if (!isBearerTokenText(token)) throw new ConfigError('RAMPART_ERR_TOKEN_FILE', `--token-file ${values['token-file']} does not hold a token (one line, e.g. from rampart token or kubectl create token)`);
  } else {
    throw new UsageError('missing --token-file: the admin API needs the token of an admin identity (e.g. rampart token --namespace rampart-system --service-account rampart-admin > admin.token)');
  }
  const client = new CaClient({ url, caBundle: () => trust });
  try {
    const status = (step === 'status' ? await client.adminStatus(token) : await adminStepSaying(client, step, values.force === true, token)) as RotationStatus;
    if (values.json) process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
    else process.stdout.write((step === 'status' ? '' : `${step}: done\n`) + formatStatus(status));
    return 0;
  } finally {
    client.close();
  }
}
