// @fastify/http-proxy on fastify (the anchors' contender; a Node peer on undici): GET /obj/*
// forwarded with the credential injected, no token check.
import { createRequire } from 'node:module';

const require = createRequire(`${process.env.PEERS}/`);
const Fastify = require('fastify');
const proxyModule = require('@fastify/http-proxy');
const proxy = proxyModule.default ?? proxyModule;
const port = Number(process.env.PORT);
const app = Fastify({ logger: false });
await app.register(proxy, {
  upstream: process.env.UPSTREAM,
  prefix: '/obj',
  rewritePrefix: '/obj',
  httpMethods: ['GET'],
  undici: { connections: 256, pipelining: 1, keepAliveTimeout: 120e3 },
  replyOptions: { rewriteRequestHeaders: (_req, headers) => ({ ...headers, authorization: 'Basic dXNlcjpwYXNz' }) },
});
await app.listen({ port, host: '127.0.0.1' });
console.log('fastify-proxy listening', port);
