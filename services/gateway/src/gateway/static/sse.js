// Server-sent events read with fetch: EventSource cannot send an Authorization header.

/**
 * Parse the event stream of `response` and call `onEvent({event, data, id})` for each event
 * (comments and retry fields are skipped). Resolves when the stream ends.
 */
export async function readEvents(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { event: "message", data: [], id: null };
  const line = (text) => {
    if (text === "") {
      if (event.data.length) onEvent({ event: event.event, data: event.data.join("\n"), id: event.id });
      event = { event: "message", data: [], id: null };
      return;
    }
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event.event = value;
    else if (field === "data") event.data.push(value);
    else if (field === "id" && !value.includes("\0")) event.id = value;
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    // Lines end in \r\n, \n or \r. A \r at the very end may be half of a \r\n: keep it.
    let start = 0;
    for (let k = 0; k < buffer.length; k++) {
      const c = buffer[k];
      if (c !== "\n" && c !== "\r") continue;
      if (c === "\r" && k + 1 === buffer.length) break;
      line(buffer.slice(start, k));
      if (c === "\r" && buffer[k + 1] === "\n") k++;
      start = k + 1;
    }
    buffer = buffer.slice(start);
  }
}

/** A stream that could not be read to its end: the caller may resume it. */
export class StreamInterrupted extends Error {}

/**
 * Follow a reply's stream to its `done` event. `open(lastEventId)` makes the request (the
 * caller adds the token); `onText(text)` gets the reply's text so far after every change.
 * A dropped connection is resumed with Last-Event-ID, a few times. Resolves with the `done`
 * data `{status, reply}`; rejects with the AbortError when `signal` aborts.
 */
export async function followReply(open, onText, signal, { attempts = 5 } = {}) {
  let text = "";
  let lastId = null;
  let failures = 0;
  for (;;) {
    let finished = null;
    try {
      const response = await open(lastId, signal);
      await readEvents(response, ({ event, data, id }) => {
        if (finished) return;
        const payload = data ? JSON.parse(data) : {};
        if (event === "token") {
          // Live tokens carry an id and extend the text; a stored reply arrives as one
          // token without an id that holds the whole text.
          text = id ? text + (payload.text ?? "") : payload.text ?? "";
          onText(text);
        } else if (event === "reset") {
          text = "";
          onText(text);
        } else if (event === "done") {
          finished = payload;
        }
        if (id) lastId = id;
      });
    } catch (error) {
      if (signal?.aborted || error.name === "AbortError") throw error;
      if (!(error instanceof TypeError || error instanceof StreamInterrupted)) throw error;
    }
    if (finished) return finished;
    if (signal?.aborted) throw new DOMException("Aborted", "AbortError");
    if (++failures >= attempts) throw new StreamInterrupted("The reply stream keeps dropping.");
    await new Promise((resolve) => setTimeout(resolve, 300 * 2 ** failures));
  }
}
