// A list-then-watch informer that keeps going. It wraps the client library's ListWatch,
// which (checked in @kubernetes/client-node 2.0.1): relists on 410 Gone (HTTP status or
// an ERROR event), resumes from the last resourceVersion after a watch ends cleanly or
// goes quiet, but on any other error (network, 401, 403, 5xx, 429, a failed list) calls
// its error callbacks and stops for good; it never asks for bookmarks and lists without
// paging. Added here: paged lists (limit/continue) with a timeout, a watch with bookmarks,
// a server-side timeout and bounds of our choosing on its answer and its silence
// (ObservedWatch), and restarts after errors with capped exponential backoff and jitter.
// Health signals (synced, healthy, failing) drive the source's staleness.
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { setTimeout as sleep } from 'node:timers/promises';
import { fetch } from 'undici';
import {
  HttpMethod,
  ListWatch,
  Observable,
  Watch,
  type ConfigurationOptions,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type ObservableMiddleware,
  RequestContext,
} from '@kubernetes/client-node';

export interface Page<T> {
  items: T[];
  metadata?: { resourceVersion?: string; _continue?: string };
}

/** One page of a list; the options carry the middleware that bounds its time. */
export type ListPage<T> = (cont: string | undefined, limit: number, options: ConfigurationOptions) => Promise<Page<T>>;

export interface InformerTiming {
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Items per list page. */
  pageSize: number;
  /** A list page that takes longer fails (and is retried). */
  listTimeoutMs: number;
  /**
   * A watch whose answer has not begun (no response head) this long after it was opened
   * is reopened. Separate from the idle bound because a connection can die unnoticed
   * before the head (seen: a reset during the TLS handshake that the socket never
   * reported), and waiting the idle bound would leave the source blind that long.
   */
  watchHeadTimeoutMs: number;
  /** A watch that sends nothing (not even a bookmark) for this long is reopened. */
  watchIdleTimeoutMs: number;
  /** Asked of the server, which ends the watch after it (the informer then resumes). */
  watchTimeoutSeconds: number;
}

export const DEFAULT_TIMING: InformerTiming = {
  backoffBaseMs: 1000,
  backoffMaxMs: 30_000,
  pageSize: 500,
  listTimeoutMs: 60_000,
  // A healthy API server answers a watch at once; the margin is for a busy one that
  // queues requests (priority and fairness), which a retry would only send to the back.
  watchHeadTimeoutMs: 20_000,
  watchIdleTimeoutMs: 90_000,
  watchTimeoutSeconds: 300,
};

export type RestartReason = 'closed' | 'expired' | 'idle' | 'error';
export type ErrorKind = 'unauthorized' | 'forbidden' | 'throttled' | 'server_error' | 'client_error' | 'timeout' | 'tls' | 'network' | 'config';

export interface InformerEvents<T> {
  /** An object was added, changed or deleted (deleted: `gone` is true). */
  object(obj: T, gone: boolean): void;
  /** A complete list has been applied. */
  synced(): void;
  /** The API answered: a list page or watch event (`event`), or an established watch. */
  healthy(event: boolean): void;
  /** Contact was lost (an error, or a watch that went quiet). */
  failing(): void;
  restarted(reason: RestartReason): void;
  error(kind: ErrorKind, err: unknown): void;
}

/** Runs once: start(), then stop() for good (a fresh start is a new informer). */
export class ResilientInformer<T extends KubernetesObject> {
  private listWatch: ListWatch<T>;
  private stopped = true;
  private attempt = 0;
  private retry: NodeJS.Timeout | undefined;
  private readonly aborts = new AbortController();

