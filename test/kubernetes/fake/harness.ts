// A sidecar in-process whose discovery reaches the test API server through the real
// in-cluster path (env + service-account folder), with short timings so that backoff,
// idle timeouts and staleness play out in seconds.
import type { ConfigInput } from '../../../src/config/schema.js';
import type { InformerTiming } from '../../../src/discovery/informer.js';
import { startKubeApiServer, type KubeApiServer } from '../../support/kube-apiserver.js';
import { startSidecar, type TestSidecar } from '../../support/sidecar.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../../harness/upstream.js';
import { waitFor } from '../../../harness/wait.js';

export const FAST: InformerTiming = {
  backoffBaseMs: 50,
  backoffMaxMs: 400,
  pageSize: 2,
  listTimeoutMs: 2000,
  watchHeadTimeoutMs: 1500,
  watchIdleTimeoutMs: 3000,
  watchTimeoutSeconds: 60,
};

type Discovery = NonNullable<NonNullable<ConfigInput['trust']>['discovery']>;

export interface Harness {
  api: KubeApiServer;
  sc: TestSidecar;
  upstream: RecordingUpstream;
  /** The sources that trust `ip` in the set the decision path uses now, or false. */
  trustedBy(ip: string): readonly string[] | false;
  readiness(): Promise<{ status: number; problems: string[] }>;
  waitTrusted(ip: string, what?: string): Promise<readonly string[]>;
  waitUntrusted(ip: string, what?: string): Promise<void>;
  waitReady(): Promise<void>;
  logged(msg: string, match?: (line: Record<string, unknown>) => boolean): Record<string, unknown> | undefined;
  stop(): Promise<void>;
}

export async function startHarness(
  discovery: Discovery,
  opts: { seed?: (api: KubeApiServer) => void; timing?: Partial<InformerTiming>; env?: (api: KubeApiServer) => Record<string, string>; cidrs?: string[] } = {},
): Promise<Harness> {
  const api = await startKubeApiServer();
  let upstream: RecordingUpstream | undefined;
  try {
    opts.seed?.(api);
    upstream = await startRecordingUpstream();
    const sc = await startSidecar(
      upstream.url,
      { trust: { cidrs: opts.cidrs ?? [], discovery } },
      { discovery: { env: opts.env ? opts.env(api) : api.env, timing: { ...FAST, ...opts.timing } } },
    );
    const trustedBy = (ip: string) => {
      const r = sc.sidecar.runtime.snapshot.trusted.lookup(ip);
      return r.trusted ? r.sources : false;
    };
    const readiness = async () => {
      const res = await fetch(`${sc.adminUrl}/readyz`);
      return { status: res.status, problems: ((await res.json()) as { problems: string[] }).problems };
    };
    return {
      api,
      sc,
      upstream,
      trustedBy,
      readiness,
      waitTrusted: (ip, what = `${ip} trusted`) => waitFor(() => trustedBy(ip), what),
      waitUntrusted: async (ip, what = `${ip} untrusted`) => {
        await waitFor(() => trustedBy(ip) === false, what);
      },
      waitReady: async () => {
        let last: string[] = [];
        await waitFor(async () => {
          const r = await readiness();
          last = r.problems;
          return r.status === 200;
        }, 'readiness').catch((err: Error) => {
          throw new Error(`${err.message}; problems: ${JSON.stringify(last)}; logs: ${JSON.stringify(sc.logs.slice(-5))}`);
        });
      },
      logged: (msg, match = () => true) => sc.logs.find((l) => l.msg === msg && match(l)),
      stop: async () => {
        await sc.stop();
        await upstream!.close();
        await api.close();
      },
    };
  } catch (err) {
    await upstream?.close();
    await api.close();
    throw err;
  }
}
