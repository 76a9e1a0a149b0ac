// Server-sent events (the admin API's GET /api/events) read from a fetch() body, so the request can carry the
// token in an Authorization header (EventSource cannot set headers, and a token in the URL would end up in logs).
// Parsing follows the HTML "event stream" format: fields event/data/id, ':' comments, a blank line ends an event.

export function createSseParser(onEvent) {
  let buffer = '';
  let type = '';
  let id = null;
  let data = [];
  return function feed(text) {
    buffer += text;
    for (;;) {
      const nl = buffer.indexOf('\n');
      if (nl < 0) break;
      let line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') {
        if (data.length) onEvent({ type: type || 'message', id, data: data.join('\n') });
        type = '';
        data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') type = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id') id = value;
    }
  };
}

// Keeps one event stream open: onOpen() after each (re)connection (read the state then: events are not
// replayed), onEvent(name, payload) per event, onStatus('live' | 'reconnecting' | 'unauthorized').
export function openEventStream({ token, onOpen, onEvent, onStatus, retryMs = 3000 }) {
  const controller = new AbortController();
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  (async () => {
    while (!controller.signal.aborted) {
      try {
        const res = await fetch('/api/events', {
          headers: { Authorization: `Bearer ${token}`, Accept: 'text/event-stream' },
          cache: 'no-store',
          signal: controller.signal,
        });
        if (res.status === 401) {
          onStatus('unauthorized');
          return;
        }
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        onStatus('live');
        onOpen();
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        const feed = createSseParser((ev) => {
          let payload = null;
          try {
            payload = JSON.parse(ev.data);
          } catch {
            return;
          }
          onEvent(ev.type, payload, ev.id);
        });
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          feed(decoder.decode(value, { stream: true }));
        }
      } catch (e) {
        if (controller.signal.aborted) return;
      }
      onStatus('reconnecting');
      await sleep(retryMs);
    }
  })();
  return () => controller.abort();
}
