// Assembles the sidecar: runtime, handler, both listeners; and takes it down gracefully.
import type { Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Config, DiscoveryConfig, TokenConfig } from '../config/schema.js';
import { ProviderKeySource } from '../identity/provider-keys.js';
import { discoveryConfigured } from '../discovery/configured.js';
import type { Discovery, DiscoveryOptions } from '../discovery/discovery.js';
import { createLogger, type Logger } from '../logging/logger.js';
import { createMetrics, type Metrics } from '../metrics/metrics.js';
import { Recorder } from '../metrics/recorder.js';
import { PinnedForwarder, type Forwarder } from '../proxy/forward.js';
import { RequestHandler } from '../proxy/handler.js';
import { Admission, RateLimit } from '../proxy/limits.js';
import { CLOSE_GOING_AWAY, WebSocketTracker } from '../proxy/websockets.js';
import { Runtime } from '../runtime/runtime.js';
import { isLoopback, parseAddress } from '../trust/address.js';
import { refusedByAddress } from '../trust/source.js';
import { MeshDetector, meshAnswered, type MeshSuspicion } from '../trust/mesh.js';
import { VERSION } from '../version.js';
import { createAdminServer, type AdminState } from './admin.js';
import { applySnapshot, recordTrustedSet } from './apply-snapshot.js';
import { ConnectionWatch } from './connections.js';
import { createDataPlane } from './data-plane.js';
import { ConnectionQuota } from './connection-quota.js';

/** The one class of the data port's connection quota: peers the source stage refuses by address alone. */
export const REFUSED_BY_ADDRESS = 'refused by address';

export interface SidecarOptions {
  configPath?: string;
  logger?: Logger;
  metrics?: Metrics;
  watchIntervalMs?: number;
  discovery?: DiscoveryOptions;
  /** What carries allowed requests to the gateway; the sidecar's own by default (tests compare another). */
  forwarder?: Forwarder;
}

export class Sidecar {
  readonly runtime: Runtime;
  readonly handler: RequestHandler;
  /** Fair share of the gateway: each identity's share and the upstream slots. */
  readonly admission: Admission;
  readonly websockets: WebSocketTracker;
  private readonly forwarder: Forwarder;
  private readonly dataPlane: Server;
  readonly connections: ConnectionWatch;
  /** Connections from peers refused by address alone, as one class. */
  readonly untrusted: ConnectionQuota;
  private discovery: Discovery | undefined;
  private providerKeys: { source: ProviderKeySource; config: TokenConfig } | undefined;
  private started = false;
  private admin: Server | undefined;
  private readonly state: AdminState = { draining: false };
  private drainTimer: NodeJS.Timeout | undefined;
  private listenerClosed: Promise<void> | undefined;

