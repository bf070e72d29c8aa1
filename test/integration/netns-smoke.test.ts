import { createNetwork } from '../../harness/netns.js';

test('a test host reaches a server in another test host from its own address', async () => {
  const net = await createNetwork(['a', 'b']);
  try {
    const b = net.host('b');
    const server = b.spawn(process.execPath, [
      '-e',
      `require('http').createServer((q, s) => s.end(q.socket.remoteAddress)).listen(8000, '${b.address}', () => console.log('up'))`,
    ]);
    await new Promise((resolve) => server.stdout!.once('data', resolve));
    const seen = net.host('a').exec('curl', ['-s', '--max-time', '5', `http://${b.address}:8000/`]);
    expect(seen).toBe(net.host('a').address);
  } finally {
    await net.teardown();
  }
});
