// Scripted segment tests in the style of packetdrill: exact segments in, exact segments and timing out.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, type TcpConfig, type TcpOptions } from '../../../../src/stack/tcp/contract.js';
import { activeHarness, describe, passiveHarness, patterned, peer, s, type Harness } from '../../../helpers/tcp.js';

const IRS = 5000;
const SA = TCP_SYN | TCP_ACK;
const A = TCP_ACK;
const FA = TCP_FIN | TCP_ACK;
const PA = TCP_PSH | TCP_ACK;
/** Our window field with the default 4 MiB buffer at scale 7, `held` bytes not yet consumed. */
const win = (held = 0) => Math.floor(((4 << 20) - held) / 128);

/** Active open completed 100 ms after the SYN (SRTT 100, RTTVAR 50: RTO 300 ms). Peer MSS 1000. */
function established(overrides: Partial<TcpConfig> = {}, options: TcpOptions = { mss: 1000, windowScale: 0, sackPermitted: true }, window = 65535): Harness {
  const h = activeHarness(overrides);
  h.clock.advance(100);
  h.connection.handleSegment(peer({ seq: IRS, ack: s(h.iss, 1), flags: SA, window, options }));
  h.take();
  return h;
}
const d = (h: Harness) => h.take().map((seg) => describe(seg, h.iss, IRS));
/** A segment from the peer, sequence numbers relative to the ISNs (as packetdrill writes them). */
const from = (h: Harness, seq: number, ack: number, flags: number, payload: number | Uint8Array = 0, window = 65535, options: TcpOptions = {}) =>
  h.connection.handleSegment(peer({ seq: s(IRS, seq), ack: s(h.iss, ack), flags, payload, window, options }));

// ---------------------------------------------------------------------------------------------
// Opening

test('active open: SYN with MSS, SACK-permitted, window scale; SYN-ACK answered by ACK', () => {
  const h = activeHarness();
  assert.is(h.connection.state, 'SYN-SENT');
  assert.equal(d(h), ['S 0:0(0) ack - win 65535 <mss 1460,sackPermitted true,windowScale 7>']);
  h.clock.advance(100);
  from(h, 0, 1, SA, 0, 65535, { mss: 1000, windowScale: 2, sackPermitted: true });
  assert.is(h.connection.state, 'ESTABLISHED');
  assert.equal(h.rec.events, ['established']);
  assert.equal(d(h), [`. 1:1(0) ack 1 win ${win()}`]);
});

test('passive open: SYN-ACK mirrors the offered options; the ACK establishes', () => {
  const h = passiveHarness(peer({ seq: IRS, flags: TCP_SYN, options: { mss: 1200, sackPermitted: true, windowScale: 3 } }));
  assert.is(h.connection.state, 'SYN-RECEIVED');
  assert.equal(d(h), ['S. 0:0(0) ack 1 win 65535 <mss 1460,sackPermitted true,windowScale 7>']);
  from(h, 1, 1, A);
  assert.is(h.connection.state, 'ESTABLISHED');
  assert.equal(h.rec.events, ['established']);
  assert.equal(d(h), []);
});

test('passive open without options: no scaling, no SACK, MSS 536 for our segments', () => {
  const h = passiveHarness(peer({ seq: IRS, flags: TCP_SYN }));
  assert.equal(d(h), ['S. 0:0(0) ack 1 win 65535 <mss 1460>']);
  from(h, 1, 1, A, 0, 8000);
  h.connection.write(patterned(1000));
  assert.equal(d(h), ['. 1:537(536) ack 1 win 65535', 'P. 537:1001(464) ack 1 win 65535']);
});

test('a retransmitted SYN in SYN-RECEIVED gets the SYN-ACK again; a bad ACK gets a RST', () => {
  const h = passiveHarness(peer({ seq: IRS, flags: TCP_SYN }));
  h.take();
  h.connection.handleSegment(peer({ seq: IRS, flags: TCP_SYN }));
  assert.equal(d(h), ['S. 0:0(0) ack 1 win 65535 <mss 1460>']);
  from(h, 1, 7, A);
  assert.equal(d(h), ['R 7:7(0) ack - win 0']);
  assert.is(h.connection.state, 'SYN-RECEIVED');
});

