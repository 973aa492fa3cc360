// LinkProbe on its own: heartbeats, the fragmentation test, the PMTU search and the heartbeat timeout, driven by a
// FakeClock and a host that records what would be sent and answers as a path that drops payloads over a size.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FakeClock } from '../../../src/testing/fake-clock.js';
import { DEFAULT_SLEEVE_TIMINGS, LinkProbe, SleeveAck } from '../../../src/ethernet/link-probe.js';
import { MAX_UDP_PAYLOAD, SleeveControl } from '../../../src/wire/sleeve.js';

/** A probe whose control entries cross a path carrying payloads up to `pathPayload` (fragments: `fragments`). */
function probeOver(options: { pathPayload: number; fragments: boolean; noFragmentation?: boolean }) {
  const clock = new FakeClock();
  const sent: string[] = [];
  const established: boolean[] = [];
  let probe: LinkProbe | undefined = undefined;
  const id = 42n;
  probe = new LinkProbe(id, {
    clock,
    timings: DEFAULT_SLEEVE_TIMINGS,
    noFragmentation: options.noFragmentation === true,
    hasAddress: () => true,
    onHeartbeat: () => undefined,
    setEstablished: (e) => established.push(e),
    changed: () => undefined,
    sendControl: (kind, _min, payloadSize, fill) => {
      const entry = new Uint8Array(9);
      entry[0] = kind;
      fill?.(entry);
      sent.push(`${kind}:${payloadSize}`);
      // The far end answers over TCP what crossed, after a turn.
      const crosses = payloadSize <= options.pathPayload || (kind === SleeveControl.FragTest && options.fragments);
      if (!crosses) return;
      clock.setTimer(1, () => {
        if (kind === SleeveControl.Heartbeat) probe?.onAck(SleeveAck.Heartbeat, entry.slice(1, 9));
        else if (kind === SleeveControl.FragTest) probe?.onAck(SleeveAck.FragTest, new Uint8Array(0));
        else probe?.onAck(SleeveAck.MtuProbe, Uint8Array.of(payloadSize >>> 8, payloadSize & 0xff));
      });
    },
  });
  return { clock, sent, established, probe };
}

test('fragments cross: heartbeat, fragmentation test, then fragmenting with the full UDP payload', () => {
  const { clock, probe, established } = probeOver({ pathPayload: 1472, fragments: true });
  probe.heartbeat();
  clock.advance(10);
  assert.is(probe.mode, 'fragmenting');
  assert.is(probe.maxPayload, MAX_UDP_PAYLOAD);
  assert.equal(established, [true]);
});

test('fragments dropped: the search finds the path payload exactly; noFragmentation searches at once', () => {
  for (const noFragmentation of [false, true]) {
    const { clock, probe, sent } = probeOver({ pathPayload: 1400, fragments: false, noFragmentation });
    probe.heartbeat();
    clock.advance(5_000);
    assert.is(probe.mode, 'pmtu');
    assert.is(probe.maxPayload, 1400);
    assert.is(probe.established, true);
    assert.is(sent.some((s) => s.startsWith(`${SleeveControl.FragTest}:`)), !noFragmentation, 'the fragmentation test only when allowed');
  }
});

test('a link silent past the heartbeat timeout drops to connecting and stops carrying data', () => {
  const { clock, probe, established } = probeOver({ pathPayload: 1472, fragments: true });
  probe.heartbeat();
  clock.advance(10);
  assert.is(probe.established, true);
  // The neighbour's heartbeats stop arriving (nobody calls heard()); ours are still acknowledged, so the
  // link comes back through the fragmentation test once it has dropped.
  clock.advance(DEFAULT_SLEEVE_TIMINGS.heartbeatTimeoutMs + DEFAULT_SLEEVE_TIMINGS.slowHeartbeatMs);
  assert.equal(established.slice(0, 2), [true, false]);
  probe.heard();
  probe.stop();
  const before = clock.pending;
  clock.advance(60_000);
  assert.ok(clock.pending <= before, 'no timer left running after stop');
});

test('acknowledgements for another connection or size are ignored', () => {
  const { probe } = probeOver({ pathPayload: 0, fragments: false });
  probe.onAck(SleeveAck.Heartbeat, new Uint8Array(8)); // connection id 0, not 42
  assert.is(probe.mode, 'connecting');
  probe.onAck(SleeveAck.MtuProbe, Uint8Array.of(5, 0));
  probe.onAck(SleeveAck.FragTest, new Uint8Array(0));
  assert.is(probe.mode, 'connecting');
  probe.stop();
});

test.run();
