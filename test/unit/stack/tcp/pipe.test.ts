import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Pipe, patterned } from '../../../helpers/tcp.js';

test('two machines back to back: handshake, data both ways, clean close', () => {
  const pipe = new Pipe();
  const server = () => pipe.server!;
  assert.ok(pipe.runUntil(() => pipe.clientRec.events.includes('established') && pipe.serverRec.events.includes('established')));
  assert.is(pipe.client.state, 'ESTABLISHED');
  assert.is(pipe.client.write(patterned(100_000)), 100_000);
  assert.ok(pipe.runUntil(() => pipe.serverRec.received.length === 100_000));
  assert.equal(pipe.serverRec.received, [...patterned(100_000)]);
  server().consumed(100_000);
  server().write(patterned(5000, 3));
  assert.ok(pipe.runUntil(() => pipe.clientRec.received.length === 5000));
  pipe.client.shutdown();
  assert.ok(pipe.runUntil(() => pipe.serverRec.events.includes('end')));
  assert.is(server().state, 'CLOSE-WAIT');
  server().shutdown();
  assert.ok(pipe.runUntil(() => pipe.client.state === 'TIME-WAIT' && server().state === 'CLOSED'));
  assert.equal(pipe.serverRec.closed, [undefined]);
  assert.equal(pipe.clientRec.closed, [undefined]);
  pipe.clock.advance(60_000);
  assert.is(pipe.client.state, 'CLOSED');
  assert.is(pipe.clientRec.finished, 1);
  assert.is(pipe.serverRec.finished, 1);
});

test.run();
