// The responses a client connection is still owed. HTTP/1.1 answers pipelined requests in
// order, but Node hands a socket to the `upgrade` listener (or to the parser-error handler)
// as soon as it parses that request, while earlier responses are still being written. The
// sidecar waits for those first, so a 101 or a refusal never overtakes a 200 and never
// lands inside another response.
import type { ServerResponse } from 'node:http';

interface Owed {
  readonly open: Set<ServerResponse>;
  readonly settled: (() => void)[];
}

const owed = new WeakMap<object, Owed>();

/** Counts `res` as owed on its connection until it is finished or abandoned. */
export function trackResponse(connection: object, res: ServerResponse): void {
  let entry = owed.get(connection);
  if (entry === undefined) owed.set(connection, (entry = { open: new Set(), settled: [] }));
  entry.open.add(res);
  const state = entry;
  // A response closes once: `on` spares the wrapper and the removal `once` costs per request.
  res.on('close', () => {
    state.open.delete(res);
    if (state.open.size > 0) return;
    for (const run of state.settled.splice(0)) run();
  });
}

/** True when a response on this connection has begun: nothing else may be written until it ends. */
export function isMidResponse(connection: object): boolean {
  for (const res of owed.get(connection)?.open ?? []) if (res.headersSent) return true;
  return false;
}

/** Runs `next` once every response owed on the connection is done (at once when none is). */
export function whenSettled(connection: object, next: () => void): void {
  const entry = owed.get(connection);
  if (entry === undefined || entry.open.size === 0) next();
  else entry.settled.push(next);
}

const closing = new WeakSet<object>();

/**
 * The connection ends after the answer being written now. Node still hands over requests
 * the client pipelined behind it, but their answers would never be sent: none of them may
 * reach the gateway (it would act on a request whose client never learns the outcome).
 */
export function markClosing(connection: object): void {
  closing.add(connection);
}

export function isClosing(connection: object): boolean {
  return closing.has(connection);
}
