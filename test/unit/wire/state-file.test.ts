import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { DecodeError } from '../../../src/errors.js';
import { hasStateFileMagic, MAX_STATE_BODY, openStateFile, sealStateFile, STATE_FILE_OVERHEAD, type StateFileKind } from '../../../src/wire/state-file.js';
import { expectDecodeError, fuzzDecoder, rawBytes } from '../../helpers/fuzz.js';

const KIND: StateFileKind = { magic: 'WTXX', format: 3, what: 'test state' };
const bodyArb = fc.uint8Array({ maxLength: 300 });

test('bodies round-trip through the envelope', () => {
  fc.assert(fc.property(bodyArb, (body) => assert.equal(openStateFile(KIND, sealStateFile(KIND, body)), body)));
});

test('the layout is magic, format, length, body, then SHA-256 of all of that', () => {
  const body = Uint8Array.from([1, 2, 3]);
  const head = rawBytes((w) => w.u8(0x57).u8(0x54).u8(0x58).u8(0x58).u8(3).u32(3).bytes(body));
  assert.equal(sealStateFile(KIND, body), Uint8Array.from([...head, ...createHash('sha256').update(head).digest()]));
  assert.is(sealStateFile(KIND, new Uint8Array(0)).length, STATE_FILE_OVERHEAD);
  assert.ok(hasStateFileMagic(KIND, sealStateFile(KIND, body)));
  assert.not.ok(hasStateFileMagic(KIND, Uint8Array.from([0x57, 0x54])));
});

test('every single-bit flip is refused', () => {
  const bytes = sealStateFile(KIND, new TextEncoder().encode('{"endpoints":[]}'));
  for (let i = 0; i < bytes.length; i++) {
    for (let bit = 0; bit < 8; bit++) {
      const copy = bytes.slice();
      copy[i] = (copy[i] as number) ^ (1 << bit);
      assert.throws(() => openStateFile(KIND, copy), (e: unknown) => e instanceof DecodeError);
    }
  }
});

test('each kind of damage has its code', () => {
  const bytes = sealStateFile(KIND, Uint8Array.from([9, 9, 9, 9]));
  expectDecodeError((b) => openStateFile(KIND, b), Buffer.from('WTXY'), 'bad-magic');
  const format = bytes.slice();
  format[4] = 4;
  expectDecodeError((b) => openStateFile(KIND, b), format, 'version-mismatch');
  const body = bytes.slice();
  body[9] = 8;
  expectDecodeError((b) => openStateFile(KIND, b), body, 'bad-value');
  expectDecodeError((b) => openStateFile(KIND, b), bytes.subarray(0, bytes.length - 1), 'short-read');
  expectDecodeError((b) => openStateFile(KIND, b), Uint8Array.from([...bytes, 0]), 'trailing-bytes');
  const huge = rawBytes((w) => w.u8(0x57).u8(0x54).u8(0x58).u8(0x58).u8(3).u32(MAX_STATE_BODY + 1));
  expectDecodeError((b) => openStateFile(KIND, b), huge, 'too-large');
});

test('fuzz: random and mutated envelopes only give DecodeErrors', () => {
  fuzzDecoder((b) => openStateFile(KIND, b), bodyArb.map((b) => sealStateFile(KIND, b)));
});

test.run();
