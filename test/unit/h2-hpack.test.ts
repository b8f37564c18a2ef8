import assert from 'node:assert/strict';
import { test } from 'node:test';
import { H2ConnectionError, H2_ERROR } from '../../src/agent/proxy/h2/constants.js';
import { encodeHeaders, HpackDecoder } from '../../src/agent/proxy/h2/hpack.js';
import { huffmanDecode } from '../../src/agent/proxy/h2/huffman.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function compressionError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => err instanceof H2ConnectionError && err.code === H2_ERROR.COMPRESSION_ERROR && pattern.test(err.message));
}

test('HPACK: RFC 7541 C.4, three requests with Huffman strings sharing one dynamic table', () => {
  const decoder = new HpackDecoder(16_384);
  assert.deepEqual(decoder.decode(hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff')), [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']]);
  // Index 62 (0xbe) is the :authority the first block added.
  assert.deepEqual(decoder.decode(hex('8286 84be 5886 a8eb 1064 9cbf')), [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache']]);
  assert.deepEqual(decoder.decode(hex('8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf')), [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']]);
});

test('HPACK: RFC 7541 C.2, literals without and never indexed leave the table alone', () => {
  const decoder = new HpackDecoder(16_384);
  assert.deepEqual(decoder.decode(hex('040c 2f73 616d 706c 652f 7061 7468')), [[':path', '/sample/path']]);
  assert.deepEqual(decoder.decode(hex('1008 7061 7373 776f 7264 0673 6563 7265 74')), [['password', 'secret']]);
  compressionError(() => decoder.decode(hex('be')), /index 62 is not in the table/);
});

test('HPACK: what the encoder writes decodes to the same fields, and uses no dynamic table', () => {
  const fields: Array<[string, string]> = [[':method', 'CONNECT'], [':authority', '10.0.0.1:8080'], [':status', '200'], ['rampart-refusal', 'x'.repeat(300)]];
  const block = encodeHeaders(fields);
  const decoder = new HpackDecoder(16_384);
  assert.deepEqual(decoder.decode(block), fields);
  // A second decode of the same block gives the same answer: nothing was indexed.
  assert.deepEqual(decoder.decode(block), fields);
  assert.equal(encodeHeaders([[':status', '200']]).toString('hex'), '88');
});

test('HPACK: Huffman decoding refuses EOS, long or non-EOS padding', () => {
  assert.equal(huffmanDecode(hex('f1e3 c2e5 f23a 6ba0 ab90 f4ff')), 'www.example.com');
  assert.equal(huffmanDecode(Buffer.alloc(0)), '');
  compressionError(() => huffmanDecode(hex('ffff ffff')), /EOS/);
  // 'a' is 00011 (5 bits); padding with zeros instead of ones.
  compressionError(() => huffmanDecode(hex('18')), /padding/);
  // A whole byte of one-bits after a complete symbol is padding longer than 7 bits.
  compressionError(() => huffmanDecode(hex('1f ff')), /padding/);
});

test('HPACK: malformed blocks are compression errors, never crashes', () => {
  const decoder = () => new HpackDecoder(100);
  compressionError(() => decoder().decode(hex('80')), /index 0/);
  compressionError(() => decoder().decode(hex('ff')), /truncated integer/);
  compressionError(() => decoder().decode(hex('ffff ffff ffff 7f')), /integer too large/);
  compressionError(() => decoder().decode(hex('400a 61')), /runs past/);
  compressionError(() => decoder().decode(hex('3fe2 1f')), /dynamic table size 4097/);
  compressionError(() => decoder().decode(hex('82 20')), /after a header field/);
  compressionError(() => decoder().decode(encodeHeaders([['x-big', 'y'.repeat(200)]])), /header list larger than 100/);
});

test('HPACK: a table size update evicts, and entries larger than the table empty it', () => {
  const decoder = new HpackDecoder(16_384);
  decoder.decode(hex('4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf'));
  assert.deepEqual(decoder.decode(hex('be')), [['custom-key', 'custom-value']]);
  // Size 0 evicts everything.
  compressionError(() => decoder.decode(hex('20 be')), /not in the table/);
});
