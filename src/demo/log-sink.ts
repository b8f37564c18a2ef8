/**
 * Where the demo's components log: one JSON-lines file per component in the demo's directory,
 * an in-memory copy the narrative searches (e.g. the backend agent's connection lines), and,
 * with --verbose, a mirror on stderr.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { createLogger } from '../observability/logger.js';

/** One parsed log line; pino JSON fields. */
export type LogRecord = Record<string, unknown> & { msg?: string; level?: string };

type Waiter = { match: (r: LogRecord) => boolean; resolve: (r: LogRecord) => void };

/** A log destination that is also searchable. */
export class LogSink {
  readonly logger: Logger;
  private readonly records: LogRecord[] = [];
  private readonly waiters = new Set<Waiter>();
  private fd: number | null;

  /**
   * @param path file the lines go to
   * @param mirror optional second destination (stderr with --verbose)
   * @param keep records kept in memory (oldest dropped first)
   */
  constructor(
    readonly name: string,
    readonly path: string,
    private readonly mirror: NodeJS.WritableStream | null = null,
    private readonly keep = 20_000,
  ) {
    this.fd = openSync(path, 'a', 0o600);
    const stream = new Writable({
      write: (chunk: Buffer, _enc, done) => {
        this.take(chunk.toString('utf8'));
        done();
      },
    });
    this.logger = createLogger({ name, level: 'info', destination: stream });
  }

  private take(text: string): void {
    // Synchronous writes: the file is complete whenever the narrative points at it.
    if (this.fd !== null) writeSync(this.fd, text);
    this.mirror?.write(text);
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      let record: LogRecord;
      try {
        record = JSON.parse(line) as LogRecord;
      } catch {
        continue;
      }
      this.records.push(record);
      if (this.records.length > this.keep) this.records.splice(0, this.records.length - this.keep);
      for (const w of [...this.waiters]) {
        if (w.match(record)) {
          this.waiters.delete(w);
          w.resolve(record);
        }
      }
    }
  }

  /** Records seen so far that match. */
  find(match: (r: LogRecord) => boolean): LogRecord[] {
    return this.records.filter(match);
  }

  /**
   * The first record (already seen, unless `onlyNew`) that matches; rejects after `timeoutMs`
   * with `what` in the message.
   */
  waitFor(what: string, match: (r: LogRecord) => boolean, timeoutMs: number, onlyNew = false): Promise<LogRecord> {
    if (!onlyNew) {
      const seen = this.records.find(match);
      if (seen) return Promise.resolve(seen);
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        match,
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`${this.name}: no log line for ${what} within ${Math.round(timeoutMs / 1000)} s (see ${this.path})`));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  close(): void {
    this.logger.flush();
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
