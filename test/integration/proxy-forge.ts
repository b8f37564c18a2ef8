/**
 * Test support: issues a client SVID with a chosen validity from the test PKI's root key, for
 * tests that need a certificate expiring seconds from now (openssl x509 only counts days).
 * Not a test file itself.
 */
import 'reflect-metadata';
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import type { Pki } from './proxy-support.js';

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** PEM key and certificate of a forged leaf. */
export interface ForgedLeaf {
  readonly keyPem: string;
  readonly certPem: string;
  readonly notAfter: number;
}

/** A leaf for `id`, signed by the PKI's `ca` root, valid from a minute ago until `notAfter`. */
export async function forgeLeaf(pki: Pki, id: string, notAfter: number): Promise<ForgedLeaf> {
  x509.cryptoProvider.set(webcrypto as never);
  const caCert = new x509.X509Certificate(readFileSync(pki.caPath, 'utf8'));
  const caKeyDer = createPrivateKey(readFileSync(join(pki.dir, 'ca.key'))).export({ type: 'pkcs8', format: 'der' });
  const caKey = await webcrypto.subtle.importKey('pkcs8', caKeyDer, EC, false, ['sign']);
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: `1${randomBytes(15).toString('hex')}`,
    subject: 'O=rampart-test',
    issuer: caCert.subject,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(notAfter),
    publicKey: keys.publicKey,
    signingKey: caKey as never,
    signingAlgorithm: SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: id }], true),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  const keyDer = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  const keyPem = createPrivateKey({ key: Buffer.from(keyDer), format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }).toString();
  // X.509 times have whole seconds: report the notAfter the certificate really carries.
  return { keyPem, certPem: `${cert.toString('pem')}\n`, notAfter: cert.notAfter.getTime() };
}
