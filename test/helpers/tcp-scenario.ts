// A random-operations scenario over the back-to-back pipe: writes, reads, half-closes, waits; then both sides
// close and read everything. Asserts exactly the bytes written arrived, in order, and both closed cleanly.
import * as assert from 'uvu/assert';
import { Pipe, flagString, patterned, type PipeConditions } from './tcp.js';

export type Op = { kind: 'write'; side: 0 | 1; n: number } | { kind: 'read'; side: 0 | 1 } | { kind: 'shutdown'; side: 0 | 1 } | { kind: 'wait'; ms: number };

export function runScenario(conditions: PipeConditions, receiveBufferBytes: number, mss: number, ops: Op[], trace = false, congestionControl: 'newreno' | 'cubic' = 'newreno'): void {
  const pipe = new Pipe(conditions, { receiveBufferBytes, sendBufferBytes: 16_384, minRtoMs: 200, initialRtoMs: 1000, dataRetries: 30, synRetries: 30, congestionControl }, mss);
  if (trace) pipe.onSegment = (seg, toward, dropped) => console.log(pipe.clock.now(), '->', toward, flagString(seg.flags), seg.seq, seg.ack, seg.window, seg.payload.byteLength, JSON.stringify(seg.options), dropped ? 'LOST' : '');
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
  for (let t = 0; t < 20_000_000 && !(pipe.clientRec.closed.length > 0 && pipe.serverRec.closed.length > 0); t += 20) step(20);
  const summary = `client ${pipe.client.state} ${pipe.clientRec.events.filter((e) => !e.startsWith('data')).join(',')} got ${pipe.clientRec.received.length}/${offset[1]}; server ${pipe.server?.state} ${pipe.serverRec.events.filter((e) => !e.startsWith('data')).join(',')} got ${pipe.serverRec.received.length}/${offset[0]}; written ${written.join('/')}`;
  // Each side learns of the end exactly once, cleanly; except that a side whose last ACK was lost may
  // retransmit its FIN after the other side's TIME-WAIT ended (backoff beyond 2·MSL under heavy loss),
  // and the RST that answers it reads as ECONNRESET, as on Linux.
  const clean = (closed: unknown[], other: unknown[]) => (closed.length === 1 && closed[0] === undefined) || (closed.length === 1 && closed[0] === 'ECONNRESET' && other.length === 1 && other[0] === undefined);
  assert.ok(clean(pipe.clientRec.closed, pipe.serverRec.closed), `client: ${summary}`);
  assert.ok(clean(pipe.serverRec.closed, pipe.clientRec.closed), `server: ${summary}`);
  assert.is(written[0], offset[0], summary);
  assert.is(written[1], offset[1], summary);
  assert.equal(pipe.serverRec.received, [...patterned(offset[0]!)]);
  assert.equal(pipe.clientRec.received, [...patterned(offset[1]!)]);
  assert.ok(pipe.serverRec.events.includes('end') && pipe.clientRec.events.includes('end'));
}