  constructor(
    config: Config,
    private readonly options: SidecarOptions = {},
  ) {
    const logger = options.logger ?? createLogger(config.logging.level);
    this.runtime = new Runtime(config, logger, options.metrics ?? createMetrics(VERSION));
    const { metrics } = this.runtime;
    this.admission = new Admission(config);
    metrics.observeUpstreamSlots(() => ({ busy: this.admission.slots.busy, queued: this.admission.slots.queued }));
    this.websockets = new WebSocketTracker(metrics, config.limits.maxWebSocketsPerIdentity);
    this.forwarder = options.forwarder ?? new PinnedForwarder();
    this.handler = new RequestHandler({
      snapshot: () => this.runtime.snapshot,
      recorder: new Recorder(metrics, logger),
      admission: this.admission,
      websockets: this.websockets,
      forwarder: this.forwarder,
      unknownProviderKey: () => this.providerKeys?.source.unknownKey(),
      routeRates: new RateLimit(),
    });
    this.dataPlane = createDataPlane(config.listen, this.handler, this.runtime.metrics, this.state);
    this.connections = new ConnectionWatch(this.dataPlane, config.limits.clientStallTimeoutSeconds * 1000, this.runtime.metrics, this.runtime.logger);
    const refused = (peer: string) =>
      refusedByAddress(peer, this.runtime.snapshot.trusted, this.runtime.snapshot.rules.source) ? REFUSED_BY_ADDRESS : undefined;
    this.untrusted = new ConnectionQuota(this.dataPlane, config.listen.maxUntrustedConnections, refused, () =>
      this.runtime.metrics.connectionsDropped.inc({ port: 'data', reason: 'untrusted_limit' }),
    );
    this.watchForMesh(config.listen.host);
    recordTrustedSet(this.runtime.metrics, this.runtime.snapshot.trusted);
    const parts = {
      logger: this.runtime.logger,
      metrics: this.runtime.metrics,
      admission: this.admission,
      websockets: this.websockets,
      dataPlane: this.dataPlane,
      connections: this.connections,
      untrusted: this.untrusted,
      providerKeys: (config: TokenConfig) => this.followToken(config),
      discovery: (config: DiscoveryConfig) => {
        if (this.discovery) this.discovery.applyConfig(config);
        // A reload that configures the first discovery source brings discovery up.
        else if (discoveryConfigured(config)) void this.loadDiscovery().then(() => this.started && this.discovery?.start());
      },
    };
    this.runtime.onSwap((previous, next) => applySnapshot(previous, next, parts));
    this.runtime.addReadinessCheck(() => this.providerKeys?.source.problems() ?? []);
    this.followToken(config.identity.token);
  }

  /**
   * A mesh's proxy in the pod makes every client one loopback peer: said in the log and a
   * metric, and, unless the config answers it (from: xfcc), as a readiness problem. A
   * sidecar listening on loopback only (make run, tests) has only loopback peers anyway.
   */
  private watchForMesh(host: string): void {
    const address = parseAddress(host);
    if (address && isLoopback(address)) return;
    const mesh = new MeshDetector();
    const { metrics, logger } = this.runtime;
    const problem = (s: MeshSuspicion) =>
      `every data-port connection comes from ${s.address}, ${s.proxy}: the source address no longer tells clients apart; exclude the port from the mesh's inbound capture (the chart's mesh.excludeDataPort), or accept that trust.clientCertificates.from: xfcc trusts every container of the pod (docs/kubernetes.md, "Service meshes")`;
    this.dataPlane.on('connection', (socket: Socket) => {
      const { changed, suspicion } = mesh.observe(socket.remoteAddress ?? '');
      if (!changed) return;
      metrics.meshInbound.reset();
      if (suspicion) {
        metrics.meshInbound.set({ address: suspicion.address }, 1);
        if (!meshAnswered(this.runtime.config.trust)) logger.warn({ address: suspicion.address }, problem(suspicion));
      } else {
        logger.info('data-port connections no longer all come from one loopback address');
      }
    });
    this.runtime.addReadinessCheck(() => {
      const s = mesh.suspicion;
      return s && !meshAnswered(this.runtime.config.trust) ? [problem(s)] : [];
    });
  }

  /**
   * identity.token's key source: one per provider. Another issuer, key set URL or CA drops
   * the old keys at once (they are not the new provider's) and fetches the new ones.
   */
  private followToken(config: TokenConfig): void {
    const current = this.providerKeys;
    if (current && config.mode !== 'off' && sameProvider(current.config, config)) return;
    if (!current && config.mode === 'off') return;
    if (current) {
      current.source.stop();
      this.providerKeys = undefined;
      if (this.runtime.snapshot.providerKeys !== undefined) this.runtime.setProviderKeys(undefined);
    }
    if (config.mode === 'off') return;
    const source = new ProviderKeySource(config, (keys) => this.runtime.setProviderKeys(keys), this.runtime.logger, this.runtime.metrics);
    this.providerKeys = { source, config };
    if (this.started) source.start();
  }

