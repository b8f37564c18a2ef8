/**
 * Which presented chains the client-chain guard counts as costly to check: keys no Rampart chain
 * carries and whose checks cost many times a real one's, or more links than a Rampart chain has.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { costlyChain, handshakeCost } from '../../src/tls/client-chain-cost.js';
import { MAX_PEER_CHAIN } from '../../src/tls/peer-chain.js';
import { madeUpCertificateDer, randomModulus, rsaSpki } from '../helpers/costly-chain.js';

const F4 = Buffer.from([1, 0, 1]);
const ecSpki = (curve: string): Buffer => generateKeyPairSync('ec', { namedCurve: curve }).publicKey.export({ format: 'der', type: 'spki' });
const chainOf = (...spkis: Buffer[]) => ({ certs: spkis.map((spki, i) => madeUpCertificateDer(`c${i}`, `c${i + 1}`, spki)), truncated: false });

test('ordinary keys are not costly: P-256, P-384, RSA 2048 to 4096 with e = 65537 or up to 2^32 - 1', () => {
  assert.equal(costlyChain(chainOf(ecSpki('P-256'), ecSpki('P-384'))), null);
  assert.equal(costlyChain(chainOf(rsaSpki(randomModulus(2048), F4), rsaSpki(randomModulus(4096), F4))), null);
  assert.equal(costlyChain(chainOf(rsaSpki(randomModulus(3072), Buffer.from([0xff, 0xff, 0xff, 0xff])))), null);
  assert.equal(costlyChain({ certs: [], truncated: false }), null);
});

test('an RSA exponent of 2^32 or more, or a modulus over 4,096 bits, anywhere in the chain is costly', () => {
  const hugeE = (): Buffer => {
    const n = randomModulus(3072);
    const e = Buffer.from(n);
    e[e.length - 1] = (e[e.length - 1] as number) - 2;
    return rsaSpki(n, e);
  };
  assert.match(costlyChain(chainOf(ecSpki('P-256'), hugeE())) ?? '', /RSA public exponent of 2\^32 or more/);
  assert.match(costlyChain(chainOf(rsaSpki(randomModulus(2048), Buffer.from([1, 0, 0, 0, 1])))) ?? '', /RSA public exponent of 2\^32 or more/);
  assert.match(costlyChain(chainOf(ecSpki('P-256'), ecSpki('P-256'), rsaSpki(randomModulus(8192), F4))) ?? '', /an RSA key of 8192 bits/);
});

test('a chain that went on past the longest a Rampart chain has is costly, whatever its keys', () => {
  const certs = Array.from({ length: MAX_PEER_CHAIN }, (_, i) => madeUpCertificateDer(`c${i}`, `c${i + 1}`, ecSpki('P-256')));
  assert.equal(costlyChain({ certs, truncated: false }), null);
  assert.match(costlyChain({ certs, truncated: true }) ?? '', /more than 8 certificates/);
});

test('a handshake whose TLS state node has already freed bans no one, however many bytes came', () => {
  const gone = new TLSSocket(new Socket());
  gone.destroy();
  assert.equal(handshakeCost(gone, undefined), null);
  assert.equal(handshakeCost(gone, 100_000), null);
});

test('keys outside P-256, P-384 and ordinary RSA are costly: P-521, binary curves, DSA', () => {
  assert.match(costlyChain(chainOf(ecSpki('P-256'), ecSpki('P-521'))) ?? '', /an EC key on secp521r1/);
  assert.match(costlyChain(chainOf(ecSpki('sect571r1'))) ?? '', /an EC key on sect571r1/);
  const dsa = generateKeyPairSync('dsa', { modulusLength: 1024, divisorLength: 160 }).publicKey.export({ format: 'der', type: 'spki' });
  assert.match(costlyChain(chainOf(dsa)) ?? '', /a dsa key/);
  assert.equal(costlyChain(chainOf(generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' }))), null);
});
