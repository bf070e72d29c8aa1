import { loadConfigFile } from '../../config/load.js';
import { diagnose, type Finding, type PodNetwork } from '../../doctor/doctor.js';
import { readGatewayConfig } from '../../openclaw/gateway-config.js';
import { requireString, UsageError, type Command } from '../command.js';

export const doctor: Command = {
  name: 'doctor',
  usage: `trusted-proxy-sidecar doctor --config FILE --gateway-config FILE [--public-origin URL] [--max-trusted-addresses N] [--cluster] [--json]

Reads the sidecar's config and the gateway's (JSON5) and prints one finding per problem
on the way from the SSO login to a working Control UI: severity, key path, what the user
will see, and the fix. --public-origin is the URL users open (else the sidecar's
listen.allowedOrigins stand for it). A trusted CIDR covering more than
--max-trusted-addresses (default 256, a /24) is an error, and with --cluster so is one that
covers a node's pod CIDR (the nodes are listed from the Kubernetes API, as discovery reaches
it: KUBECONFIG, else the pod's service account). --json prints the findings for machines.
Exits 0 when clean, 1 with warnings only, 2 with errors or unreadable input.`,
  options: {
    config: { type: 'string', short: 'c' },
    'gateway-config': { type: 'string' },
    'public-origin': { type: 'string' },
    'max-trusted-addresses': { type: 'string' },
    cluster: { type: 'boolean' },
    json: { type: 'boolean' },
  },
  async run({ values }) {
    const configPath = requireString(values, 'config');
    const gatewayPath = requireString(values, 'gateway-config');
    const sidecar = loadConfigFile(configPath);
    if (!sidecar.ok) {
      process.stderr.write(`invalid config ${configPath}:\n${sidecar.problems.map((p) => `  - ${p}`).join('\n')}\n`);
      return 2;
    }
    let gateway: unknown;
    try {
      gateway = readGatewayConfig(gatewayPath);
    } catch (err) {
      process.stderr.write(`cannot read gateway config ${gatewayPath}: ${(err as Error).message}\n`);
      return 2;
    }
    if (gateway === undefined) {
      process.stderr.write(`cannot read gateway config ${gatewayPath}: no such file\n`);
      return 2;
    }
    const publicOrigin = typeof values['public-origin'] === 'string' ? values['public-origin'] : undefined;
    const bound = values['max-trusted-addresses'];
    const maxTrustedAddresses = bound === undefined ? undefined : Number(bound);
    if (maxTrustedAddresses !== undefined && (!Number.isInteger(maxTrustedAddresses) || maxTrustedAddresses < 1)) {
      throw new UsageError('--max-trusted-addresses must be a whole number of addresses, at least 1');
    }
    let podNetworks: PodNetwork[] | undefined;
    if (values.cluster) {
      try {
        podNetworks = await listPodNetworks();
      } catch (err) {
        process.stderr.write(`cannot list the cluster's nodes: ${(err as Error).message}\n`);
        return 2;
      }
    }
    const findings = diagnose(sidecar.config, gateway, {
      ...(publicOrigin !== undefined && { publicOrigin }),
      ...(maxTrustedAddresses !== undefined && { maxTrustedAddresses }),
      ...(podNetworks !== undefined && { podNetworks }),
    });
    const errors = findings.filter((f) => f.severity === 'error').length;
    const warnings = findings.length - errors;
    if (values.json) process.stdout.write(`${JSON.stringify({ errors, warnings, findings }, null, 2)}\n`);
    else process.stdout.write(report(findings, errors, warnings));
    return errors > 0 ? 2 : warnings > 0 ? 1 : 0;
  },
};

/** Every node's pod CIDRs. The Kubernetes client loads only when asked for (it is large). */
async function listPodNetworks(): Promise<PodNetwork[]> {
  const [{ CoreV1Api }, { loadKubeConfig }, { nodePodCIDRs }] = await Promise.all([
    import('@kubernetes/client-node'),
    import('../../discovery/kubeconfig.js'),
    import('../../discovery/extract.js'),
  ]);
  const api = loadKubeConfig(process.env).makeApiClient(CoreV1Api);
  const nodes = await api.listNode();
  return nodes.items.flatMap((node) => nodePodCIDRs(node).map((cidr) => ({ node: node.metadata?.name ?? '', cidr })));
}

function report(findings: Finding[], errors: number, warnings: number): string {
  if (findings.length === 0) return 'ok: the gateway config agrees with the sidecar\n';
  const blocks = findings.map(
    (f) => `${f.severity.toUpperCase()} ${f.code} at ${f.path}\n  problem:   ${f.problem}\n  user sees: ${f.userSees}\n  fix:       ${f.fix}\n`,
  );
  return `${blocks.join('\n')}\n${errors} error(s), ${warnings} warning(s)\n`;
}