test('SYN-ACK retransmission and SYN-RECEIVED timeout', () => {
  const h = passiveHarness(peer({ seq: IRS, flags: TCP_SYN }), { synRetries: 2 });
  h.take();
  h.clock.advance(999);
  assert.equal(d(h), []);
  h.clock.advance(1);
  assert.equal(d(h), ['S. 0:0(0) ack 1 win 65535 <mss 1460>']);
  h.clock.advance(2000);
  assert.equal(d(h).length, 1);
  h.clock.advance(4000);
  assert.equal(h.rec.closed, ['ETIMEDOUT']);
  assert.is(h.rec.finished, 1);
});

test('simultaneous open: SYN crosses SYN, both SYN-ACK, both ESTABLISHED', () => {
  const h = activeHarness();
  h.take();
  from(h, 0, 0, TCP_SYN, 0, 65535, { mss: 1000, sackPermitted: true, windowScale: 1 });
  assert.is(h.connection.state, 'SYN-RECEIVED');
  assert.equal(d(h), ['S. 0:0(0) ack 1 win 65535 <mss 1460,sackPermitted true,windowScale 7>']);
  from(h, 0, 1, SA, 0, 65535, { mss: 1000, sackPermitted: true, windowScale: 1 });
  assert.is(h.connection.state, 'ESTABLISHED');
  assert.equal(h.rec.events, ['established']);
  assert.equal(d(h), [`. 1:1(0) ack 1 win ${win()}`]);
});

test('SYN retransmissions double from the initial RTO and end in ETIMEDOUT', () => {
  const h = activeHarness({ synRetries: 2 });
  h.take();
  const times: number[] = [];
  const t0 = h.clock.now();
  for (let i = 0; i < 8000; i += 100) {
    h.clock.advance(100);
    for (const seg of h.take()) times.push(h.clock.now() - t0 + 0 * seg.seq);
  }
  assert.equal(times, [1000, 3000]);
  assert.equal(h.rec.closed, ['ETIMEDOUT']);
  assert.is(h.connection.state, 'CLOSED');
});

// ---------------------------------------------------------------------------------------------
// RST in every state

test('RST to our SYN is ECONNREFUSED; a RST without an acceptable ACK is ignored', () => {
  const h = activeHarness();
  from(h, 0, 0, TCP_RST);
  assert.is(h.connection.state, 'SYN-SENT');
  from(h, 0, 1, TCP_RST | A);
  assert.equal(h.rec.closed, ['ECONNREFUSED']);
  assert.is(h.rec.finished, 1);
  assert.is(h.connection.state, 'CLOSED');
});

test('SYN-SENT: an ACK for something we never sent draws a RST', () => {
  const h = activeHarness();
  h.take();
  from(h, 0, 100, SA);
  assert.equal(d(h), ['R 100:100(0) ack - win 0']);
  assert.is(h.connection.state, 'SYN-SENT');
});

test('RST in SYN-RECEIVED (passive) ends it with ECONNRESET', () => {
  const h = passiveHarness(peer({ seq: IRS, flags: TCP_SYN }));
  from(h, 1, 0, TCP_RST);
  assert.equal(h.rec.closed, ['ECONNRESET']);
});

for (const [state, setup] of [
  ['ESTABLISHED', (_h: Harness) => undefined],
  ['FIN-WAIT-1', (h: Harness) => h.connection.shutdown()],
  [
    'FIN-WAIT-2',
    (h: Harness) => {
      h.connection.shutdown();
      from(h, 1, 2, A);
    },
  ],
  ['CLOSE-WAIT', (h: Harness) => from(h, 1, 1, FA)],
] as const) {
  test(`RST in ${state}: exact RCV.NXT resets (ECONNRESET), in-window draws a challenge ACK, out of window is dropped`, () => {
    const h = established();
    setup(h);
    assert.is(h.connection.state, state);
    const rcvNxt = state === 'CLOSE-WAIT' ? 2 : 1;
    h.take();
    from(h, rcvNxt + 100, 0, TCP_RST);
    assert.is(h.connection.state, state);
    assert.equal(d(h).length, 1, 'challenge ACK');
    from(h, rcvNxt + 100_000_000, 0, TCP_RST);
    assert.equal(d(h), [], 'no answer to an out-of-window RST');
    from(h, rcvNxt, 0, TCP_RST);
    assert.equal(h.rec.closed, ['ECONNRESET']);
    assert.is(h.connection.state, 'CLOSED');
    assert.is(h.rec.finished, 1);
    assert.is(h.connection.stats.resetsIn, 2, 'the out-of-window RST counts as dropped');
  });
}

