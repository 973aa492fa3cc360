import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isUdpSuperFrame, segmentSuperFrame, superFrameVirtioHeader, tapTakesWhole } from '../../../src/wire/super-frame.js';
import { segmentTcpSuperFrame, tcpSuperFrameVirtioHeader } from '../../../src/wire/tso.js';
import { segmentUdpSuperFrame, udpSegmentCount, udpSuperFrameVirtioHeader, UDP_MAX_SEGMENTS } from '../../../src/wire/uso.js';
import { decodeVirtioHeader, VIRTIO_GSO_TCPV4, VIRTIO_GSO_TCPV6, VIRTIO_GSO_UDP_L4 } from '../../../src/wire/virtio.js';
import { expectDecodeError } from '../../helpers/fuzz.js';
import { superFrame, udpSuperFrame } from '../../helpers/super-frame.js';

const tcp = (ipv6: boolean, payload = 5000): Uint8Array =>
  superFrame({ ipv6, payload: Uint8Array.from({ length: payload }, (_, i) => i & 0xff), flags: 0x18, sequence: 7, ipId: 3, tcpOptions: 12 });
const udp = (ipv6: boolean, payload = 5000): Uint8Array =>
  udpSuperFrame({ ipv6, payload: Uint8Array.from({ length: payload }, (_, i) => (i * 3) & 0xff), ipId: 3, ipOptions: 0 });

test('the IP protocol tells a UDP super-frame from a TCP one, IPv4 and IPv6', () => {
  for (const ipv6 of [false, true]) {
    assert.ok(isUdpSuperFrame(udp(ipv6)), `UDP ${ipv6 ? 'IPv6' : 'IPv4'}`);
    assert.not.ok(isUdpSuperFrame(tcp(ipv6)), `TCP ${ipv6 ? 'IPv6' : 'IPv4'}`);
  }
  const vlan = udp(false);
  vlan.set([0x81, 0x00], 12);
  assert.not.ok(isUdpSuperFrame(vlan), 'a tagged frame is not taken for UDP');
  assert.not.ok(isUdpSuperFrame(udp(false).subarray(0, 23)), 'too short to say');
  assert.not.ok(isUdpSuperFrame(new Uint8Array(0)));
});

test('segmentSuperFrame and superFrameVirtioHeader dispatch on the protocol', () => {
  for (const ipv6 of [false, true]) {
    const t = tcp(ipv6);
    const u = udp(ipv6);
    assert.equal(segmentSuperFrame(t, 1200), segmentTcpSuperFrame(t, 1200));
    assert.equal(segmentSuperFrame(u, 1200), segmentUdpSuperFrame(u, 1200));
    const [got, want] = [new Uint8Array(10), new Uint8Array(10)];
    superFrameVirtioHeader(t, 1200, got, 0);
    tcpSuperFrameVirtioHeader(t, 1200, want, 0);
    assert.equal(got, want);
    assert.is(decodeVirtioHeader(got).gsoType, ipv6 ? VIRTIO_GSO_TCPV6 : VIRTIO_GSO_TCPV4);
    superFrameVirtioHeader(u, 1200, got, 0);
    udpSuperFrameVirtioHeader(u, 1200, want, 0);
    assert.equal(got, want);
    assert.is(decodeVirtioHeader(got).gsoType, VIRTIO_GSO_UDP_L4);
  }
  // Neither kind: the TCP codec refuses it.
  const icmp = tcp(false);
  icmp[14 + 9] = 1;
  expectDecodeError((f) => segmentSuperFrame(f, 1200), icmp, 'bad-value');
  expectDecodeError((f) => superFrameVirtioHeader(f, 1200, new Uint8Array(10), 0), icmp, 'bad-value');
});

test('a TAP takes TCP super-frames whole, UDP ones only with USO and at most 128 datagrams', () => {
  assert.is(UDP_MAX_SEGMENTS, 128);
  assert.ok(tapTakesWhole(tcp(false, 60_000), 64, false), 'TCP: any count (the kernel has no such limit)');
  assert.ok(tapTakesWhole(udp(true), 1200, true));
  assert.not.ok(tapTakesWhole(udp(true), 1200, false), 'no USO');
  assert.is(udpSegmentCount(udp(false, 128 * 100), 100), 128);
  assert.ok(tapTakesWhole(udp(false, 128 * 100), 100, true), '128 datagrams');
  assert.not.ok(tapTakesWhole(udp(false, 128 * 100 + 1), 100, true), '129 datagrams');
  const bad = udp(false);
  bad[14 + 2] = 0; // IPv4 total length disagrees
  assert.not.ok(tapTakesWhole(bad, 1200, true), 'a malformed one is not written whole');
  assert.not.ok(tapTakesWhole(udp(false), 10, true), 'nor one with an unusable segment size');
});

test.run();
