// The request-body guard on its own: bytes pass unchanged, the maximum is enforced as bytes
// arrive, and a stall is the client's only when the gateway side is keeping up.
import { jest } from '@jest/globals';
import { Writable } from 'node:stream';
import { exchangeFailure } from '../../../src/gateway/errors.js';
import { declaredLength, RequestBodyGuard } from '../../../src/proxy/body.js';

const errorOf = (stream: NodeJS.EventEmitter) => new Promise<NodeJS.ErrnoException>((resolve) => stream.once('error', resolve));

test('bytes pass through unchanged and the guard ends with its input', async () => {
  const guard = new RequestBodyGuard(0, 10_000);
  const chunks: Buffer[] = [];
  guard.on('data', (c: Buffer) => chunks.push(c));
  const ended = new Promise((resolve) => guard.once('end', resolve));
  guard.write(Buffer.from('héllo '));
  guard.end(Buffer.from([0, 255]));
  await ended;
  expect(Buffer.concat(chunks)).toEqual(Buffer.concat([Buffer.from('héllo '), Buffer.from([0, 255])]));
});

test('one byte over the maximum fails with request_body_too_large; exactly the maximum passes', async () => {
  const exact = new RequestBodyGuard(4, 10_000);
  exact.resume();
  const done = new Promise((resolve) => exact.once('end', resolve));
  exact.end(Buffer.from('abcd'));
  await done;
  const over = new RequestBodyGuard(4, 10_000);
  over.resume();
  const failed = errorOf(over);
  over.write(Buffer.from('abc'));
  over.write(Buffer.from('de'));
  expect(exchangeFailure(await failed)).toBe('request_body_too_large');
});

describe('stalls', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  test('no bytes for the stall time: request_body_stalled; each chunk restarts the wait', async () => {
    const guard = new RequestBodyGuard(0, 1000);
    guard.resume();
    const failed = errorOf(guard);
    jest.advanceTimersByTime(900);
    guard.write(Buffer.from('x'));
    jest.advanceTimersByTime(900);
    expect(guard.destroyed).toBe(false);
    jest.advanceTimersByTime(100);
    expect(exchangeFailure(await failed)).toBe('request_body_stalled');
  });

  test('a gateway that does not read is not the client stalling', () => {
    const guard = new RequestBodyGuard(0, 1000);
    // Nothing consumes the guard's output: once its buffer is full the wait is the gateway's.
    guard.write(Buffer.alloc(guard.readableHighWaterMark + 1));
    jest.advanceTimersByTime(5000);
    expect(guard.destroyed).toBe(false);
    guard.destroy();
  });

  test('a finished body stops the clock', () => {
    const guard = new RequestBodyGuard(0, 1000);
    guard.pipe(new Writable({ write: (_c, _e, cb) => cb() }));
    guard.end(Buffer.from('all'));
    jest.advanceTimersByTime(5000);
    expect(guard.errored).toBeNull();
  });
});

test('declaredLength: a decimal length, or nothing', () => {
  expect([declaredLength('0'), declaredLength('123'), declaredLength(undefined), declaredLength('1e3'), declaredLength('-1')]).toEqual([
    0,
    123,
    undefined,
    1000,
    undefined,
  ]);
});
