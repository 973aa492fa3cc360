import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TokenBucket } from '../../src/token-bucket.js';
import { FakeClock } from '../../src/testing/fake-clock.js';

test('a burst of capacity, then one token per interval, fractional intervals included', () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket(clock, 3, 0.25); // 4000 per second
  assert.equal([bucket.tryTake(), bucket.tryTake(), bucket.tryTake(), bucket.tryTake()], [true, true, true, false]);
  clock.advance(0.5);
  assert.equal([bucket.tryTake(), bucket.tryTake(), bucket.tryTake()], [true, true, false]);
  clock.advance(100);
  let taken = 0;
  while (bucket.tryTake()) taken++;
  assert.is(taken, 3, 'an idle bucket holds no more than its capacity');
});

test.run();
