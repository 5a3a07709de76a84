// auth_request target for the hand-built nginx stack: verifies the Bearer JWT with jose
// (same key, algorithm, issuer and audience as Keyhole) on every request, no cache.
// 204 lets nginx proxy the request; 401 stops it.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { jwtVerify } from 'jose';

const secret = new TextEncoder().encode(readFileSync(process.env.SECRET_FILE, 'utf8').replace(/\r?\n$/, ''));
const options = { algorithms: ['HS256'], issuer: 'keyhole-bench', audience: 'keyhole', requiredClaims: ['exp', 'sub'] };
const port = Number(process.env.PORT);

http
  .createServer(async (req, res) => {
    const auth = req.headers.authorization;
    if (!auth || !auth.startsWith('Bearer ')) {
      res.writeHead(401, { 'content-length': 0 });
      return res.end();
    }
    try {
      await jwtVerify(auth.slice(7), secret, options);
      res.writeHead(204);
    } catch {
      res.writeHead(401, { 'content-length': 0 });
    }
    res.end();
  })
  .listen(port, '127.0.0.1', () => console.log('verifier listening', port));
