/**
 * A small seeded fuzzer for the property tests: a PRNG whose case `i` of seed `s` is always the
 * same input, byte-level and structure-aware DER mutations, and text mutations. No dependency:
 * what the tests need is replayable inputs, not shrinking.
 */
import assert from 'node:assert/strict';
import { ERROR_CATALOGUE, RampartError } from '../../src/core/errors.js';

/** xoshiro128** seeded through splitmix32. */
export class Rng {
  private readonly s = new Uint32Array(4);

  constructor(seed: number) {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }

  /** The RNG of case `index` of campaign `seed`. */
  static forCase(seed: number, index: number): Rng {
    return new Rng((Math.imul(seed, 0x01000193) ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  }

  next(): number {
    const s = this.s;
    const rotl = (v: number, k: number): number => ((v << k) | (v >>> (32 - k))) >>> 0;
    const result = Math.imul(rotl(Math.imul(s[1] as number, 5) >>> 0, 7), 9) >>> 0;
    const t = ((s[1] as number) << 9) >>> 0;
    s[2] = (s[2] as number) ^ (s[0] as number);
    s[3] = (s[3] as number) ^ (s[1] as number);
    s[1] = (s[1] as number) ^ (s[2] as number);
    s[0] = (s[0] as number) ^ (s[3] as number);
    s[2] = (s[2] as number) ^ t;
    s[3] = rotl(s[3] as number, 11);
    return result;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 0 ? 0 : Math.floor((this.next() / 4294967296) * n);
  }

  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.next() / 4294967296 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }

  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = this.next() & 0xff;
    return out;
  }
}

interface Node {
  tag: number;
  content: Buffer;
  children: Node[] | null;
}

/** A tolerant DER tree, independent of src/core/pki/der.ts; null when the bytes do not frame. */
function parseTree(buf: Buffer, depth = 0): Node[] | null {
  const out: Node[] = [];
  let pos = 0;
  while (pos < buf.length) {
    if (pos + 2 > buf.length) return null;
    const tag = buf[pos] as number;
    let length = buf[pos + 1] as number;
    let p = pos + 2;
    if (length & 0x80) {
      const n = length & 0x7f;
      if (n === 0 || n > 4 || p + n > buf.length) return null;
      length = 0;
      for (let i = 0; i < n; i++) length = length * 256 + (buf[p++] as number);
    }
    if (p + length > buf.length) return null;
    const content = buf.subarray(p, p + length);
    out.push({ tag, content, children: tag & 0x20 && depth < 30 ? parseTree(content, depth + 1) : null });
    pos = p + length;
  }
  return out;
}

function encodeLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function serialize(nodes: readonly Node[]): Buffer {
  return Buffer.concat(nodes.flatMap((n) => {
    const body = n.children ? serialize(n.children) : n.content;
    return [Buffer.from([n.tag]), encodeLength(body.length), body];
  }));
}

function flatten(nodes: Node[], into: Array<{ node: Node; siblings: Node[]; index: number }> = []): typeof into {
  nodes.forEach((node, index) => {
    into.push({ node, siblings: nodes, index });
    if (node.children) flatten(node.children, into);
  });
  return into;
}

const TAGS = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x17, 0x18, 0x30, 0x31, 0xa0, 0xa3, 0x80, 0x86, 0x1f, 0x00];

function odd(rng: Rng, old: Buffer): Buffer {
  return rng.pick([
    () => Buffer.alloc(0),
    () => rng.bytes(rng.range(1, 12)),
    () => Buffer.alloc(rng.range(7, 40), 0xff),
    () => Buffer.from([0x80]),
    () => Buffer.concat([Buffer.from([0]), old]),
    () => old.subarray(0, rng.int(old.length + 1)),
    () => Buffer.from(rng.pick(['251231275900Z', '991301000000Z', '00500101000000Z', 'spiffe://cluster.local/ns/shop/sa/web', 'spiffe://evil/ns/a/sa/b', '\u00ff']), 'latin1'),
    () => Buffer.concat([old, Buffer.from([0x05, 0x00])]),
  ])();
}

/** One to three mutations of a DER value: raw bytes (lengths left as they fall) or a TLV with its ancestors' lengths re-encoded. */
export function mutateDer(rng: Rng, der: Buffer): Buffer {
  let out: Buffer = Buffer.from(der);
  for (let k = rng.range(1, 3); k > 0; k--) {
    const roots = rng.chance(0.5) ? parseTree(out) : null;
    if (roots !== null && roots.length > 0) {
      const { node, siblings, index } = rng.pick(flatten(roots));
      const op = rng.int(6);
      if (op === 0 && !node.children) node.content = odd(rng, node.content);
      else if (op === 1) node.tag = rng.pick(TAGS);
      else if (op === 2) siblings.splice(index, 1);
      else if (op === 3) siblings.splice(index, 0, { tag: node.tag, content: Buffer.from(node.content), children: node.children });
      else if (op === 4) siblings.splice(index + 1, 0, { tag: rng.pick(TAGS), content: rng.bytes(rng.range(0, 8)), children: null });
      else siblings[index] = { tag: 0x30, content: Buffer.alloc(0), children: [node] };
      out = serialize(roots);
      continue;
    }
    const i = rng.int(out.length + 1);
    switch (rng.int(6)) {
      case 0:
        if (out.length > 0) out[i % out.length] = (out[i % out.length] as number) ^ (1 << rng.int(8));
        break;
      case 1:
        if (out.length > 0) out[i % out.length] = rng.pick([0x00, 0x7f, 0x80, 0x81, 0x84, 0xff]);
        break;
      case 2:
        out = Buffer.concat([out.subarray(0, i), rng.bytes(rng.range(1, 5)), out.subarray(i)]);
        break;
      case 3:
        out = Buffer.concat([out.subarray(0, i), out.subarray(i + rng.range(1, 5))]);
        break;
      case 4:
        out = out.subarray(0, i);
        break;
      default:
        out = Buffer.concat([out, rng.bytes(rng.range(1, 5))]);
    }
  }
  return out;
}

/** One to three text mutations drawing insertions from `pieces`. */
export function mutateText(rng: Rng, text: string, pieces: readonly string[]): string {
  let t = text;
  for (let k = rng.range(1, 3); k > 0; k--) {
    const i = rng.int(t.length + 1);
    const op = rng.int(5);
    if (op === 0) t = t.slice(0, i) + rng.pick(pieces) + t.slice(i);
    else if (op === 1) t = t.slice(0, i) + t.slice(i + rng.range(1, 8));
    else if (op === 2) t = t.slice(0, i) + rng.pick(pieces) + t.slice(i + 1);
    else if (op === 3) t = t.slice(0, i);
    else t = t + t.slice(i);
  }
  return t;
}

/**
 * The property every parser of outside input keeps: it returns, or throws a RampartError whose
 * code is catalogued (and, when given, one it may answer with). Says which case broke it.
 */
export function assertCodedOrValue(run: () => unknown, what: string, allowed?: (code: string) => boolean): void {
  try {
    run();
  } catch (err) {
    assertCoded(err, what, allowed);
  }
}

export function assertCoded(err: unknown, what: string, allowed?: (code: string) => boolean): void {
  assert.ok(err instanceof RampartError, `${what}: threw ${err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err)}, not a RampartError`);
  assert.ok(err.code.startsWith('RAMPART_ERR_') && err.code in ERROR_CATALOGUE, `${what}: uncatalogued code ${err.code}`);
  if (allowed) assert.ok(allowed(err.code), `${what}: unexpected code ${err.code}: ${err.message}`);
}
