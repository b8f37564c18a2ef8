import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { FLAG, FRAME_HEADER_BYTES } from '../../src/agent/proxy/h2/constants.js';
import { FrameWriter, MAX_EXTRA_TURNS } from '../../src/agent/proxy/h2/frame-writer.js';

/**
 * A writer over a socket stand-in that keeps every write call apart, so the test sees how frames
 * were batched. `othersMayAdd` answers the writer's question whether other streams are open.
 */
function recordingWriter(othersMayAdd: () => boolean = () => true): { writer: FrameWriter; writes: Buffer[] } {
  const writes: Buffer[] = [];
  const socket = new Writable({
    write(chunk: Buffer, _encoding, done) {
      writes.push(chunk);
      done();
    },
  });
  return { writer: new FrameWriter(socket, () => assert.fail('no overflow expected'), othersMayAdd), writes };
}

interface SeenFrame {
  readonly streamId: number;
  readonly flags: number;
  readonly payload: string;
}

/** Splits one write into its frames, checking that every header's length matches what follows. */
function framesOf(write: Buffer): SeenFrame[] {
  const frames: SeenFrame[] = [];
  let offset = 0;
  while (offset < write.length) {
    const length = write.readUIntBE(offset, 3);
    const flags = write[offset + 4] as number;
    const streamId = write.readUInt32BE(offset + 5) & 0x7fffffff;
    const end = offset + FRAME_HEADER_BYTES + length;
    assert.ok(end <= write.length, 'a frame runs past the end of its write');
    frames.push({ streamId, flags, payload: write.subarray(offset + FRAME_HEADER_BYTES, end).toString() });
    offset = end;
  }
  return frames;
}

/** Resolves in the check phase of the event loop's next turn. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function turns(count: number): Promise<void> {
  for (let i = 0; i < count; i++) await nextTurn();
}

test('frame writer: with other streams open, frames of the turns that keep adding go out in one write, in order', async () => {
  const { writer, writes } = recordingWriter();
  writer.data(1, Buffer.from('a'), false);
  await nextTurn();
  writer.data(3, Buffer.from('b'), false);
  await nextTurn();
  writer.data(1, Buffer.from('c'), true);
  await turns(MAX_EXTRA_TURNS + 3);
  assert.equal(writes.length, 1);
  assert.deepEqual(framesOf(writes[0] as Buffer), [
    { streamId: 1, flags: 0, payload: 'a' },
    { streamId: 3, flags: 0, payload: 'b' },
    { streamId: 1, flags: FLAG.END_STREAM, payload: 'c' },
  ]);
});

test('frame writer: a batch waits for at most MAX_EXTRA_TURNS more turns, however many keep adding', async () => {
  const { writer, writes } = recordingWriter();
  for (let i = 0; i < 12; i++) {
    writer.data(1, Buffer.from(String(i % 10)), false);
    await nextTurn();
  }
  await turns(MAX_EXTRA_TURNS + 3);
  assert.ok(writes.length >= 2, `twelve busy turns went out in ${writes.length} write(s)`);
  assert.equal(framesOf(writes[0] as Buffer).length, MAX_EXTRA_TURNS + 1);
  const all = writes.flatMap(framesOf).map((f) => f.payload).join('');
  assert.equal(all, '012345678901');
});

test('frame writer: a turn that adds nothing ends the wait', async () => {
  const { writer, writes } = recordingWriter();
  writer.data(1, Buffer.from('alone'), false);
  // The first turn's end waits one more turn; that turn adds nothing, so its end writes.
  await turns(2);
  assert.equal(writes.length, 1);
  assert.deepEqual(framesOf(writes[0] as Buffer), [{ streamId: 1, flags: 0, payload: 'alone' }]);
});

test('frame writer: with no other stream open, a turn\'s frames go out at the end of that turn', async () => {
  let others = false;
  const { writer, writes } = recordingWriter(() => others);
  writer.data(1, Buffer.from('x'), false);
  writer.data(1, Buffer.from('y'), false);
  await nextTurn();
  assert.equal(writes.length, 1);
  assert.equal(framesOf(writes[0] as Buffer).length, 2);
  // Whether to wait is asked at each turn's end, not fixed when the batch began.
  others = true;
  writer.data(1, Buffer.from('z'), false);
  await nextTurn();
  assert.equal(writes.length, 1);
  await turns(2);
  assert.equal(writes.length, 2);
});

test('frame writer: a flush while a batch waits writes it at once, and what follows goes out once, after it', async () => {
  const { writer, writes } = recordingWriter();
  writer.data(1, Buffer.from('first'), false);
  writer.flush();
  assert.equal(writes.length, 1);
  writer.data(1, Buffer.from('second'), true);
  await turns(MAX_EXTRA_TURNS + 3);
  assert.deepEqual(writes.flatMap(framesOf).map((f) => f.payload), ['first', 'second']);
  assert.equal(writes.length, 2);
});

test('frame writer: after close nothing queued or later is written', async () => {
  const { writer, writes } = recordingWriter();
  writer.data(1, Buffer.from('dropped'), false);
  writer.close();
  writer.data(1, Buffer.from('too late'), false);
  writer.flush();
  await turns(MAX_EXTRA_TURNS + 3);
  assert.equal(writes.length, 0);
});