test('RST in TIME-WAIT is ignored (RFC 1337); RST in LAST-ACK ends it', () => {
  const h = established({ mslMs: 1000 });
  h.connection.shutdown();
  from(h, 1, 2, FA);
  assert.is(h.connection.state, 'TIME-WAIT');
  from(h, 2, 2, TCP_RST);
  assert.is(h.connection.state, 'TIME-WAIT');
  const g = established();
  from(g, 1, 1, FA);
  g.connection.shutdown();
  assert.is(g.connection.state, 'LAST-ACK');
  from(g, 2, 1, TCP_RST);
  assert.is(g.connection.state, 'CLOSED');
  assert.equal(g.rec.closed, ['ECONNRESET']);
});

test('RST in CLOSING ends it with ECONNRESET', () => {
  const h = established();
  h.connection.shutdown();
  from(h, 1, 1, FA);
  assert.is(h.connection.state, 'CLOSING');
  from(h, 2, 0, TCP_RST);
  assert.is(h.connection.state, 'CLOSED');
  assert.equal(h.rec.closed, ['ECONNRESET']);
  assert.is(h.rec.finished, 1);
});

test('a SYN in ESTABLISHED draws a challenge ACK (RFC 5961 §4)', () => {
  const h = established();
  from(h, 1, 1, TCP_SYN);
  assert.equal(d(h), [`. 1:1(0) ack 1 win ${win()}`]);
  assert.is(h.connection.state, 'ESTABLISHED');
});

test('abort sends RST|ACK and closes without an error', () => {
  const h = established();
  h.connection.abort();
  assert.equal(d(h), ['R. 1:1(0) ack 1 win 0']);
  assert.equal(h.rec.closed, [undefined]);
  assert.is(h.connection.state, 'CLOSED');
  assert.is(h.connection.write(patterned(1)), 0);
});

// ---------------------------------------------------------------------------------------------
// Closing

test('active close: FIN-WAIT-1, FIN-WAIT-2 (still receiving), TIME-WAIT for 2·MSL, then CLOSED', () => {
  const h = established({ mslMs: 1000 });
  h.connection.shutdown();
  assert.is(h.connection.state, 'FIN-WAIT-1');
  assert.equal(d(h), [`F. 1:1(0) ack 1 win ${win()}`]);
  from(h, 1, 2, A);
  assert.is(h.connection.state, 'FIN-WAIT-2');
  from(h, 1, 2, PA, 100);
  assert.equal(h.rec.received.length, 100);
  from(h, 101, 2, FA);
  assert.is(h.connection.state, 'TIME-WAIT');
  assert.equal(d(h), [`. 2:2(0) ack 102 win ${win(100)}`]);
  assert.equal(h.rec.events, ['established', 'data 100', 'end', 'closed ok']);
  // A retransmitted FIN is ACKed again and restarts the 2·MSL timer.
  h.clock.advance(1500);
  from(h, 101, 2, FA);
  assert.equal(d(h), [`. 2:2(0) ack 102 win ${win(100)}`]);
  h.clock.advance(1999);
  assert.is(h.connection.state, 'TIME-WAIT');
  h.clock.advance(1);
  assert.is(h.connection.state, 'CLOSED');
  assert.is(h.rec.finished, 1);
  assert.equal(h.rec.closed, [undefined]);
});

