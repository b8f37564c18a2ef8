/** `rampart cert inspect FILE`: what a certificate (chain) file says, SPIFFE-first. */
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { basicConstraints, parseCertificate, serialHex, uriSans } from '../../core/pki/certificate.js';
import { inspectSpki } from '../../core/pki/keys.js';
import { decodeCertificates } from '../../core/pki/pem.js';
import { ConfigError, isRampartError } from '../../core/errors.js';
import { parseSpiffeId } from '../../core/identity.js';
import { parseFlags, UsageError } from '../args.js';

export const CERT_HELP = `Usage: rampart cert inspect FILE [--json]

Prints the SPIFFE ID, serial, validity, key type and chain of a PEM certificate file
(e.g. an agent's cert-chain.pem); FILE - reads the PEM from standard input. Problems with what the file says (an expired or not yet valid
certificate, one that is no X.509-SVID) are printed, and the exit status stays 0; it is 2 when the
file cannot be read or holds no certificate.
`;

export interface CertSummary {
  /** The SPIFFE ID, only when the certificate carries exactly one URI SAN and it is a spiffe:// URI. */
  spiffeId: string | null;
  uriSans: string[];
  /** What keeps this certificate from being a valid X.509-SVID, in words. */
  warnings: string[];
  serial: string;
  subject: string;
  issuer: string;
  notBefore: string;
  notAfter: string;
  keyType: string;
  isCa: boolean;
  fingerprintSha256: string;
}

/** Why `id` is no valid SPIFFE ID, or null when it is one. */
function spiffeIdProblem(id: string): string | null {
  try {
    parseSpiffeId(id);
    return null;
  } catch (err) {
    return isRampartError(err) ? err.message.replace(/^invalid SPIFFE ID ".*?": /s, '') : String(err);
  }
}

/** What a certificate file says, judged at `now` (ms since the epoch). */
export function summarize(der: Buffer, now: number): CertSummary {
  const parsed = parseCertificate(der);
  const x509 = new X509Certificate(der);
  const uris = uriSans(parsed);
  const isCa = basicConstraints(parsed)?.ca ?? false;
  const warnings: string[] = [];
  // SPIFFE X509-SVID spec, section 2: "An X.509 SVID MUST contain exactly one URI SAN". With two,
  // a verifier cannot tell which identity is meant, so neither is this certificate's.
  if (uris.length > 1) warnings.push(`${uris.length} URI SANs (${uris.join(', ')}); an X.509-SVID must have exactly one, so this is no SVID`);
  const only = uris.length === 1 ? uris[0] : undefined;
  // A spiffe:// URI that breaks the SPIFFE-ID spec (uppercase trust domain, "..", a query) names
  // no identity a verifier would accept, so it is not shown as one.
  const invalidBecause = only?.startsWith('spiffe://') ? spiffeIdProblem(only) : null;
  if (invalidBecause !== null) warnings.push(`URI SAN ${only} is no valid SPIFFE ID (${invalidBecause}), so this is no SVID`);
  const validId = only?.startsWith('spiffe://') && invalidBecause === null ? only : null;
  // A leaf's identity is its one spiffe:// URI SAN; a CA certificate may carry none.
  if (!isCa && uris.length === 0) warnings.push('no URI SAN, so this is no X.509-SVID: a SPIFFE ID travels in exactly one URI SAN');
  if (only !== undefined && !only.startsWith('spiffe://')) warnings.push(`URI SAN ${only} is not a spiffe:// ID, so this is no X.509-SVID`);
  // SPIFFE X509-SVID spec 3.2 and 4.1: a leaf SVID must have cA=false, and a signing certificate's
  // SPIFFE ID has no path. cA=true with a workload's ID (one with a path) is neither, and
  // verifiers refuse it as a leaf.
  const caWithWorkloadId = isCa && validId !== null && parseSpiffeId(validId).path !== '';
  if (caWithWorkloadId) warnings.push(`basicConstraints cA=TRUE with the workload SPIFFE ID ${validId}; an X.509-SVID leaf must have cA=false (and a CA's SPIFFE ID has no path), so this is no SVID`);
  // Usually an issuer whose clock runs ahead (or this host's running behind): every peer refuses
  // such a certificate, and nothing else in the output would say why.
  if (parsed.notBefore > now) {
    warnings.push(`not valid before ${new Date(parsed.notBefore).toISOString()} (in ${roughly(parsed.notBefore - now)}); peers refuse it until then: check the clocks of the issuer and of this host`);
  }
  // Scripts read --json's warnings to decide whether a file is usable; an expired certificate is
  // the commonest reason it is not, so it belongs there as much as in the text's EXPIRED mark.
  if (parsed.notAfter <= now) {
    warnings.push(`expired at ${new Date(parsed.notAfter).toISOString()} (${roughly(now - parsed.notAfter)} ago); peers refuse it: whatever keeps this file should have renewed it`);
  }
  return {
    spiffeId: caWithWorkloadId ? null : validId,
    uriSans: uris,
    warnings,
    serial: serialHex(parsed),
    // Node reports an empty subject (every SVID's) as undefined.
    subject: (x509.subject ?? '').replace(/\n/g, ', ') || '(empty)',
    issuer: (x509.issuer ?? '').replace(/\n/g, ', ') || '(empty)',
    notBefore: new Date(parsed.notBefore).toISOString(),
    notAfter: new Date(parsed.notAfter).toISOString(),
    keyType: inspectSpki(parsed.spki).description,
    isCa,
    fingerprintSha256: x509.fingerprint256.replace(/:/g, '').toLowerCase(),
  };
}

