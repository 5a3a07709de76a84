// The streaming-handler base shared by the data relay and the app proxy: the failure →
// reason mapping, the abort when the client is gone, backpressure from the client's socket.
// (End to end through real servers: test/realworld/crash.test.ts, test/fault/*.)
import t from 'tap';
import { Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { StreamingHandler, upstreamFailure } from '../../src/relay/stream-handler.ts';
import { AddressRefused } from '../../src/relay/ssrf.ts';
import { errors } from '../../src/relay/undici.ts';

class Controller {
  paused = false;
  aborted: Error | undefined;
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  abort(err: Error): void {
    this.aborted = err;
  }
}

class Passing extends StreamingHandler {
  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.forward(controller, chunk);
  }
}

/** A client socket that holds `highWaterMark` bytes and drains when told. */
function slowClient(): { out: Writable; drain: () => void; got: Buffer[] } {
  const got: Buffer[] = [];
  let release: (() => void) | undefined;
  const out = new Writable({
    highWaterMark: 4,
    write(chunk: Buffer, _enc, cb) {
      got.push(chunk);
      release = cb;
    },
  });
  return { out, got, drain: () => release?.() };
}

t.test('upstreamFailure: timeouts, the SSRF guard, anything else', async (t) => {
  t.equal(upstreamFailure(new errors.ConnectTimeoutError()), 'upstream_timeout');
  t.equal(upstreamFailure(new errors.HeadersTimeoutError()), 'upstream_timeout');
  t.equal(upstreamFailure(new errors.BodyTimeoutError()), 'upstream_timeout');
  t.equal(upstreamFailure(new AddressRefused('10.0.0.1', 'private')), 'upstream_address_refused');
  t.equal(upstreamFailure(new errors.SocketError('other side closed')), 'upstream_error');
  t.equal(upstreamFailure(new Error('ECONNREFUSED')), 'upstream_error');
});

t.test('a full client socket pauses the upstream until it drains', async (t) => {
  const { out, drain, got } = slowClient();
  const h = new Passing(out);
  const c = new Controller();
  const controller = c as unknown as Dispatcher.DispatchController;
  h.onRequestStart(controller);
  h.onResponseData(controller, Buffer.from('12345678'));
  t.ok(c.paused, 'paused: the client holds more than its high-water mark');
  h.onResponseData(controller, Buffer.from('9'));
  t.equal(out.listenerCount('drain'), 1, 'one drain listener however many writes wait');
  drain();
  await new Promise((r) => setImmediate(r));
  drain();
  await new Promise((r) => setImmediate(r));
  t.notOk(c.paused, 'resumed once the client drained');
  t.equal(Buffer.concat(got).toString(), '123456789');
});

t.test('the client gone before the upstream starts, or later: the upstream is aborted', async (t) => {
  const gone = new Writable({ write: (_c, _e, cb) => cb() });
  gone.destroy();
  const c = new Controller();
  new Passing(gone).onRequestStart(c as unknown as Dispatcher.DispatchController);
  t.match(c.aborted?.message, /client closed/);

  const live = new Writable({ write: (_c, _e, cb) => cb() });
  const h = new Passing(live);
  const c2 = new Controller();
  h.onRequestStart(c2 as unknown as Dispatcher.DispatchController);
  t.equal(c2.aborted, undefined, 'a live client: nothing aborted');
  h.clientGone();
  t.match(c2.aborted?.message, /client closed/);
});