test('passive close: CLOSE-WAIT (still sending), LAST-ACK, CLOSED when our FIN is acknowledged', () => {
  const h = established();
  from(h, 1, 1, FA);
  assert.is(h.connection.state, 'CLOSE-WAIT');
  assert.equal(d(h), [`. 1:1(0) ack 2 win ${win()}`]);
  assert.equal(h.rec.events, ['established', 'end']);
  h.connection.write(patterned(10));
  assert.equal(d(h), [`P. 1:11(10) ack 2 win ${win()}`]);
  h.connection.shutdown();
  assert.is(h.connection.state, 'LAST-ACK');
  assert.equal(d(h), [`F. 11:11(0) ack 2 win ${win()}`]);
  from(h, 2, 12, A);
  assert.is(h.connection.state, 'CLOSED');
  assert.equal(h.rec.closed, [undefined]);
  assert.is(h.rec.finished, 1);
});

test('simultaneous close: FINs cross, CLOSING, then TIME-WAIT on the ACK of our FIN', () => {
  const h = established({ mslMs: 500 });
  h.connection.shutdown();
  h.take();
  from(h, 1, 1, FA);
  assert.is(h.connection.state, 'CLOSING');
  assert.equal(d(h), [`. 2:2(0) ack 2 win ${win()}`]);
  from(h, 2, 2, A);
  assert.is(h.connection.state, 'TIME-WAIT');
  h.clock.advance(1000);
  assert.is(h.connection.state, 'CLOSED');
  assert.equal(h.rec.closed, [undefined]);
});

test('a FIN is retransmitted on timeout like data', () => {
  const h = established();
  h.connection.shutdown();
  h.take();
  h.clock.advance(300);
  assert.equal(d(h), [`F. 1:1(0) ack 1 win ${win()}`]);
  assert.is(h.connection.stats.retransmits, 1);
});

test('a half-closed connection still delivers the peer’s data, in order, until its FIN', () => {
  const h = established();
  h.connection.shutdown();
  from(h, 1, 2, A);
  from(h, 1, 2, A, 1000);
  from(h, 1001, 2, FA, 500);
  assert.is(h.rec.received.length, 1500);
  assert.equal(h.rec.received, [...patterned(1000), ...patterned(500)]);
  assert.is(h.connection.state, 'TIME-WAIT');
});

// ---------------------------------------------------------------------------------------------
// Receiving: delayed ACK, out of order, SACK, window

test('delayed ACK: one full segment waits 40 ms, the second is ACKed at once', () => {
  const h = established();
  from(h, 1, 1, A, 1000);
  assert.equal(d(h), []);
  h.clock.advance(39);
  assert.equal(d(h), []);
  h.clock.advance(1);
  assert.equal(d(h), [`. 1:1(0) ack 1001 win ${win(1000)}`]);
  from(h, 1001, 1, A, 1000);
  assert.equal(d(h), []);
  from(h, 2001, 1, A, 1000);
  assert.equal(d(h), [`. 1:1(0) ack 3001 win ${win(3000)}`]);
  h.clock.advance(100);
  assert.equal(d(h), [], 'nothing left to ACK');
});

test('out-of-order segments are ACKed at once with SACK blocks, latest first; filling the hole ACKs everything', () => {
  const h = established();
  from(h, 1001, 1, A, 1000);
  // The right edge of the window never moves left, so queued bytes do not shrink it yet.
  assert.equal(d(h), [`. 1:1(0) ack 1 win ${win()} <sack 1001:2001>`]);
  from(h, 3001, 1, A, 1000);
  assert.equal(d(h), [`. 1:1(0) ack 1 win ${win()} <sack 3001:4001 1001:2001>`]);
  assert.equal(h.rec.received.length, 0);
  from(h, 1, 1, A, 1000);
  assert.equal(d(h), [`. 1:1(0) ack 2001 win ${win(2000)} <sack 3001:4001>`]);
  from(h, 2001, 1, A, 1000);
  assert.equal(d(h), [`. 1:1(0) ack 4001 win ${win(4000)}`]);
  assert.equal(h.rec.received, [...patterned(1000), ...patterned(1000), ...patterned(1000), ...patterned(1000)]);
});

