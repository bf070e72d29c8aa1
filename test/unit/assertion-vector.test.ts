// The test vector published in docs/assertion.md: a verifier written from the docs in
// another language checks itself against it, so the sidecar must keep producing it.
import { readFileSync } from 'node:fs';
import { AssertionSigner } from '../../src/assertion/sign.js';
import { verifyAssertion } from '../../src/assertion/verify.js';

const doc = readFileSync(new URL('../../docs/assertion.md', import.meta.url), 'utf8');
const section = doc.slice(doc.indexOf('### Test vector'), doc.indexOf('## Keys'));
const key = Buffer.from(/`(\w{32})`/.exec(section)![1]!);
const claims = JSON.parse(/```json\n([\s\S]*?)```/.exec(section)![1]!.replace(/\n\s*/g, ''));
const token = /```\n(eyJ[\s\S]*?)```/.exec(section)![1]!.replace(/\s/g, '');

test('the signer reproduces the documented token', () => {
  expect(new AssertionSigner('k1', key).sign(claims)).toBe(token);
});

test('the verifier accepts the documented token at its time and for its request', async () => {
  const verified = await verifyAssertion(token, {
    keys: new Map([['k1', key]]),
    now: () => (claims.iat + 1) * 1000,
    request: { method: 'GET', uri: 'https://claw.example.com/api/status' },
  });
  expect(verified.sub).toBe('alice@example.com');
});
