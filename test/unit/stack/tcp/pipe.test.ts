import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Pipe, patterned } from '../../../helpers/tcp.js';
import { runScenario, type Op } from '../../../helpers/tcp-scenario.js';

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
  assert.is(pipe.clock.pending, 0, 'no timer outlives the connections');
});


const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('write' as const), side: fc.constantFrom(0 as const, 1 as const), n: fc.integer({ min: 1, max: 40_000 }) }),
  fc.record({ kind: fc.constant('read' as const), side: fc.constantFrom(0 as const, 1 as const) }),
  fc.record({ kind: fc.constant('shutdown' as const), side: fc.constantFrom(0 as const, 1 as const) }),
  fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 3000 }) }),
);

test('lossy, reordering, duplicating link: every byte written arrives once, in order, both ways', () => {
  fc.assert(
    fc.property(
      fc.record({
        loss: fc.double({ min: 0, max: 0.15, noNaN: true }),
        duplicate: fc.double({ min: 0, max: 0.1, noNaN: true }),
        reorder: fc.double({ min: 0, max: 0.3, noNaN: true }),
        latencyMs: fc.integer({ min: 0, max: 30 }),
        jitterMs: fc.integer({ min: 1, max: 20 }),
        seed: fc.integer({ min: 1, max: 1_000_000 }),
      }),
      fc.integer({ min: 4_096, max: 65_536 }),
      fc.constantFrom(100, 536, 1000, 1460),
      fc.array(opArb, { maxLength: 25 }),
      fc.constantFrom('newreno' as const, 'cubic' as const),
      (conditions, receiveBufferBytes, mss, ops, cc) => runScenario(conditions, receiveBufferBytes, mss, ops, false, cc),
    ),
    { numRuns: 300, reporter: (r) => { if (r.failed) throw new Error(`${fc.defaultReportMessage(r)}\n${String((r.errorInstance as Error | null)?.message)}`); } },
  );
});

test('CUBIC’s fractional cwnd never yields an empty data segment (found by fuzzing: an endless loop of them)', () => {
  runScenario({ loss: 0.18742739830242053, duplicate: 0, reorder: 0, latencyMs: 6, jitterMs: 1, seed: 1 }, 13401, 100, [
    { kind: 'write', side: 0, n: 5101 },
    { kind: 'wait', ms: 461 },
    { kind: 'write', side: 1, n: 13401 },
  ], false, 'cubic');
});

test('a zero-window ACK reordered behind the window update, then the last byte lost: the RTO resends it (found by fuzzing: the writer went silent and timed out, the reader one byte short)', () => {
  runScenario({ loss: 0.04467390377018433, duplicate: 0, reorder: 0.2426179733754721, latencyMs: 1, jitterMs: 12, seed: 786699 }, 4096, 1460, [
    { kind: 'write', side: 0, n: 32445 },
  ]);
});

test.run();