test('data segments leave room for the SACK blocks they carry: MSS counts no options (RFC 9293 §3.7.1; found by a 1 % loss transfer both ways: full segments plus SACK exceeded the MTU and were refused forever)', () => {
  const h = established();
  from(h, 1001, 1, A, 1000); // a hole at 1:1001: our segments now carry one SACK block (12 option bytes)
  assert.equal(d(h), [`. 1:1(0) ack 1 win ${win()} <sack 1001:2001>`]);
  assert.is(h.connection.write(patterned(2500)), 2500);
  assert.equal(d(h), [`. 1:989(988) ack 1 win ${win()} <sack 1001:2001>`, `. 989:1977(988) ack 1 win ${win()} <sack 1001:2001>`, `P. 1977:2501(524) ack 1 win ${win()} <sack 1001:2001>`]);
  from(h, 3001, 2501, A, 1000); // two blocks: 20 option bytes
  d(h);
  assert.is(h.connection.write(patterned(1000)), 1000);
  assert.equal(d(h), [`. 2501:3481(980) ack 1 win ${win()} <sack 3001:4001 1001:2001>`, `P. 3481:3501(20) ack 1 win ${win()} <sack 3001:4001 1001:2001>`]);
  from(h, 1, 3501, A, 1000);
  from(h, 2001, 3501, A, 1000); // every hole filled: full segments again
  d(h);
  assert.is(h.connection.write(patterned(1000)), 1000);
  assert.equal(d(h).map((line) => line.split(' ')[1]), ['3501:4501(1000)']);
});

test('out-of-window and duplicate segments are counted, dropped and answered with an ACK', () => {
  const h = established({ receiveBufferBytes: 4096 });
  from(h, 100_000, 1, A, 10);
  assert.is(h.connection.stats.dropped, 1);
  assert.equal(d(h).length, 1);
  from(h, 1, 1, A, 100);
  h.take();
  from(h, 1, 1, A, 100);
  assert.is(h.rec.received.length, 100, 'the duplicate is not delivered twice');
  assert.equal(d(h).length, 1, 'a duplicate is ACKed at once');
});

test('a FIN arriving before missing data is held until the hole fills', () => {
  const h = established();
  from(h, 1001, 1, FA, 500);
  assert.equal(d(h), [`. 1:1(0) ack 1 win ${win()} <sack 1001:1501>`]);
  assert.is(h.connection.state, 'ESTABLISHED');
  from(h, 1, 1, A, 1000);
  assert.is(h.connection.state, 'CLOSE-WAIT');
  assert.equal(h.rec.events, ['established', 'data 1000', 'data 500', 'end']);
  assert.equal(d(h), [`. 1:1(0) ack 1502 win ${win(1500)}`]);
});

test('data on the SYN-ACK is delivered; a FIN queued in SYN-SENT follows the handshake', () => {
  const h = activeHarness();
  h.connection.write(patterned(10));
  h.connection.shutdown();
  assert.is(h.connection.state, 'SYN-SENT');
  h.take();
  from(h, 0, 1, SA, 5, 65535, { mss: 1000, windowScale: 0 });
  assert.is(h.connection.state, 'FIN-WAIT-1');
  assert.equal(h.rec.received.length, 5);
  assert.equal(d(h), [`FP. 1:11(10) ack 6 win ${win(5)}`]);
});

test('an ACK for data never sent is answered with an ACK and dropped', () => {
  const h = established();
  from(h, 1, 500, A, 10);
  assert.equal(h.rec.received.length, 0);
  assert.equal(d(h), [`. 1:1(0) ack 1 win ${win()}`]);
  assert.is(h.connection.stats.dropped, 1);
});

test('a zero window still takes a pure FIN', () => {
  const h = established({ receiveBufferBytes: 2000 }, { mss: 1000 });
  from(h, 1, 1, A, 1000);
  from(h, 1001, 1, A, 1000);
  assert.equal(d(h), ['. 1:1(0) ack 2001 win 0']);
  from(h, 2001, 1, FA);
  assert.is(h.connection.state, 'CLOSE-WAIT');
  assert.equal(d(h), ['. 1:1(0) ack 2002 win 0']);
});

