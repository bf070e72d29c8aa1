// The parts of prom-client the sidecar uses, loaded one by one. Its index loads every part:
// the Pushgateway brings Node's https, TLS and zlib, the cluster aggregator Node's cluster,
// child_process and dgram, none of which the sidecar otherwise needs until a TLS listener or
// upstream is configured (docs/performance.md, "Idle memory").
export { default as Registry } from 'prom-client/lib/registry.js';
export { default as Counter } from 'prom-client/lib/counter.js';
export { default as Gauge } from 'prom-client/lib/gauge.js';
export { default as Histogram } from 'prom-client/lib/histogram.js';
export { default as collectDefaultMetrics } from 'prom-client/lib/defaultMetrics.js';