  constructor(
    kc: KubeConfig,
    path: string,
    listPage: ListPage<T>,
    labelSelector: string | undefined,
    private readonly timing: InformerTiming,
    private readonly events: InformerEvents<T>,
  ) {
    const watch = new ObservedWatch(kc, this, timing);
    // ListWatch's own reconnect delay (after a watch closes without events: 1 s doubling
    // to 30 s) gets the same scale, cap and jitter as the restarts after errors.
    const delayFn = (ms: number) => sleep(this.jitter(Math.min(timing.backoffMaxMs, (ms * timing.backoffBaseMs) / 1000)), undefined, { ref: false });
    this.listWatch = new ListWatch<T>(path, watch, () => this.listAll(listPage), false, labelSelector || undefined, undefined, { delayFn });
    // A list in flight when stop() was called still completes inside ListWatch: ignore it.
    this.listWatch.on('add', (o) => this.stopped || events.object(o, false));
    this.listWatch.on('update', (o) => this.stopped || events.object(o, false));
    this.listWatch.on('delete', (o) => this.stopped || events.object(o, true));
    this.listWatch.on('error', (err) => this.failed(err));
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  start(): void {
    this.stopped = false;
    void this.listWatch.start();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    this.aborts.abort();
    void this.listWatch.stop();
  }

  /** Called by the watch wrapper and the list: the API answered. */
  noteHealthy(event: boolean): void {
    if (this.stopped) return;
    this.attempt = 0;
    this.events.healthy(event);
  }

  noteWatchEnded(err: unknown, sawGone: boolean): void {
    if (this.stopped) return;
    if (err) this.events.failing();
    if (!err) this.events.restarted(sawGone ? 'expired' : 'closed');
    else if (statusOf(err) === 410) this.events.restarted('expired');
    else if (isTimeout(err)) this.events.restarted('idle');
    // Any other error reaches failed() through ListWatch's error callback.
  }

  noteListApplied(): void {
    if (!this.stopped) this.events.synced();
  }

  private failed(err: unknown): void {
    if (this.stopped) return;
    this.events.failing();
    this.events.error(classify(err), err);
    const delay = this.jitter(Math.min(this.timing.backoffMaxMs, this.timing.backoffBaseMs * 2 ** Math.min(this.attempt, 30)));
    this.attempt++;
    clearTimeout(this.retry);
    this.retry = setTimeout(() => {
      if (this.stopped) return;
      this.events.restarted('error');
      void this.listWatch.start();
    }, delay);
    this.retry.unref();
  }

  /** Equal jitter: at least half the delay, so many sidecars spread out yet never hammer the API. */
  private jitter(ms: number): number {
    return ms / 2 + Math.random() * (ms / 2);
  }

  private async listAll(listPage: ListPage<T>): Promise<KubernetesListObject<T>> {
    const items: T[] = [];
    let cont: string | undefined;
    let resourceVersion = '';
    // A list has as many pages as the collection has items / pageSize; the bound only
    // guards against a server that hands out continue tokens forever.
    for (let page = 0; page < 1_000_000; page++) {
      const signal = AbortSignal.any([AbortSignal.timeout(this.timing.listTimeoutMs), this.aborts.signal]);
      const res = await listPage(cont, this.timing.pageSize, withSignal(signal));
      this.noteHealthy(true);
      items.push(...res.items);
      resourceVersion = res.metadata?.resourceVersion ?? '';
      cont = res.metadata?._continue || undefined;
      if (!cont) break;
    }
    return { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion }, items };
  }
}

/**
 * A watch for the library's ListWatch, written on the client's public request API
 * (KubeConfig.applySecurityAuthentication, RequestContext) rather than on Watch.watch,
 * whose inactivity bound is fixed at 30 s: this one asks for bookmarks and a server-side
 * timeout, reopens a watch not answered within watchHeadTimeoutMs or silent for
 * watchIdleTimeoutMs, and reports when a watch is established and how it ended.
 * ListWatch calls watch() right after it has applied a list, which is when the cache is
 * complete.
 */