test('after an idle period longer than the RTO, cwnd restarts from the initial window', () => {
  const h = established();
  h.connection.setNoDelay(true);
  h.connection.write(patterned(10_000));
  assert.is(h.take().length, 10);
  for (let i = 1; i <= 10; i++) from(h, 1, 1 + i * 1000, A);
  h.take();
  h.clock.advance(10_000);
  h.connection.write(patterned(30_000));
  assert.is(h.take().length, 10, 'ten segments, not the twenty a grown cwnd would allow');
});

test('the receive window closes as data waits unread and reopens with a window update', () => {
  const h = established({ receiveBufferBytes: 4000 }, { mss: 1000 });
  for (let i = 0; i < 4; i++) from(h, 1 + i * 1000, 1, A, 1000);
  const acks = d(h);
  assert.equal(acks[acks.length - 1], '. 1:1(0) ack 4001 win 0');
  from(h, 4001, 1, A, 1000);
  assert.equal(h.rec.received.length, 4000, 'data beyond a zero window is not taken');
  assert.equal(d(h), ['. 1:1(0) ack 4001 win 0']);
  h.connection.consumed(4000);
  assert.equal(d(h), ['. 1:1(0) ack 4001 win 4000']);
});

// ---------------------------------------------------------------------------------------------
// Sending: segmentation, Nagle, RTO, Karn

test('writes are cut at the MSS, PSH on the last segment, limited by the peer’s window', () => {
  const h = established({}, { mss: 1000 }, 2500);
  assert.is(h.connection.write(patterned(3000)), 3000);
  assert.equal(d(h), [`. 1:1001(1000) ack 1 win 65535`, `. 1001:2001(1000) ack 1 win 65535`]);
  from(h, 1, 2001, A, 0, 2500);
  assert.equal(d(h), [`P. 2001:3001(1000) ack 1 win 65535`]);
});

test('Nagle holds a small segment while data is unacknowledged; setNoDelay sends it', () => {
  const h = established();
  h.connection.write(patterned(100));
  assert.equal(d(h), [`P. 1:101(100) ack 1 win ${win()}`]);
  h.connection.write(patterned(100));
  assert.equal(d(h), []);
  from(h, 1, 101, A);
  assert.equal(d(h), [`P. 101:201(100) ack 1 win ${win()}`]);
  h.connection.setNoDelay(true);
  h.connection.write(patterned(100));
  assert.equal(d(h), [`P. 201:301(100) ack 1 win ${win()}`]);
});

test('RTO: 300 ms after a 100 ms SRTT, doubling on each timeout, ETIMEDOUT after the retries', () => {
  const h = established({ dataRetries: 3 });
  h.connection.write(patterned(100));
  h.take();
  const t0 = h.clock.now();
  const times: number[] = [];
  for (let t = 0; t < 10_000; t += 10) {
    h.clock.advance(10);
    if (h.take().length > 0) times.push(h.clock.now() - t0);
  }
  assert.equal(times, [300, 900, 2100]);
  assert.equal(h.rec.closed, ['ETIMEDOUT']);
  assert.is(h.connection.stats.timeouts, 4);
});

test('Karn: the ACK of a retransmitted segment gives no RTT sample, the backed-off RTO stays', () => {
  const h = established();
  h.connection.write(patterned(100));
  h.take();
  h.clock.advance(300);
  assert.equal(d(h), [`P. 1:101(100) ack 1 win ${win()}`]);
  h.clock.advance(50);
  from(h, 1, 101, A); // ambiguous: the original or the retransmission
  h.connection.write(patterned(100));
  h.take();
  h.clock.advance(599);
  assert.equal(d(h), [], 'still 600 ms, not 300');
  h.clock.advance(1);
  assert.equal(d(h).length, 1);
});

test('after a timeout rewinds SND.NXT, pure ACKs still carry SND.MAX (an older number would be unacceptable: ACK storm)', () => {
  const h = established({}, { mss: 1000 });
  h.connection.write(patterned(3000));
  h.take();
  h.clock.advance(300);
  assert.equal(d(h), ['. 1:1001(1000) ack 1 win 65535'], 'only the first segment: cwnd is one after a timeout');
  from(h, 1001, 1, A, 10); // out of order: ACKed at once
  assert.equal(d(h), ['. 3001:3001(0) ack 1 win 65535']);
});

