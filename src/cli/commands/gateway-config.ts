import { loadConfigFile } from '../../config/load.js';
import { mergeGatewayConfig, readGatewayConfig, writeGatewayConfig } from '../../openclaw/gateway-config.js';
import { requireString, UsageError, type Command } from '../command.js';

export const gatewayConfig: Command = {
  name: 'gateway-config',
  usage: `trusted-proxy-sidecar gateway-config --config FILE --file GATEWAY.json --public-origin URL [--port N] [--auto-approve-scopes a,b]

Sets only the gateway's trust and auth keys (bind, port, trustedProxies, trusted-proxy
auth with the sidecar's user header, required headers, loopback, device auto-approval,
the Control UI's allowed origin) in the persisted JSON5 file, starting from {} when it
does not exist, and leaves everything else alone. The file is rewritten atomically as
JSON (comments are not kept). Run it before every gateway start.`,
  options: {
    config: { type: 'string', short: 'c' },
    file: { type: 'string' },
    'public-origin': { type: 'string' },
    port: { type: 'string' },
    'auto-approve-scopes': { type: 'string' },
  },
  async run({ values }) {
    const configPath = requireString(values, 'config');
    const file = requireString(values, 'file');
    const publicOrigin = requireString(values, 'public-origin');
    const portText = values.port;
    const port = typeof portText === 'string' ? Number(portText) : undefined;
    if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65536)) throw new UsageError(`--port ${portText} is not a port`);
    const scopesText = values['auto-approve-scopes'];
    const deviceAutoApproveScopes =
      typeof scopesText === 'string'
        ? scopesText
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean)
        : undefined;
    const sidecar = loadConfigFile(configPath);
    if (!sidecar.ok) {
      process.stderr.write(`invalid config ${configPath}:\n${sidecar.problems.map((p) => `  - ${p}`).join('\n')}\n`);
      return 2;
    }
    try {
      const merged = mergeGatewayConfig(readGatewayConfig(file), sidecar.config, {
        publicOrigin,
        ...(port !== undefined && { port }),
        ...(deviceAutoApproveScopes !== undefined && { deviceAutoApproveScopes }),
      });
      writeGatewayConfig(file, merged);
    } catch (err) {
      process.stderr.write(`gateway-config: ${file}: ${(err as Error).message}\n`);
      return 2;
    }
    process.stdout.write(`updated ${file}\n`);
    return 0;
  },
};
