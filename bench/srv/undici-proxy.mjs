// The minimal undici proxy (the anchors' "undici pool.stream, no auth"): forwards GET /obj/*
// to the upstream with BasicAuth injected, hop-by-hop headers dropped, backpressure and
// client aborts handled. No token check: the floor for any Node proxy built on undici.
import http from 'node:http';
import { Pool } from 'undici';

const BASIC = 'Basic dXNlcjpwYXNz';
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'proxy-authorization']);
const port = Number(process.env.PORT);
const pool = new Pool(process.env.UPSTREAM, { connections: 256, pipelining: 1, keepAliveTimeout: 120e3 });

function factory({ statusCode, headers, opaque: res }) {
  const out = {};
  for (const k in headers) if (!HOP.has(k)) out[k] = headers[k];
  res.writeHead(statusCode, out);
  return res; // undici pipes the body into res with backpressure
}

http
  .createServer((req, res) => {
    if (req.method !== 'GET' || !req.url.startsWith('/obj/')) {
      res.writeHead(404, { 'content-length': 0 });
      return res.end();
    }
    const ac = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) ac.abort();
    });
    pool.stream({ path: req.url, method: 'GET', headers: { authorization: BASIC }, opaque: res, signal: ac.signal }, factory, (err) => {
      if (err && !res.headersSent) {
        res.writeHead(502, { 'content-length': 0 });
        res.end();
      } else if (err) res.destroy(err);
    });
  })
  .listen(port, '127.0.0.1', () => console.log('undici-proxy listening', port));
