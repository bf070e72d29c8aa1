// undici's Agent on its own: the package's index also loads fetch, WebSocket, caching and
// mocking, which cost about 50 ms and 13 MB at start-up that the sidecar never uses.
declare module 'undici/lib/dispatcher/agent.js' {
  import { Agent } from 'undici';
  export default Agent;
}
