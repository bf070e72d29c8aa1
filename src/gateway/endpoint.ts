// The gateway's address, read from its URL in one place, and the one way a connection to
// it is opened: for proxied requests (connection.ts), upgrades (upgrade.ts) and the
// readiness check alike.
import net, { type Socket } from 'node:net';
import { tlsModule } from '../platform/tls-modules.js';
import { ExchangeError } from './errors.js';

export interface GatewayEndpoint {
  /** The URL as configured: two exchanges go to the same gateway when their URLs are equal. */
  readonly url: string;
  /** As a socket takes it: an IPv6 literal without its brackets. */
  readonly host: string;
  /** The URL's port, or its scheme's. */
  readonly port: number;
  /** Host and port as a Host header carries them (`[::1]:8080`). */
  readonly authority: string;
  /** https: the connection is TLS, with SNI for a host name. */
  readonly secure: boolean;
}

/** The URL's hostname as a socket takes it: `[::1]` is `::1`. */
export function socketHost(hostname: string): string {
  return hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
}

/** The URL read into its parts (a snapshot reads its upstream.url once: runtime/snapshot.ts). */
export function gatewayEndpoint(url: string): GatewayEndpoint {
  const parsed = new URL(url);
  const secure = parsed.protocol === 'https:';
  return { url, host: socketHost(parsed.hostname), port: Number(parsed.port || (secure ? 443 : 80)), authority: parsed.host, secure };
}

/**
 * A new connection to the gateway, Nagle off (a head and a small body go out at once). Not
 * connected within `connectTimeoutMs`, it is destroyed with a `connect_timeout` failure.
 */
export function connectGateway(endpoint: GatewayEndpoint, connectTimeoutMs: number): Socket {
  const { host, port, secure } = endpoint;
  const socket = secure ? tlsModule().connect({ host, port, ...(net.isIP(host) === 0 && { servername: host }) }) : net.connect({ host, port });
  socket.setNoDelay(true);
  const timer = setTimeout(() => socket.destroy(new ExchangeError('connect_timeout', 'upstream connect timed out')), connectTimeoutMs);
  const clear = () => clearTimeout(timer);
  socket.once(secure ? 'secureConnect' : 'connect', clear);
  socket.once('close', clear);
  return socket;
}
