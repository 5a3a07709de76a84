// HTTP/2 on the TLS listener. The TLS front (server.ts) hands a connection that negotiated
// `h2` to the Http2Server built here; everything else stays on the HTTP/1.1 server, with its
// parser, timeouts and websockets untouched. Requests arrive through Node's compatibility
// objects, adjusted so the routes see what an HTTP/1.1 request gives them:
//  - `headers` holds no pseudo-header (an app proxy would forward `:path`), and `host` is
//    `:authority` when the client sent no Host;
//  - on the response, `destroyed` says whether its stream is gone, `writableFinished` is false
//    for a stream the client reset, and `destroy()` resets with an error code (a cut answer
//    must not read as complete).
// What HTTP/2 adds is bounded here: concurrent streams, the header list, a connection that
// sends no request, a request body that never ends, and resets (Node's nghttp2 limits).
import { Http2ServerRequest, Http2ServerResponse, createServer, type Http2Server, type Http2Session, type ServerHttp2Stream } from 'node:http2';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';

/** Streams one connection may have open at once (nginx: 128; Chromium opens up to 100 or so). */
export const MAX_CONCURRENT_STREAMS = 128;

export interface Http2Limits {
  /** largest request header list, bytes (server.maxHeaderSize: the HTTP/1.1 head limit) */
  maxHeaderSize: number;
  /** a new connection must open its first stream within this (server.timeouts.headers) */
  headersMs: number;
  /** a request's body must end within this of its headers (server.timeouts.request) */
  requestMs: number;
  /** a connection with no open stream, or a stream with no traffic, is closed after this (server.timeouts.idle) */
  idleMs: number;
}

const PSEUDO = /^:/;

class Request extends Http2ServerRequest {
  constructor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, options: object, rawHeaders: string[]) {
    super(stream, headers, options, rawHeaders);
    const plain: IncomingHttpHeaders = {};
    for (const name of Object.keys(headers)) if (!PSEUDO.test(name)) plain[name] = headers[name];
    const authority = headers[':authority'];
    if (plain.host === undefined && typeof authority === 'string') plain.host = authority;
    // The compatibility layer reads method and path from its own copy, not from `headers`.
    Object.defineProperty(this, 'headers', { value: plain, enumerable: true });
  }
}

class Response extends Http2ServerResponse {
  /**
   * A cut answer (a secret in the body, a quota, an upstream failing mid-body) must read as
   * cut: Node resets a stream destroyed without an error with NO_ERROR, which a client takes
   * for a complete answer. With an error it is INTERNAL_ERROR.
   */
  override destroy(err?: Error): this {
    return super.destroy(err ?? new Error('answer cut'));
  }
}
// Node's object has no `destroyed`; the routes read it to know the client has gone.
Object.defineProperty(Response.prototype, 'destroyed', {
  get(this: Http2ServerResponse): boolean {
    return this.stream.destroyed;
  },
});
// Node's `writableFinished` turns true when the stream closes, reset by the client or not;
// the routes read it, as on HTTP/1.1, as "every byte of the answer went out": an answer cut
// short is audited as aborted, its upstream request aborted, its quota charged as such.
const finished = Object.getOwnPropertyDescriptor(Http2ServerResponse.prototype, 'writableFinished')!.get!;
Object.defineProperty(Response.prototype, 'writableFinished', {
  get(this: Http2ServerResponse): boolean {
    return this.writableEnded && (finished.call(this) as boolean) && !this.stream.aborted && (this.stream.rstCode ?? 0) === 0;
  },
});