class ObservedWatch<T extends KubernetesObject> extends Watch {
  constructor(
    kc: KubeConfig,
    private readonly informer: ResilientInformer<T>,
    private readonly timing: InformerTiming,
  ) {
    super(kc);
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: any, watchObj?: any) => void,
    done: (err: any) => void,
  ): Promise<AbortController> {
    const controller = new AbortController();
    // ListWatch may reach here after stop() (a list was in flight): start nothing.
    if (this.informer.isStopped) return controller;
    this.informer.noteListApplied();
    let sawGone = false;
    let ended = false;
    const end = (err: unknown) => {
      if (ended) return;
      ended = true;
      clearTimeout(deadline);
      controller.abort();
      this.informer.noteWatchEnded(err, sawGone);
      done(err);
    };
    // One deadline at a time: first for the answer's head, then for each silence.
    let deadline: NodeJS.Timeout | undefined;
    const bound = (ms: number, what: string) => {
      clearTimeout(deadline);
      deadline = setTimeout(() => end(new DOMException(what, 'TimeoutError')), ms);
      deadline.unref();
    };
    // Credentials (an exec plugin, say) count towards the head's bound too.
    bound(this.timing.watchHeadTimeoutMs, 'watch not answered within watchHeadTimeoutMs');
    const quiet = () => bound(this.timing.watchIdleTimeoutMs, 'watch sent nothing for watchIdleTimeoutMs');
    try {
      const url = watchUrl(this.config, path, { ...queryParams, allowWatchBookmarks: true, timeoutSeconds: this.timing.watchTimeoutSeconds });
      const ctx = new RequestContext(url, HttpMethod.GET);
      await this.config.applySecurityAuthentication(ctx);
      const response = await fetch(url, { headers: ctx.getHeaders(), dispatcher: ctx.getDispatcher(), signal: controller.signal });
      if (response.status !== 200) {
        void response.body?.cancel();
        throw Object.assign(new Error(response.statusText || `HTTP ${response.status}`), { statusCode: response.status });
      }
      quiet();
      this.informer.noteHealthy(false);
      const body = Readable.fromWeb(response.body as WebReadableStream);
      // The stream itself says when the connection fails or ends, whatever readline makes of it.
      body.once('error', end);
      body.once('close', () => end(null));
      const lines = createInterface(body);
      lines.on('line', (line) => {
        quiet();
        let event: { type?: string; object?: { code?: number } };
        try {
          event = JSON.parse(line);
        } catch {
          return;
        }
        if (event.type === 'ERROR') sawGone ||= event.object?.code === 410;
        else this.informer.noteHealthy(true);
        callback(event.type ?? '', event.object, event);
      });
      lines.once('close', () => end(null));
      lines.once('error', end);
    } catch (err) {
      end(err);
    }
    return controller;
  }
}

function watchUrl(kc: KubeConfig, path: string, query: Record<string, string | number | boolean | undefined>): string {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('No currently active cluster');
  const url = new URL(cluster.server + path);
  url.searchParams.set('watch', 'true');
  for (const [key, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(key, String(value));
  return url.toString();
}

/** Call options that bound a list request's time (the object-parameter API takes observable middleware). */
function withSignal(signal: AbortSignal): ConfigurationOptions {
  const middleware: ObservableMiddleware = {
    pre: (ctx) => {
      ctx.setSignal(signal);
      return new Observable(Promise.resolve(ctx));
    },
    post: (res) => new Observable(Promise.resolve(res)),
  };
  return { middleware: [middleware], middlewareMergeStrategy: 'append' };
}

/** The HTTP status of a failed list (ApiException.code) or watch (Error.statusCode). */
export function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown };
  if (typeof e?.statusCode === 'number') return e.statusCode;
  return typeof e?.code === 'number' ? e.code : undefined;
}

function isTimeout(err: unknown): boolean {
  return (err as Error)?.name === 'TimeoutError';
}

export function classify(err: unknown): ErrorKind {
  const status = statusOf(err);
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 429) return 'throttled';
  if (status !== undefined) return status >= 500 ? 'server_error' : 'client_error';
  if (isTimeout(err)) return 'timeout';
  const code = String((err as { code?: unknown; cause?: { code?: unknown } })?.cause?.code ?? (err as { code?: unknown })?.code ?? '');
  if (/CERT|SELF_SIGNED|TLS|SSL|UNABLE_TO_VERIFY/.test(code)) return 'tls';
  if (code === 'ENOENT' || code === 'EACCES') return 'config';
  return 'network';
}
