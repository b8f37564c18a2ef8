/**
 * The CA's own serving certificate: an SVID it issues to itself, with DNS/IP SANs for its listen
 * names. Re-issued when the signer changes (so it moves to a new root at activate, like every
 * other leaf) and at half its life.
 */
import { constants } from 'node:crypto';
import { isIP } from 'node:net';
import type { SecureContextOptions } from 'node:tls';
import type { Clock } from '../core/clock.js';
import type { SigningContext } from '../core/ca/authority.js';
import { leafValidity } from '../core/ca/policy.js';
import { formatSpiffeId } from '../core/identity.js';
import { generateEcKeyPair, privateKeyPem, spkiDer } from '../core/pki/keys.js';
import { inspectSpki } from '../core/pki/keys.js';
import { certificatePem } from '../core/pki/pem.js';

export interface ServingCertificate {
  readonly keyPem: string;
  readonly certChainPem: string;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly signerSerial: string;
}

/** Packs an IPv4/IPv6 address into the bytes an iPAddress SAN carries. */
export function ipBytes(address: string): Buffer {
  if (isIP(address) === 4) return Buffer.from(address.split('.').map(Number));
  const [head = '', tail = ''] = address.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return Buffer.from(groups.flatMap((g) => { const v = parseInt(g, 16); return [v >> 8, v & 0xff]; }));
}

/** Issues a serving certificate from the current signing context. */
export function issueServingCertificate(context: SigningContext, options: { trustDomain: string; names: readonly string[]; ttlMs: number; clock: Clock }): ServingCertificate {
  const { privateKey, publicKey } = generateEcKeyPair('P-256');
  const spki = spkiDer(publicKey);
  const now = options.clock.now();
  const { notBefore, notAfter } = leafValidity(now, options.ttlMs, context.signer.issuer.notAfter);
  const dns = [...new Set(options.names.filter((n) => isIP(n) === 0 && n !== ''))];
  const ips = [...new Set(options.names.filter((n) => isIP(n) !== 0))].map(ipBytes);
  const leaf = context.signer.signServing({
    spki,
    subjectPublicKey: inspectSpki(spki).subjectPublicKey,
    isRsa: false,
    spiffeId: formatSpiffeId(options.trustDomain, 'ns', 'rampart-system', 'sa', 'rampart-ca'),
    notBefore,
    notAfter,
    dnsNames: dns,
    ipAddresses: ips,
  });
  return {
    keyPem: privateKeyPem(privateKey),
    certChainPem: [certificatePem(leaf.der), ...context.chainPems].join(''),
    notBefore,
    notAfter: Math.floor(notAfter / 1000) * 1000,
    signerSerial: context.signer.issuer.serial.toString('hex'),
  };
}

/** TLS options for the API listener: the serving cert, and client certificates requested (not required). */
export function apiTlsOptions(serving: ServingCertificate, bundlePems: readonly string[]): SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean } {
  return {
    key: serving.keyPem,
    cert: serving.certChainPem,
    ca: [...bundlePems],
    minVersion: 'TLSv1.2',
    // TLS 1.2 clients may not renegotiate: a connection's client certificate then never changes
    // after the handshake, so it is read once per connection (server/caller.ts). Go's TLS server
    // never supports renegotiation either.
    secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
    requestCert: true,
    // The svid authenticator verifies client certificates itself against the current bundle, so
    // callers with tokens and no certificate still get in.
    rejectUnauthorized: false,
  };
}
