// Node's TLS stack (tls, and https on top of it), loaded when a TLS listener, upstream or
// identity provider first needs it rather than at start: most sidecars speak plain HTTP on
// the pod's network, and for them it was idle memory spent on nothing
// (docs/decisions/0007-idle-memory.md). Node caches each module: later calls are a lookup.
export const tlsModule = () => process.getBuiltinModule('node:tls');
export const httpsModule = () => process.getBuiltinModule('node:https');
