// When to try again after a lost connection: exponential backoff with jitter, bounded in time.
// Pure, time passed in (milliseconds on any clock), so the schedule is tested as a table
// (tests/e2e/test_reconnect_schedule.py) and the page only sleeps for what it returns.

/**
 * The default schedule (docs/protocol.md, Resuming a session): the first retry within 0.5 s,
 * each wait twice the last up to 8 s. The jitter spreads a ward's browsers, all cut off by the
 * same access point, over the interval rather than bringing them back in one burst.
 */
export const RETRY = { firstMs: 500, factor: 2, maxMs: 8000 };

/**
 * The wait before retry number `attempt` (1 for the first): between half and all of
 * `firstMs * factor^(attempt - 1)`, capped at `maxMs`; `random` is a number in [0, 1).
 */
export function backoffDelay(attempt, random, schedule = RETRY) {
  const exponent = Math.max(0, Math.min(attempt - 1, 30)); // 2^30 * 0.5 s is past any cap
  const ceiling = Math.min(schedule.maxMs, schedule.firstMs * schedule.factor ** exponent);
  const draw = Math.min(Math.max(random, 0), 1);
  return ceiling / 2 + (ceiling / 2) * draw;
}

/**
 * The wait before retry `attempt`, or null when it would begin after `deadline` (when the
 * server stops waiting: the connection was lost at some time, plus its grace period). The last
 * wait is shortened to end at the deadline, so one try is always made just before it.
 */
export function nextRetry({ attempt, now, deadline, random, schedule = RETRY }) {
  if (now >= deadline) {
    return null;
  }
  return Math.min(backoffDelay(attempt, random, schedule), deadline - now);
}
