import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server } from 'node:http';
import { DecodeError, DiscoveryError } from '../../../src/errors.js';
import { httpGet } from '../../../src/cli/http-get.js';

async function serve(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: URL }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: new URL(`http://127.0.0.1:${(server.address() as { port: number }).port}/x`) };
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('no rejection');
}

test('an answer within the cap comes back whole, with its status and the headers sent', async () => {
  const { server, url } = await serve((request, response) => {
    response.writeHead(418);
    response.end(`auth=${request.headers.authorization}`);
  });
  try {
    const answer = await httpGet(url, { headers: { authorization: 'Bearer t' }, maxBytes: 100, timeoutMs: 5_000 });
    assert.is(answer.status, 418);
    assert.is(Buffer.from(answer.body).toString(), 'auth=Bearer t');
  } finally {
    await close(server);
  }
});

test('a body over the cap is cut off with DecodeError too-large; a silent server times out; an abort cancels', async () => {
  const { server, url } = await serve((request, response) => {
    if (request.url === '/big') {
      response.writeHead(200);
      response.write(Buffer.alloc(64 * 1024));
      response.end(Buffer.alloc(64 * 1024));
    } // else never answer
  });
  try {
    const big = await rejection(httpGet(new URL('/big', url), { headers: {}, maxBytes: 100_000, timeoutMs: 5_000 }));
    assert.instance(big, DecodeError);
    assert.is((big as DecodeError).code, 'too-large');
    const slow = await rejection(httpGet(url, { headers: {}, maxBytes: 100, timeoutMs: 100 }));
    assert.instance(slow, DiscoveryError);
    assert.is((slow as DiscoveryError).code, 'timeout');
    const controller = new AbortController();
    const pending = rejection(httpGet(url, { headers: {}, maxBytes: 100, timeoutMs: 5_000, signal: controller.signal }));
    setTimeout(() => controller.abort(), 20);
    assert.is(((await pending) as DiscoveryError).code, 'aborted');
  } finally {
    await close(server);
  }
});

test.run();
