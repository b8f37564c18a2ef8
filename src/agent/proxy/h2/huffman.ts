/**
 * HPACK's Huffman code (RFC 7541 appendix B). The code is canonical, so the bit length of each
 * symbol's code (symbols 0-255 and EOS, 256) determines every code; the decoder rebuilds them.
 */
import { H2ConnectionError } from './constants.js';

const CODE_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];

const EOS = 256;
const MAX_LENGTH = 30;

/** For each code length: the first code of that length, how many there are, and where they start in SYMBOLS. */
const FIRST_CODE = new Array<number>(MAX_LENGTH + 1).fill(0);
const COUNT = new Array<number>(MAX_LENGTH + 1).fill(0);
const FIRST_INDEX = new Array<number>(MAX_LENGTH + 1).fill(0);
const SYMBOLS: number[] = [];
{
  for (const length of CODE_LENGTHS) COUNT[length] = (COUNT[length] as number) + 1;
  let code = 0;
  let index = 0;
  for (let length = 1; length <= MAX_LENGTH; length++) {
    FIRST_CODE[length] = code;
    FIRST_INDEX[length] = index;
    code = (code + (COUNT[length] as number)) * 2;
    index += COUNT[length] as number;
  }
  const order = CODE_LENGTHS.map((length, symbol) => ({ length, symbol })).sort((a, b) => a.length - b.length || a.symbol - b.symbol);
  for (const { symbol } of order) SYMBOLS.push(symbol);
}

/**
 * Decodes a Huffman-coded HPACK string. Header blocks are decoded only when a stream opens, so a
 * bit-at-a-time walk is fast enough. A string holding EOS, or padded with anything but the
 * most significant bits of EOS (at most 7 one-bits), is a compression error (RFC 7541 5.2).
 */
export function huffmanDecode(input: Buffer): string {
  const out: number[] = [];
  let code = 0;
  let length = 0;
  for (let i = 0; i < input.length; i++) {
    const byte = input[i] as number;
    for (let bit = 7; bit >= 0; bit--) {
      code = code * 2 + ((byte >> bit) & 1);
      length++;
      const offset = code - (FIRST_CODE[length] as number);
      if (offset >= 0 && offset < (COUNT[length] as number)) {
        const symbol = SYMBOLS[(FIRST_INDEX[length] as number) + offset] as number;
        if (symbol === EOS) throw new H2ConnectionError(0x9, 'HPACK: Huffman string contains EOS');
        out.push(symbol);
        code = 0;
        length = 0;
      } else if (length >= MAX_LENGTH) {
        throw new H2ConnectionError(0x9, 'HPACK: invalid Huffman code');
      }
    }
  }
  if (length > 7 || code !== 2 ** length - 1) throw new H2ConnectionError(0x9, 'HPACK: invalid Huffman padding');
  return String.fromCharCode(...out);
}
