// WebSocket client helpers (ws) for tests: open through the sidecar, echo, await the close.
import WebSocket from 'ws';

export interface Closed {
  code: number;
  reason: string;
}

/** Opens a WebSocket; rejects with the HTTP status when the upgrade is refused. */
export function openWebSocket(url: string, headers: Record<string, string> = {}, origin?: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, ...(origin !== undefined && { origin }), handshakeTimeout: 3000 });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        ws.terminate();
        reject(Object.assign(new Error(`upgrade refused with ${res.statusCode}`), { status: res.statusCode, body: Buffer.concat(chunks).toString() }));
      });
    });
    ws.once('error', reject);
  });
}

/** Sends one text message and resolves with the next message received. */
export function echo(ws: WebSocket, text: string, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no echo of ${text} within ${timeoutMs} ms`)), timeoutMs);
    ws.once('message', (data) => {
      clearTimeout(timer);
      resolve(data.toString());
    });
    ws.send(text);
  });
}

/** Resolves with the close code and reason (1006 when the connection just dropped). */
export function closed(ws: WebSocket, timeoutMs = 5000): Promise<Closed> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.reject(new Error('already closed'));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not closed within ${timeoutMs} ms`)), timeoutMs);
    ws.once('close', (code, reason) => {
      clearTimeout(timer);
      resolve({ code, reason: reason.toString() });
    });
  });
}