test('a valid RTT sample sets RTO = SRTT + 4·RTTVAR, floored at minRtoMs', () => {
  const h = established({ minRtoMs: 50 });
  h.connection.write(patterned(100));
  h.take();
  h.clock.advance(20);
  from(h, 1, 101, A); // sample 20: SRTT 100·7/8 + 20/8 = 90, RTTVAR 50·3/4 + 80/4 = 57.5 → RTO 320
  h.connection.write(patterned(100));
  h.take();
  h.clock.advance(319);
  assert.equal(d(h), []);
  h.clock.advance(1);
  assert.equal(d(h).length, 1);
});

test('user timeout: unacknowledged data for longer than userTimeoutMs ends the connection', () => {
  const h = established({ userTimeoutMs: 1000, dataRetries: 100 });
  h.connection.write(patterned(100));
  h.clock.advance(999);
  assert.equal(h.rec.closed, []);
  h.clock.advance(200);
  assert.equal(h.rec.closed, ['ETIMEDOUT']);
});

test('send buffer: write() takes what fits, drain follows acknowledgements', () => {
  const h = established({ sendBufferBytes: 4000 });
  assert.is(h.connection.write(patterned(5000)), 4000);
  assert.is(h.connection.sendBufferFree, 0);
  const sent = d(h);
  assert.is(sent.length, 4);
  from(h, 1, 2001, A);
  assert.ok(h.rec.events.includes('drain'));
  assert.is(h.connection.sendBufferFree, 2000);
});

// ---------------------------------------------------------------------------------------------
// Loss recovery

test('fast retransmit after 3 duplicate ACKs; NewReno retransmits on a partial ACK and leaves recovery on the full one', () => {
  const h = established({}, { mss: 1000 }); // no SACK, no window scaling: our window is 65535
  const win = () => 65535;
  h.connection.write(patterned(5000));
  assert.is(h.take().length, 5);
  from(h, 1, 1001, A);
  from(h, 1, 1001, A);
  from(h, 1, 1001, A);
  assert.equal(d(h), []);
  from(h, 1, 1001, A);
  assert.equal(d(h), [`. 1001:2001(1000) ack 1 win ${win()}`]);
  assert.is(h.connection.stats.fastRetransmits, 1);
  from(h, 1, 3001, A); // partial: 3001:4001 was lost too
  assert.equal(d(h), [`. 3001:4001(1000) ack 1 win ${win()}`]);
  from(h, 1, 5001, A);
  assert.equal(d(h), []);
  h.connection.write(patterned(1000));
  assert.equal(d(h), [`P. 5001:6001(1000) ack 1 win ${win()}`], 'new data flows after recovery');
});

test('SACK: holes named by the peer’s SACK blocks are retransmitted on the third duplicate ACK', () => {
  const h = established();
  h.connection.write(patterned(6000));
  assert.is(h.take().length, 6);
  from(h, 1, 1001, A);
  // 1001:2001 and 3001:4001 lost
  from(h, 1, 1001, A, 0, 65535, { sack: [[s(h.iss, 2001), s(h.iss, 3001)]] });
  from(h, 1, 1001, A, 0, 65535, { sack: [[s(h.iss, 4001), s(h.iss, 5001)], [s(h.iss, 2001), s(h.iss, 3001)]] });
  assert.equal(d(h), []);
  from(h, 1, 1001, A, 0, 65535, { sack: [[s(h.iss, 4001), s(h.iss, 6001)], [s(h.iss, 2001), s(h.iss, 3001)]] });
  assert.equal(d(h), [`. 1001:2001(1000) ack 1 win ${win()}`, `. 3001:4001(1000) ack 1 win ${win()}`]);
  from(h, 1, 6001, A);
  assert.is(h.connection.stats.retransmits, 2);
});

