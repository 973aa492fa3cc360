import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { DecodeError } from '../../../src/errors.js';
import { decodeApiRequest, isApiRoute, MAX_BODY_BYTES, MAX_FIELD_CHARS, type ApiRoute } from '../../../src/cli/api-protocol.js';
import { fuzzDecoder } from '../../helpers/fuzz.js';

const routes: ApiRoute[] = ['POST /connect', 'POST /forget', 'POST /attach', 'POST /detach', 'POST /expose', 'POST /dns/add', 'POST /dns/remove', 'POST /rmpeer'];
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

function rejects(route: ApiRoute, body: string, message: RegExp): void {
  try {
    decodeApiRequest(route, bytes(body));
    assert.unreachable(`accepted ${body}`);
  } catch (error) {
    assert.instance(error, DecodeError);
    assert.match((error as Error).message, message);
  }
}

test('valid bodies decode to exactly their fields', () => {
  assert.equal(decodeApiRequest('POST /attach', bytes('{"netns":"web","name":"web","ip":"10.32.0.9/12"}')), { netns: 'web', name: 'web', ip: '10.32.0.9/12' });
  assert.equal(decodeApiRequest('POST /expose', bytes('')), {});
  assert.equal(decodeApiRequest('POST /dns/remove', bytes('{"name":"db"}')), { name: 'db' });
  assert.ok(isApiRoute('POST /rmpeer'));
  assert.not.ok(isApiRoute('POST /nothing'));
  assert.not.ok(isApiRoute('GET /connect'));
});

test('bad bodies are rejected with the field at fault', () => {
  rejects('POST /attach', '{"netns":"web"}', /field "name" is required/);
  rejects('POST /attach', '{"netns":"web","name":"x","extra":"1"}', /unknown field "extra"/);
  rejects('POST /connect', '{"address":5}', /field "address" must be a non-empty string/);
  rejects('POST /connect', '{"address":""}', /non-empty string/);
  rejects('POST /connect', '[1]', /JSON object/);
  rejects('POST /connect', '{', /not JSON/);
  rejects('POST /connect', '{"__proto__":"x"}', /unknown field "__proto__"/);
  rejects('POST /connect', `{"address":"${'a'.repeat(MAX_BODY_BYTES)}"}`, /over the API's limit of 65536 bytes/);
});

test('a field over the length limit is refused with its length and the limit', () => {
  assert.is(decodeApiRequest('POST /rmpeer', bytes(JSON.stringify({ peer: 'p'.repeat(MAX_FIELD_CHARS) }))).peer.length, MAX_FIELD_CHARS);
  rejects('POST /attach', JSON.stringify({ netns: 'x', name: 'a'.repeat(1025) }), /field "name" is 1025 characters long: at most 1024 are accepted/);
});

test('fuzzed bodies only ever give a DecodeError', () => {
  for (const route of routes) {
    fuzzDecoder((b) => decodeApiRequest(route, b), fc.json().map(bytes), 300);
    fuzzDecoder(
      (b) => decodeApiRequest(route, b),
      fc.dictionary(fc.constantFrom('address', 'netns', 'name', 'ip', 'peer', 'x'), fc.oneof(fc.string(), fc.integer())).map((o) => bytes(JSON.stringify(o))),
      300,
    );
  }
});

test.run();