  /**
   * The Kubernetes client is loaded only when a discovery source is configured. Creating
   * Discovery declares its sources, so readiness waits for them from then on.
   */
  private async loadDiscovery(): Promise<void> {
    if (this.discovery || !discoveryConfigured(this.runtime.config.trust.discovery)) return;
    const { Discovery } = await import('../discovery/discovery.js');
    this.discovery ??= new Discovery(this.runtime, this.options.discovery);
  }

  async start(): Promise<{ data: AddressInfo; admin: AddressInfo }> {
    const { listen, admin } = this.runtime.config;
    await this.loadDiscovery();
    await listenOn(this.dataPlane, listen.host, listen.port);
    const adminServer = createAdminServer(this.runtime, this.state);
    this.admin = adminServer;
    await listenOn(adminServer, admin.host, admin.port);
    this.runtime.watch(this.options.configPath, this.options.watchIntervalMs);
    this.started = true;
    this.discovery?.start();
    this.providerKeys?.source.start();
    const addresses = { data: this.dataPlane.address() as AddressInfo, admin: adminServer.address() as AddressInfo };
    this.runtime.logger.info({ ...addresses, maxConnections: this.dataPlane.maxConnections, version: VERSION }, 'listening');
    return addresses;
  }

  /**
   * The pod is going away (the preStop hook's `drain`, or SIGUSR2), and the gateway serves
   * on for a while: readiness fails, every response closes its connection, idle ones are
   * closed now, and new connections are still taken for listen.drainSeconds, while the
   * endpoint change reaches every node, before the port stops listening. Requests under
   * way go on; SIGTERM, after the gateway has stopped, ends the rest.
   */
  drain(): void {
    if (this.state.draining) return;
    this.state.draining = true;
    this.runtime.logger.info({ drainSeconds: this.runtime.config.listen.drainSeconds }, 'draining');
    this.dataPlane.closeIdleConnections();
    this.drainTimer = setTimeout(() => void this.stopListening(), this.runtime.config.listen.drainSeconds * 1000);
    this.drainTimer.unref();
  }

  /** Stops taking connections; settles once every open one has ended. Once, whoever asks first. */
  private stopListening(): Promise<void> {
    this.listenerClosed ??= new Promise<void>((resolve) => {
      this.dataPlane.close(() => resolve());
      this.runtime.logger.info('data port closed to new connections');
    });
    return this.listenerClosed;
  }

  /**
   * Graceful stop: refuse new connections, close WebSockets with 1001, let requests in
   * flight finish within the grace period, then close what is left.
   */
  async stop(): Promise<void> {
    this.state.draining = true;
    clearTimeout(this.drainTimer);
    this.runtime.stop();
    this.started = false;
    this.discovery?.stop();
    this.providerKeys?.source.stop();
    const closed = this.stopListening();
    this.dataPlane.closeIdleConnections();
    this.websockets.closeAll(CLOSE_GOING_AWAY, 'server shutting down');
    const graceMs = this.runtime.config.listen.shutdownGraceSeconds * 1000;
    const idle = setInterval(() => this.dataPlane.closeIdleConnections(), 100);
    const grace = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
    await Promise.race([closed, grace]);
    clearInterval(idle);
    this.dataPlane.closeAllConnections();
    this.forwarder.close();
    this.connections.close();
    const admin = this.admin;
    if (admin) await new Promise<void>((resolve) => admin.close(() => resolve()));
    this.runtime.logger.info('stopped');
    this.runtime.logger.flush();
  }
}

function sameProvider(a: TokenConfig, b: TokenConfig): boolean {
  return (
    a.issuer === b.issuer &&
    a.jwksUrl === b.jwksUrl &&
    a.caFile === b.caFile &&
    a.refreshSeconds === b.refreshSeconds &&
    a.staleAfterSeconds === b.staleAfterSeconds
  );
}

function listenOn(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
