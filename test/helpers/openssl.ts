/**
 * Keys, CSRs and certificate checks made with the `openssl` command-line tool, in a temporary
 * directory: a tool nobody here wrote, so the CA is checked against an outside implementation.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { eventually } from './poll.js';

const run = promisify(execFile);

export type KeySpec = 'P-256' | 'P-384' | 'RSA-1024' | 'RSA-2048' | 'RSA-3072' | 'RSA-4096';

export interface CsrOptions {
  /** Key type (default P-256). */
  readonly key?: KeySpec;
  /** Value of `-addext subjectAltName=...`, e.g. `URI:spiffe://td/ns/a/sa/b,DNS:x`. */
  readonly subjectAltName?: string;
  /** Ask for CA powers: `-addext basicConstraints=critical,CA:TRUE`. */
  readonly requestCa?: boolean;
  /** More `-addext` values. */
  readonly addext?: readonly string[];
  /** Subject (default `/`: empty). */
  readonly subject?: string;
  /** `-text`: the request's text dump comes before its PEM block, as openssl writes it. */
  readonly text?: boolean;
  /** More `openssl req` arguments, such as `-sha1` or `-sigopt rsa_padding_mode:pss`. */
  readonly reqArgs?: readonly string[];
}

export interface KeyAndCsr {
  readonly keyPath: string;
  readonly csrPath: string;
  readonly keyPem: string;
  readonly csrPem: string;
}

function keyArgs(key: KeySpec): string[] {
  switch (key) {
    case 'P-256':
      return ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
    case 'P-384':
      return ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'];
    default:
      return ['-newkey', `rsa:${key.slice(4)}`];
  }
}

/** A scratch directory running openssl commands; `close()` removes it. */
export class OpenSsl {
  private counter = 0;
  private constructor(readonly dir: string) {}

  static async create(prefix = 'rampart-openssl-'): Promise<OpenSsl> {
    return new OpenSsl(await mkdtemp(join(tmpdir(), prefix)));
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  /** Runs `openssl ARGS` in the scratch dir; rejects with stderr on a non-zero exit. */
  async run(args: readonly string[], input?: string): Promise<{ stdout: string; stderr: string }> {
    const child = run('openssl', [...args], { cwd: this.dir, maxBuffer: 16 * 1024 * 1024 });
    if (input !== undefined) {
      child.child.stdin?.end(input);
    }
    return child;
  }

  /** Like run() but never rejects: returns the exit code with the output. */
  async tryRun(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await this.run(args);
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  }

  /** Writes text into the scratch dir; returns the path. */
  async write(name: string, text: string | Buffer): Promise<string> {
    const p = this.path(name);
    await writeFile(p, text);
    return p;
  }

  /** A fresh key and CSR made by `openssl req`. */
  async keyAndCsr(options: CsrOptions = {}): Promise<KeyAndCsr> {
    const name = `k${++this.counter}`;
    const keyPath = this.path(`${name}.key`);
    const csrPath = this.path(`${name}.csr`);
    const args = ['req', '-new', ...keyArgs(options.key ?? 'P-256'), '-nodes', '-keyout', keyPath, '-out', csrPath, '-subj', options.subject ?? '/'];
    if (options.subjectAltName !== undefined) args.push('-addext', `subjectAltName=${options.subjectAltName}`);
    if (options.requestCa) args.push('-addext', 'basicConstraints=critical,CA:TRUE');
    for (const ext of options.addext ?? []) args.push('-addext', ext);
    if (options.text) args.push('-text');
    args.push(...(options.reqArgs ?? []));
    await this.run(args);
    return { keyPath, csrPath, keyPem: await readFile(keyPath, 'utf8'), csrPem: await readFile(csrPath, 'utf8') };
  }

  /** `openssl x509 -text -noout` of a PEM certificate. */
  async x509Text(certPem: string): Promise<string> {
    const p = await this.write(`c${++this.counter}.pem`, certPem);
    return (await this.run(['x509', '-in', p, '-noout', '-text'])).stdout;
  }

  /** `openssl x509 -noout -<field>` lines (e.g. `serial`, `startdate`, `enddate`, `fingerprint -sha256`). */
  async x509Field(certPem: string, ...flags: string[]): Promise<string> {
    const p = await this.write(`c${++this.counter}.pem`, certPem);
    return (await this.run(['x509', '-in', p, '-noout', ...flags])).stdout.trim();
  }

  /**
   * `openssl verify -x509_strict [-purpose P] -CAfile roots -untrusted chain leaf`. Returns exit
   * code and output (never rejects), so tests can assert both acceptance and refusal.
   */
  async verify(options: { rootsPem: string; leafPem: string; untrustedPems?: readonly string[]; purpose?: 'sslclient' | 'sslserver' }): Promise<{ code: number; stdout: string; stderr: string }> {
    const n = ++this.counter;
    const roots = await this.write(`roots${n}.pem`, options.rootsPem);
    const leaf = await this.write(`leaf${n}.pem`, options.leafPem);
    const args = ['verify', '-x509_strict', '-CAfile', roots];
    if (options.untrustedPems && options.untrustedPems.length > 0) args.push('-untrusted', await this.write(`untrusted${n}.pem`, options.untrustedPems.join('')));
    if (options.purpose) args.push('-purpose', options.purpose);
    args.push(leaf);
    return this.tryRun(args);
  }

  /** Starts `openssl ARGS` in the background (e.g. s_server); the caller kills it. */
  spawn(args: readonly string[]): ChildProcess {
    return spawn('openssl', [...args], { cwd: this.dir, stdio: ['pipe', 'pipe', 'pipe'] });
  }

  async close(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Splits concatenated PEM certificates into blocks (each ending in a newline). */
export function splitPemCertificates(text: string): string[] {
  return [...text.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g)].map((m) => (m[0].endsWith('\n') ? m[0] : `${m[0]}\n`));
}

/** The base64 body of a PEM block (no header/footer, no whitespace). */
export function pemBody(pem: string): string {
  return pem.replace(/-----(BEGIN|END) [A-Z0-9 ]+-----/g, '').replace(/\s+/g, '');
}

/**
 * Connects with `openssl s_client -tls1_2` (client certificate optional), asks for a
 * renegotiation with s_client's `R` command once the handshake is done, and returns everything
 * s_client printed once the server has answered: it contains "no renegotiation" when the server
 * refused, or a second round of "verify return" lines when it went along.
 */
export async function tls12RenegotiationAttempt(options: { port: number; caPath: string; certPath?: string; keyPath?: string }): Promise<string> {
  const args = ['s_client', '-tls1_2', '-connect', `127.0.0.1:${options.port}`, '-CAfile', options.caPath];
  if (options.certPath !== undefined && options.keyPath !== undefined) args.push('-cert', options.certPath, '-key', options.keyPath);
  const client = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  client.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
  client.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  try {
    await eventually('the TLS 1.2 handshake', () => output.includes('Verify return code:'));
    client.stdin.write('R\n');
    await eventually('an answer to the renegotiation', () => output.includes('no renegotiation') || (output.split('RENEGOTIATING')[1]?.includes('verify return:') ?? false));
    return output;
  } finally {
    client.stdin.end();
    client.kill();
    await closed;
  }
}