/** A field name as HTTP/1.1 can carry it (RFC 9110 token), lower case as HTTP/2 requires. */
const FIELD_NAME = /^[-!#$%&'*+.^_`|~0-9a-z]+$/;
/** A value HTTP/1.1 cannot carry, or one RFC 9113 §8.2.1 calls malformed (edge whitespace). */
const BAD_VALUE = /[\0\r\n]|^[ \t]|[ \t]$/;

/**
 * The head checks of server.ts for an HTTP/2 request. Node's HTTP/2 layer refuses malformed
 * pseudo-headers and connection-specific fields, but hands over names with spaces and values
 * with CR, LF or NUL, which an HTTP/1.1 hop (the app, a log line) would split into two
 * fields: refused here, as is a `:authority` and a Host that name different hosts (RFC 9113
 * §8.3.1), or neither.
 */
export function badHttp2Head(raw: readonly string[]): boolean {
  let authority: string | undefined;
  let host: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    if (name.charCodeAt(0) === 58 /* ':' */) {
      if (name === ':authority') authority = value.toLowerCase();
      continue;
    }
    if (!FIELD_NAME.test(name) || BAD_VALUE.test(value)) return true;
    if (name === 'host') {
      if (host !== undefined) return true;
      host = value.toLowerCase();
    }
  }
  if (authority === undefined && host === undefined) return true;
  return authority !== undefined && host !== undefined && authority !== host;
}

export class Http2Listener {
  readonly server: Http2Server;
  private readonly sessions = new Set<Http2Session>();
  private limits: Http2Limits;
  private readonly logger: () => Logger;

  constructor(limits: Http2Limits, logger: () => Logger, handler: (req: IncomingMessage, res: ServerResponse) => void) {
    this.limits = limits;
    this.logger = logger;
    this.server = createServer(
      {
        settings: { maxConcurrentStreams: MAX_CONCURRENT_STREAMS, maxHeaderListSize: limits.maxHeaderSize, enableConnectProtocol: false },
        maxHeaderListPairs: 256,
        Http2ServerRequest: Request,
        Http2ServerResponse: Response as typeof Http2ServerResponse,
      },
      // The compatibility objects, adjusted above, are what the routes read of a request.
      (req, res) => handler(req as unknown as IncomingMessage, res as unknown as ServerResponse),
    );
    this.server.on('session', (session) => this.track(session));
    this.server.on('stream', (stream) => this.bound(stream));
    this.server.on('sessionError', (err) => this.logger().debug({ err: err.message }, 'http2 connection failed'));
  }

  /** New connections take these; open ones keep what they were given. */
  update(limits: Http2Limits): void {
    this.limits = limits;
    this.server.updateSettings({ maxHeaderListSize: limits.maxHeaderSize });
  }

  /** A connection (already TLS, ALPN `h2`) from the front. */
  accept(socket: import('node:net').Socket): void {
    this.server.emit('connection', socket);
  }

  private track(session: Http2Session): void {
    this.sessions.add(session);
    let open = 0;
    // No stream within the headers timeout (at first), or none for the idle timeout: closed.
    let timer: NodeJS.Timeout | undefined;
    const arm = (ms: number) => {
      clearTimeout(timer);
      timer = setTimeout(() => session.close(), ms);
      timer.unref();
    };
    arm(this.limits.headersMs);
    session.on('stream', (stream: ServerHttp2Stream) => {
      open++;
      clearTimeout(timer);
      stream.once('close', () => {
        if (--open === 0 && !session.closed) arm(this.limits.idleMs);
      });
    });
    session.once('close', () => {
      clearTimeout(timer);
      this.sessions.delete(session);
    });
  }

  /** Per stream: the request must end within the request timeout; no traffic for idle: reset. */
  private bound(stream: ServerHttp2Stream): void {
    stream.setTimeout(this.limits.idleMs, () => stream.close(0x8 /* CANCEL */));
    if (stream.endAfterHeaders) return;
    const timer = setTimeout(() => {
      if (!stream.destroyed && !stream.headersSent) stream.respond({ ':status': 408, 'content-length': 0, 'cache-control': 'no-store' }, { endStream: true });
      stream.close(0x8);
    }, this.limits.requestMs);
    timer.unref();
    const done = () => clearTimeout(timer);
    stream.once('end', done);
    stream.once('close', done);
  }

  get connections(): number {
    return this.sessions.size;
  }

  /** Drain: every connection is told (GOAWAY) to open no new stream; open streams finish. */
  closeGracefully(): void {
    for (const s of this.sessions) if (!s.closed) s.close();
  }

  /** The drain time is over: every connection is cut. */
  destroyAll(): void {
    for (const s of this.sessions) s.destroy();
  }
}
