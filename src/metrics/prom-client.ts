// The parts of prom-client the sidecar uses, loaded one by one. Its index loads every part,
// the Pushgateway and the cluster aggregator too, which the sidecar never uses; the
// Pushgateway alone brought Node's https, TLS and zlib into every sidecar at start
// (docs/decisions/0007-idle-memory.md).
export { default as Registry } from 'prom-client/lib/registry.js';
export { default as Counter } from 'prom-client/lib/counter.js';
export { default as Gauge } from 'prom-client/lib/gauge.js';
export { default as collectDefaultMetrics } from 'prom-client/lib/defaultMetrics.js';