test('zero window: persist probes with backoff until the window opens, then the data flows', () => {
  const h = established();
  h.connection.write(patterned(2000));
  h.take();
  h.clock.advance(100);
  from(h, 1, 2001, A, 0, 0); // RTT sample 100: SRTT 100, RTTVAR 37.5, RTO 250
  h.connection.write(patterned(500));
  assert.equal(d(h), []);
  h.clock.advance(249);
  assert.equal(d(h), []);
  h.clock.advance(1);
  assert.equal(d(h), [`. 2000:2000(0) ack 1 win ${win()}`]);
  h.clock.advance(499);
  assert.equal(d(h), []);
  h.clock.advance(1);
  assert.equal(d(h).length, 1, 'second probe after twice the interval');
  from(h, 1, 2001, A, 0, 1000);
  assert.equal(d(h), [`P. 2001:2501(500) ack 1 win ${win()}`]);
});

test('a stale zero-window ACK behind the update that opened it: the RTO still resends the segment at SND.UNA (found by fuzzing: silence until ETIMEDOUT)', () => {
  const h = established({ dataRetries: 3 });
  h.connection.write(patterned(2000));
  h.take();
  h.clock.advance(100);
  from(h, 1, 2001, A, 0, 0); // everything acknowledged, window closed; RTO 250
  from(h, 1, 2001, A, 0, 1000); // the window update
  h.connection.write(patterned(1));
  assert.equal(d(h), [`P. 2001:2002(1) ack 1 win ${win()}`]); // lost
  from(h, 1, 2001, A, 0, 0); // the zero-window ACK again, reordered behind the update (same SEQ and ACK: taken)
  assert.equal(d(h), []);
  h.clock.advance(250);
  assert.equal(d(h), [`P. 2001:2002(1) ack 1 win ${win()}`], 'the retransmission goes out into the zero window: its ACK brings the real window');
  from(h, 1, 2002, A, 0, 1000);
  h.clock.advance(10_000);
  assert.equal(h.rec.closed, []);
  assert.is(h.connection.state, 'ESTABLISHED');
});

test('keep-alive: probes after the idle time, then every interval; unanswered probes end with ETIMEDOUT', () => {
  const h = established({ keepAliveIntervalMs: 500, keepAliveProbes: 3 });
  h.connection.setKeepAlive(true, 1000);
  h.clock.advance(999);
  assert.equal(d(h), []);
  h.clock.advance(1);
  assert.equal(d(h), [`. 0:0(0) ack 1 win ${win()}`]);
  // Answered: back to idle.
  from(h, 1, 1, A);
  h.clock.advance(999);
  assert.equal(d(h), []);
  h.clock.advance(1);
  assert.equal(d(h).length, 1);
  h.clock.advance(500);
  h.clock.advance(500);
  assert.equal(d(h).length, 2);
  h.clock.advance(500);
  assert.equal(d(h), ['R. 1:1(0) ack 1 win 0']);
  assert.equal(h.rec.closed, ['ETIMEDOUT']);
});

test('path MTU lowered: the MSS shrinks and unacknowledged data is resent in smaller segments', () => {
  const h = established();
  h.connection.write(patterned(2000));
  assert.is(h.take().length, 2);
  h.connection.pathMtuChanged(576);
  assert.equal(d(h), [`. 1:537(536) ack 1 win ${win()}`, `. 537:1073(536) ack 1 win ${win()}`, `. 1073:1609(536) ack 1 win ${win()}`, `P. 1609:2001(392) ack 1 win ${win()}`]);
  h.connection.pathMtuChanged(1500);
  h.connection.write(patterned(1000));
  from(h, 1, 2001, A);
  assert.equal(d(h), [`. 2001:2537(536) ack 1 win ${win()}`, `P. 2537:3001(464) ack 1 win ${win()}`], 'a higher MTU does not raise it back');
});

test('window scaling: the peer’s window is scaled after the handshake, never in the SYN', () => {
  const h = activeHarness();
  h.clock.advance(100);
  from(h, 0, 1, SA, 0, 100, { mss: 1000, windowScale: 4 });
  from(h, 1, 1, A, 0, 1000); // 16 000 bytes
  h.connection.setNoDelay(true);
  h.connection.write(patterned(20_000));
  assert.is(h.take().reduce((n, seg) => n + seg.payload.byteLength, 0), 10_000, 'cwnd of 10 segments first');
  from(h, 1, 10_001, A, 0, 1000);
  assert.is(h.take().reduce((n, seg) => n + seg.payload.byteLength, 0), 10_000, 'then the scaled window');
});

test.run();
