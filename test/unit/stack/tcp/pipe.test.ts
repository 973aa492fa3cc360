import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
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


type Op = { kind: 'write'; side: 0 | 1; n: number } | { kind: 'read'; side: 0 | 1 } | { kind: 'shutdown'; side: 0 | 1 } | { kind: 'wait'; ms: number };

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
      fc.constantFrom(536, 1000, 1460),
      fc.array(opArb, { maxLength: 25 }),
      (conditions, receiveBufferBytes, mss, ops) => {
        const pipe = new Pipe(conditions, { receiveBufferBytes, sendBufferBytes: 16_384, minRtoMs: 200, initialRtoMs: 1000, dataRetries: 30, synRetries: 30 }, mss);
        const queued: Uint8Array[][] = [[], []];
        const written = [0, 0];
        const shut = [false, false];
        const autoRead = [false, false];
        const conn = (side: number) => (side === 0 ? pipe.client : pipe.server);
        const rec = (side: number) => (side === 0 ? pipe.clientRec : pipe.serverRec);
        const consumedSoFar = [0, 0];
        const pump = () => {
          for (const side of [0, 1]) {
            const c = conn(side);
            if (!c) continue;
            if (autoRead[side]) {
              const r = rec(side).received.length - consumedSoFar[side]!;
              if (r > 0) {
                consumedSoFar[side] = rec(side).received.length;
                c.consumed(r);
              }
            }
            if (c.state !== 'ESTABLISHED' && c.state !== 'CLOSE-WAIT') continue;
            const q = queued[side]!;
            while (q.length > 0) {
              const chunk = q[0]!;
              const n = c.write(chunk);
              written[side]! += n;
              if (n < chunk.byteLength) {
                q[0] = chunk.subarray(n);
                break;
              }
              q.shift();
            }
            if (shut[side] && q.length === 0) c.shutdown();
          }
        };
        const step = (ms: number) => {
          for (let t = 0; t < ms; t += 5) {
            pipe.clock.advance(5);
            pump();
          }
        };
        pipe.runUntil(() => pipe.server !== undefined && pipe.client.state === 'ESTABLISHED', 600_000);
        step(50);
        let offset = [0, 0];
        for (const op of ops) {
          if (op.kind === 'write' && !shut[op.side]) {
            queued[op.side]!.push(patterned(op.n, offset[op.side]));
            offset[op.side]! += op.n;
          } else if (op.kind === 'read') {
            const r = rec(op.side).received.length - consumedSoFar[op.side]!;
            consumedSoFar[op.side] = rec(op.side).received.length;
            conn(op.side)?.consumed(r);
          } else if (op.kind === 'shutdown') shut[op.side] = true;
          else if (op.kind === 'wait') step(op.ms);
          pump();
        }
        shut[0] = shut[1] = autoRead[0] = autoRead[1] = true;
        pump();
        for (let t = 0; t < 3_000_000 && !(pipe.clientRec.closed.length > 0 && pipe.serverRec.closed.length > 0); t += 20) step(20);
        const summary = `client ${pipe.client.state} ${pipe.clientRec.events.filter((e) => !e.startsWith('data')).join(',')} got ${pipe.clientRec.received.length}/${offset[1]}; server ${pipe.server?.state} ${pipe.serverRec.events.filter((e) => !e.startsWith('data')).join(',')} got ${pipe.serverRec.received.length}/${offset[0]}; written ${written.join('/')}`;
        assert.equal(pipe.clientRec.closed, [undefined], summary);
        assert.equal(pipe.serverRec.closed, [undefined], summary);
        assert.is(written[0], offset[0], summary);
        assert.is(written[1], offset[1], summary);
        assert.equal(pipe.serverRec.received, [...patterned(offset[0]!)]);
        assert.equal(pipe.clientRec.received, [...patterned(offset[1]!)]);
        assert.ok(pipe.serverRec.events.includes('end') && pipe.clientRec.events.includes('end'));
      },
    ),
    { numRuns: 300, reporter: (r) => { if (r.failed) throw new Error(`${fc.defaultReportMessage(r)}\n${String((r.errorInstance as Error | null)?.message)}`); } },
  );
});

test.run();
