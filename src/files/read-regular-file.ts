/**
 * Reads a file that must be a regular one, up to a size limit, without ever blocking on it.
 * The agent reads its token file at every renewal, its own output files, and the CA re-reads a
 * JWKS file: a FIFO put at such a path would hold one of libuv's four threads forever (and
 * every file operation of the process behind it, even its exit), and `/dev/zero` or a runaway
 * log file would be read until memory ran out.
 */
import { constants, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';

/**
 * O_NONBLOCK: opening a FIFO for reading otherwise waits for a writer. Regular files ignore the
 * flag. O_NOCTTY: a terminal put there must not become our controlling one.
 */
const READ_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

/** The entry at the path is not a regular file; `kind` says what it is, for the caller's message. */
export class NotRegularFile extends Error {
  constructor(readonly kind: string) {
    super(`is ${kind}, not a regular file`);
  }
}

/** The file holds more than the caller's limit; nothing of it was returned. */
export class FileTooLarge extends Error {
  constructor(readonly limitBytes: number) {
    super(`is larger than ${limitBytes} bytes`);
  }
}

function kindOf(info: Stats): string {
  if (info.isFIFO()) return 'a FIFO';
  if (info.isSocket()) return 'a socket';
  if (info.isDirectory()) return 'a directory';
  if (info.isCharacterDevice()) return 'a character device';
  if (info.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

/**
 * The text of the regular file at `path`, at most `maxBytes` long. The type is judged on the open
 * descriptor (fstat), so nothing swapped in between a check and the read is ever read; the limit
 * is enforced on the bytes read, so a file that grows after the fstat cannot get past it.
 * Errors of open (ENOENT, EACCES, ...) pass through unchanged; a UNIX socket, which cannot be
 * opened at all (ENXIO), is a NotRegularFile.
 */
export async function readRegularFile(path: string, maxBytes: number): Promise<string> {
  let handle;
  try {
    handle = await open(path, READ_FLAGS);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENXIO') throw new NotRegularFile('a socket');
    throw error;
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new NotRegularFile(kindOf(info));
    if (info.size > maxBytes) throw new FileTooLarge(maxBytes);
    // Sized to the fstat, with room for a little growth; one byte past the limit tells a file
    // that grew beyond it from one that fills it exactly.
    let buffer = Buffer.allocUnsafe(Math.min(maxBytes + 1, info.size + 4096));
    let length = 0;
    for (;;) {
      if (length === buffer.length) {
        if (length > maxBytes) throw new FileTooLarge(maxBytes);
        const grown = Buffer.allocUnsafe(maxBytes + 1);
        buffer.copy(grown, 0, 0, length);
        buffer = grown;
      }
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > maxBytes) throw new FileTooLarge(maxBytes);
    return buffer.toString('utf8', 0, length);
  } finally {
    await handle.close();
  }
}
