// The floor for a Node proxy on undici: Node's http server and undici's dispatch API, the
// credential injected, the upstream's status, type and length passed on, backpressure and
// client aborts handled — and nothing else: no token, no scope, no audit line, no metrics,
// no header allowlist. Keyhole is built the same way (src/relay/relay.ts); the distance
// between the two is what Keyhole's security costs per request.
import http from 'node:http';
import { Pool } from 'undici';

const BASIC = 'Basic dXNlcjpwYXNz';
const port = Number(process.env.PORT);
const pool = new Pool(process.env.UPSTREAM, { connections: 256, pipelining: 1, keepAliveTimeout: 120e3 });
const upstreamHeaders = { authorization: BASIC };

class Relay {
  constructor(res) {
    this.res = res;
    this.controller = null;
    res.once('close', () => {
      if (!res.writableFinished) this.controller?.abort(new Error('client gone'));
    });
  }
  onRequestStart(controller) {
    this.controller = controller;
  }
  onResponseStart(controller, statusCode, headers) {
    const out = ['content-type', headers['content-type'] ?? 'application/octet-stream'];
    if (headers['content-length'] !== undefined) out.push('content-length', headers['content-length']);
    this.res.writeHead(statusCode, out);
  }
  onResponseData(controller, chunk) {
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', () => controller.resume());
    }
  }
  onResponseEnd() {
    this.res.end();
  }
  onResponseError(controller, err) {
    if (!this.res.headersSent) {
      this.res.writeHead(502, { 'content-length': 0 });
      this.res.end();
    } else this.res.destroy(err);
  }
}

http
  .createServer((req, res) => {
    if (req.method !== 'GET' || !req.url.startsWith('/obj/')) {
      res.writeHead(404, { 'content-length': 0 });
      return res.end();
    }
    pool.dispatch({ path: req.url, method: 'GET', headers: upstreamHeaders, blocking: false }, new Relay(res));
  })
  .listen(port, '127.0.0.1', () => console.log('undici-dispatch listening', port));
