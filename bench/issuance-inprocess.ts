/**
 * In-process issuance throughput on one core: the raw node:crypto limit (1 sign + 2 verifies
 * with the same keys), the same with a fresh CSR key, Rampart's full issue path, and the naive
 * @peculiar/x509 generator path. Each is a case that can be measured repeatedly, so a caller can
 * interleave them in rounds and compare figures taken under the same machine conditions.
 */
import 'reflect-metadata';
import { createPrivateKey, generateKeyPairSync, sign, verify, X509Certificate, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { issueCertificate, signingContextFor } from '../src/core/ca/authority.js';
import { DEFAULT_TTL_POLICY } from '../src/core/ca/policy.js';
import { bootstrapState, DEFAULT_LIFETIMES } from '../src/core/ca/rotation.js';
import { systemClock } from '../src/core/clock.js';
import { verifyWithEcPoint } from '../src/core/pki/ec-point-import.js';
import { makeCsrPool } from './csr-pool.js';

function rate(label: string, seconds: number, fn: () => void): number {
  // Warm up the JIT and the crypto paths first.
  for (let i = 0; i < 200; i++) fn();
  let n = 0;
  const start = process.hrtime.bigint();
  const budget = BigInt(Math.round(seconds * 1e9));
  let elapsed = 0n;
  while (elapsed < budget) {
    for (let i = 0; i < 50; i++) fn();
    n += 50;
    elapsed = process.hrtime.bigint() - start;
  }
  const perSecond = n / (Number(elapsed) / 1e9);
  process.stderr.write(`  ${label}: ${Math.round(perSecond)} /s\n`);
  return perSecond;
}

async function asyncRate(label: string, seconds: number, fn: () => Promise<void>): Promise<number> {
  for (let i = 0; i < 20; i++) await fn();
  let n = 0;
  const start = process.hrtime.bigint();
  const budget = BigInt(Math.round(seconds * 1e9));
  while (process.hrtime.bigint() - start < budget) {
    await fn();
    n++;
  }
  const perSecond = n / (Number(process.hrtime.bigint() - start) / 1e9);
  process.stderr.write(`  ${label}: ${Math.round(perSecond)} /s\n`);
  return perSecond;
}

export interface InProcessResults {
  nativeLimitPerCore: number;
  nativeFreshKeyPerCore: number;
  inProcessPerCore: number;
  peculiarNaivePerCore: number;
}

/** One in-process figure: `measure` runs it for about `seconds` and returns certs/s. */
export interface InProcessCase {
  readonly name: keyof InProcessResults;
  measure(seconds: number): Promise<number>;
}

/** Builds the keys, CSRs and signers once; returns the four cases in a fixed order. */
export async function inProcessCases(): Promise<InProcessCase[]> {
  const state = bootstrapState('cluster.local', Date.now(), DEFAULT_LIFETIMES);
  const context = signingContextFor(state);
  const root = state.roots[0]!;
  // Distinct requests, as a CA sees them (the issue path caches nothing per CSR; an outside audit
  // asked for the pool anyway, so no reader has to take that on trust).
  const csrPool = makeCsrPool(256);
  let next = 0;
  const nextCsr = (): string => csrPool[next++ & 255]!;
  const caller = { identity: { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'bench' }, authenticator: 'bench' };

  // Raw limit: what any CA must do per certificate with these keys: verify the CSR, sign, verify.
  const intermediateKey = createPrivateKey(root.intermediate.keyPem);
  const intermediatePublic = new X509Certificate(root.intermediate.certPem).publicKey;
  const tbsLike = Buffer.alloc(420, 7);
  const csrInfo = Buffer.alloc(200, 3);
  const csrSig = sign('sha256', csrInfo, intermediateKey);
  const csrVerifyKey = intermediatePublic;
  const nativeLimit = (): void => {
    verify('sha256', csrInfo, csrVerifyKey, csrSig);
    const s = sign('sha256', tbsLike, intermediateKey);
    verify('sha256', tbsLike, intermediatePublic, s);
  };

  // The same three operations, but the CSR check uses a key seen for the first time, as every
  // real request's is: node:crypto (OpenSSL 3.0) must import it and export it to its provider
  // on first use. The import and check are the cheapest this node offers, the ones the issue
  // path takes (src/core/pki/ec-point-import.ts: node's own raw point import where it proves
  // itself, JWK otherwise, into a key the next check overwrites). No CA on node can go faster.
  const freshKeys = Array.from({ length: 256 }, () => {
    const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const spki = pair.publicKey.export({ format: 'der', type: 'spki' });
    return { point: spki.subarray(spki.length - 65), sig: sign('sha256', csrInfo, pair.privateKey) };
  });
  let fresh = 0;
  const nativeFreshKey = (): void => {
    const k = freshKeys[fresh++ & 255]!;
    if (!verifyWithEcPoint('P-256', k.point, 'sha256', csrInfo, k.sig)) throw new Error('a fresh key did not verify its own signature');
    const s = sign('sha256', tbsLike, intermediateKey);
    verify('sha256', tbsLike, intermediatePublic, s);
  };

  const rampartIssue = (): void => {
    issueCertificate(context, DEFAULT_TTL_POLICY, systemClock, { csrPem: nextCsr(), caller });
  };

  // The naive path: a generic ASN.1 object model per request via @peculiar/x509 + WebCrypto.
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const alg = { name: 'ECDSA', hash: 'SHA-256', namedCurve: 'P-256' };
  const signingKey = await webcrypto.subtle.importKey('pkcs8', intermediateKey.export({ format: 'der', type: 'pkcs8' }), alg, false, ['sign']);
  const issuerCert = new x509.X509Certificate(root.intermediate.certPem);
  const peculiarNaive = async (): Promise<void> => {
    const req = new x509.Pkcs10CertificateRequest(nextCsr());
    if (!(await req.verify())) throw new Error('csr');
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: '4' + Buffer.from(webcrypto.getRandomValues(new Uint8Array(15))).toString('hex'),
      subject: '',
      issuer: issuerCert.subject,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 3_600_000),
      signingAlgorithm: alg,
      publicKey: req.publicKey,
      signingKey,
      extensions: [
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'spiffe://cluster.local/ns/default/sa/bench' }], true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.BasicConstraintsExtension(false, undefined, true),
        await x509.AuthorityKeyIdentifierExtension.create(issuerCert),
        await x509.SubjectKeyIdentifierExtension.create(req.publicKey),
      ],
    });
    if (!(await cert.verify({ publicKey: issuerCert.publicKey }))) throw new Error('verify');
    cert.toString('pem');
  };
  return [
    { name: 'nativeLimitPerCore', measure: async (seconds) => rate('native limit (1 sign + 2 verifies)', seconds, nativeLimit) },
    { name: 'nativeFreshKeyPerCore', measure: async (seconds) => rate('native, fresh CSR key per request', seconds, nativeFreshKey) },
    { name: 'inProcessPerCore', measure: async (seconds) => rate('rampart full issue path', seconds, rampartIssue) },
    { name: 'peculiarNaivePerCore', measure: (seconds) => asyncRate('@peculiar/x509 generator path', seconds, peculiarNaive) },
  ];
}
