// node http-proxy (the anchors' contender; a Node peer Keyhole is measured against, never a
// Keyhole dependency): keep-alive agent, credential injected, no token check.
import http from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(`${process.env.PEERS}/`);
const httpProxy = require('http-proxy');
const port = Number(process.env.PORT);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 256 });
const proxy = httpProxy.createProxyServer({ target: process.env.UPSTREAM, agent });
proxy.on('proxyReq', (proxyReq) => proxyReq.setHeader('authorization', 'Basic dXNlcjpwYXNz'));
proxy.on('error', (_err, _req, res) => {
  if (!res.headersSent) res.writeHead(502);
  res.end();
});
http.createServer((req, res) => proxy.web(req, res)).listen(port, '127.0.0.1', () => console.log('http-proxy listening', port));
