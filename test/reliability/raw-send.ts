// Sends raw request bytes from wherever it runs (inside a test host's network namespace,
// so the sidecar sees that host's address) and prints each reply. Standalone, so Node
// runs it by type stripping:  node reliability/raw-send.ts < jobs.json
// Input: {"jobs":[{"id","host","port","b64"}],"concurrency","idleMs","capMs"}.
// Output: one JSON line per job: {"id","reply"(latin1),"error"?}.
import { connect } from 'node:net';

interface Job {
  id: string;
  host: string;
  port: number;
  b64: string;
}
interface Input {
  jobs: Job[];
  concurrency: number;
  /** A reply is complete when the server closes, or after this long without data. */
  idleMs: number;
  /** Upper bound for one exchange. */
  capMs: number;
}

function send(job: Job, idleMs: number, capMs: number): Promise<{ id: string; reply: string; error?: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: string | undefined;
    let settled = false;
    const socket = connect({ host: job.host, port: job.port }, () => socket.write(Buffer.from(job.b64, 'base64')));
    const done = () => {
      if (settled) return;
      settled = true;
      clearTimeout(cap);
      socket.destroy();
      resolve({ id: job.id, reply: Buffer.concat(chunks).toString('latin1'), ...(error !== undefined && { error }) });
    };
    const cap = setTimeout(done, capMs);
    socket.setTimeout(idleMs, done);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      error = err.code ?? err.message;
      done();
    });
    socket.on('close', done);
  });
}

async function main(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const input = JSON.parse(Buffer.concat(chunks).toString()) as Input;
  let next = 0;
  const worker = async () => {
    while (next < input.jobs.length) {
      const job = input.jobs[next++]!;
      process.stdout.write(`${JSON.stringify(await send(job, input.idleMs, input.capMs))}\n`);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, input.concurrency) }, worker));
}

main().catch((err: unknown) => {
  process.stderr.write(`raw-send: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