/** A remaining lifetime in the largest unit that keeps it readable: 42 min, 5 h 12 min, 364 days. */
function roughly(ms: number): string {
  // Agents in tests run certificates of seconds; "0 min" told nothing.
  if (ms < 60_000) return `${Math.ceil(ms / 1000)} s`;
  const minutes = Math.floor(ms / 60_000);
  if (minutes < 120) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} days`;
}

/** A certificate with a spiffe:// URI SAN, or several URI SANs, was made to be an SVID. */
function meantAsSvid(summary: CertSummary): boolean {
  return summary.uriSans.length > 1 || summary.uriSans.some((u) => u.startsWith('spiffe://'));
}

export async function runCert(argv: readonly string[]): Promise<number> {
  if (argv.length === 0) {
    process.stdout.write(CERT_HELP);
    return 2;
  }
  // Flags may come before the subcommand too (`cert --json inspect FILE`), as for `root`.
  const { values, positionals } = parseFlags<{ json?: boolean; help?: boolean }>(argv, { json: { type: 'boolean' } }, true);
  if (values.help) {
    process.stdout.write(CERT_HELP);
    return 0;
  }
  const [sub, ...files] = positionals;
  if (sub !== 'inspect') throw new UsageError(sub === undefined ? 'name the subcommand: cert inspect FILE' : `unknown subcommand "cert ${sub}"; did you mean "cert inspect FILE"?`);
  const [file] = files;
  if (file === undefined || files.length > 1) throw new UsageError('cert inspect takes exactly one FILE');
  // `-` is standard input, as for openssl and curl, so a chain can be piped in.
  const fromStdin = file === '-';
  const name = fromStdin ? 'standard input' : file;
  let text: string;
  try {
    text = readFileSync(fromStdin ? 0 : file, 'utf8');
  } catch (err) {
    throw new ConfigError('RAMPART_ERR_USAGE', `cannot read ${name}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const ders = decodeCertificates(text);
  if (ders.length === 0) throw new ConfigError('RAMPART_ERR_USAGE', `${name} holds no PEM CERTIFICATE block`);
  const unreadable = unreadableBlock(text);
  if (unreadable !== null) throw new ConfigError('RAMPART_ERR_USAGE', `${name}: certificate ${unreadable.index} of ${unreadable.of} is not a readable PEM block (damaged base64, or no matching END line)`);
  const now = Date.now();
  const summaries = ders.map((der, i) => {
    try {
      return summarize(der, now);
    } catch (err) {
      throw new ConfigError('RAMPART_ERR_USAGE', `${name}: certificate ${i + 1} of ${ders.length} ${unparsableReason(err)}`);
    }
  });
  if (values.json) {
    process.stdout.write(`${JSON.stringify(summaries, null, 2)}\n`);
    return 0;
  }
  const [leaf, ...chain] = summaries as [CertSummary, ...CertSummary[]];
  const remaining = Date.parse(leaf.notAfter) - now;
  // A chain names each certificate's issuer next; a bundle of roots (root-cert.pem) does not.
  const linked = chain.every((c, i) => (i === 0 ? leaf : chain[i - 1])?.issuer === c.subject);
  const lines = [
    `SPIFFE ID:   ${leaf.spiffeId ?? (meantAsSvid(leaf) ? '(none: not an X.509-SVID)' : '(none)')}`,
    ...leaf.warnings.map((w) => `Warning:     ${w}`),
    `Serial:      ${leaf.serial}`,
    `Subject:     ${leaf.subject}`,
    `Issuer:      ${leaf.issuer}`,
    `Not before:  ${leaf.notBefore}${Date.parse(leaf.notBefore) > now ? '  (NOT YET VALID)' : ''}`,
    `Not after:   ${leaf.notAfter}  (${remaining > 0 ? `expires in ${roughly(remaining)}` : 'EXPIRED'})`,
    `Key:         ${leaf.keyType}`,
    `CA:          ${leaf.isCa ? 'yes' : 'no'}`,
    `SHA-256:     ${leaf.fingerprintSha256}`,
    `Chain:       ${chain.length > 0 ? (linked ? '' : '(none: the other certificates in the file do not issue this one; a trust bundle?)') : leaf.subject === leaf.issuer && leaf.isCa ? '(self-signed root)' : leaf.isCa ? '(this CA certificate only)' : '(leaf only)'}`,
    ...(linked ? [] : ['Also in file:']),
    // An expired intermediate breaks the chain as surely as an expired leaf, so each certificate's
    // warnings are shown under it, not only the first's.
    ...chain.flatMap((c, i) => [
      `  [${i + 1}] ${c.subject}  ${c.spiffeId ?? ''}  until ${c.notAfter}  sha256 ${c.fingerprintSha256.slice(0, 16)}…`,
      ...c.warnings.map((w) => `      Warning: ${w}`),
    ]),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

/**
 * Why a PEM block's bytes are not a certificate. OpenSSL, having failed to read them as DER, also
 * tries PEM and reports that failure ("PEM routines::no start line"), which sends the reader
 * looking for a missing BEGIN line that is there.
 */
function unparsableReason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  if (/no start line|PEM routines/i.test(message)) return 'is not a well-formed X.509 certificate (its DER does not decode)';
  return `cannot be parsed: ${message}`;
}

/**
 * The first CERTIFICATE block that starts but does not decode. The PEM reader skips such a block,
 * so a chain whose intermediate was damaged read as a leaf alone ("Chain: (leaf only)"), exit 0.
 */
function unreadableBlock(text: string): { index: number; of: number } | null {
  const marker = '-----BEGIN CERTIFICATE-----';
  const pieces = text.split(marker).slice(1);
  const bad = pieces.findIndex((piece) => decodeCertificates(marker + piece).length !== 1);
  return bad < 0 ? null : { index: bad + 1, of: pieces.length };
}
