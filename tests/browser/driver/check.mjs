// Assertions on what a page's client received, and waiting on conditions (never fixed sleeps).

export class CheckError extends Error {}

/** Throws a `CheckError` with `message` (and `details`, pretty-printed) unless `ok`. */
export function check(ok, message, details) {
  if (ok) return;
  const more = details === undefined ? '' : `\n${JSON.stringify(details, null, 2)}`;
  throw new CheckError(`${message}${more}`);
}

/** Polls `probe()` every 50 ms until `done(value)` holds; returns that value. On timeout throws
 *  with `what` and the last value (what the page had received so far). */
export async function until(what, probe, done, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await probe();
    if (done(last)) return last;
    if (Date.now() >= deadline) {
      throw new CheckError(`timed out after ${timeoutMs} ms waiting for ${what}; last seen:\n${JSON.stringify(last, null, 2)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The messages of `channel` in an event record. */
export function messagesOf(events, channel) {
  return events.filter((e) => e.kind === 'message' && e.channel === channel);
}

/** Events of `kind` (and of `channel`, when given). */
export function eventsOf(events, kind, channel) {
  return events.filter((e) => e.kind === kind && (channel === undefined || e.channel === channel));
}

/** The received messages are exactly `expected` payloads, each once, in this order, numbered
 *  without holes. */
export function checkExactly(messages, expected, who) {
  const payloads = messages.map((m) => m.payload);
  check(
    JSON.stringify(payloads) === JSON.stringify(expected),
    `${who}: expected exactly ${expected.length} messages in order, got ${payloads.length}`,
    { expected, got: payloads },
  );
  checkContiguous(messages, who);
}

/** Sequence numbers go up by one from message to message (no duplicate, no hole). */
export function checkContiguous(messages, who) {
  for (let i = 1; i < messages.length; i += 1) {
    check(
      messages[i].seq === messages[i - 1].seq + 1,
      `${who}: seq ${messages[i - 1].seq} is followed by ${messages[i].seq}`,
      messages.map((m) => [m.seq, m.payload]),
    );
  }
}

/** Each payload of `sent` appears once, and in `sent`'s order, among `messages`. */
export function checkSubsequence(messages, sent, who) {
  const payloads = messages.map((m) => m.payload);
  for (const p of sent) {
    const n = payloads.filter((x) => x === p).length;
    check(n === 1, `${who}: ${JSON.stringify(p)} received ${n} times, expected once`, payloads);
  }
  const positions = sent.map((p) => payloads.indexOf(p));
  for (let i = 1; i < positions.length; i += 1) {
    check(
      positions[i] > positions[i - 1],
      `${who}: ${JSON.stringify(sent[i])} arrived before ${JSON.stringify(sent[i - 1])}, which was sent first`,
      payloads,
    );
  }
}

/** A compact line of an event record, for notes. */
export function summarize(events) {
  return events
    .map((e) => {
      switch (e.kind) {
        case 'message': return `msg#${e.seq}`;
        case 'connected': return e.resumed ? 'connected(resumed)' : 'connected(new)';
        case 'gap': return `GAP(${e.from}..=${e.to})`;
        case 'reset': return `RESET(seen ${e.seen})`;
        case 'subscribed': return `subscribed@${e.seq}`;
        case 'publishAcked': return `acked@${e.seq}`;
        default: return e.kind;
      }
    })
    .join(' ');
}
