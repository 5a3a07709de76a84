// The grid benchmark's data: N distinct, decodable PNG images of exactly SIZE bytes each
// (144×144 RGB noise from a seeded PRNG, stored deflate, padded to SIZE with a private
// ancillary chunk `khPd` that decoders skip), and one labeling page per image source.
//
//   node make-data.mjs WWW_DIR N SIZE TOKEN
//
// WWW_DIR/img/img-000.png … (made once: kept when present with the right size)
// WWW_DIR/grid/nginx.html          images at /img/img-NNN.png?token=…  (nginx ignores the token)
// WWW_DIR/grid/keyhole-local.html  images at /v1/data?uri=local%3A%2F%2Fgrid%2Fimg-NNN.png&token=…
// WWW_DIR/grid/keyhole-http.html   images at /v1/data?uri=https%3A%2F%2Fdata.grid%2Fimg%2Fimg-NNN.png&token=…
// Every page carries the same token, so the requests are the same size give or take the path.
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync, crc32 } from 'node:zlib';

const [www, nArg, sizeArg, token] = process.argv.slice(2);
const N = Number(nArg);
const SIZE = Number(sizeArg);
if (!www || !(N > 0) || !(SIZE >= 1024) || !token) {
  process.stderr.write('usage: node make-data.mjs WWW_DIR N SIZE TOKEN\n');
  process.exit(2);
}
const W = 144;
const H = 144;

function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

function png(index) {
  let s = (0x9e3779b9 ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0; // xorshift32, one seed per image
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  const tint = [(index * 53) % 256, (index * 97) % 256, (index * 193) % 256];
  const raw = Buffer.alloc(H * (1 + W * 3));
  for (let y = 0; y < H; y++) {
    const row = y * (1 + W * 3);
    raw[row] = 0; // filter: none
    for (let x = 0; x < W; x++) {
      const r = next();
      for (let c = 0; c < 3; c++) raw[row + 1 + x * 3 + c] = ((r >>> (c * 8)) & 0x7f) + (tint[c] >> 1);
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(W, 0);
  ihdr.writeUInt32BE(H, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const head = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level: 0 }))]);
  const iend = chunk('IEND', Buffer.alloc(0));
  const pad = SIZE - head.length - iend.length - 12;
  if (pad < 0) throw new Error(`a ${W}×${H} image is ${head.length + iend.length} bytes, more than ${SIZE}`);
  return Buffer.concat([head, chunk('khPd', Buffer.alloc(pad, 0x20)), iend]);
}

mkdirSync(join(www, 'img'), { recursive: true });
mkdirSync(join(www, 'grid'), { recursive: true });
const names = [];
let made = 0;
for (let i = 0; i < N; i++) {
  const name = `img-${String(i).padStart(3, '0')}.png`;
  names.push(name);
  const f = join(www, 'img', name);
  let ok = false;
  try {
    ok = statSync(f).size === SIZE && readFileSync(f).subarray(0, 4).toString('latin1') === '\x89PNG';
  } catch {
    /* made below */
  }
  if (!ok) {
    writeFileSync(f, png(i));
    made++;
  }
}

// The page times itself: performance.now() (milliseconds since navigation start) once every
// image's decode() promise has settled; then it reads the Resource Timing entries (protocol,
// status, body size, new connections) and leaves the lot in window.__grid for the driver.
const pageScript = `
(async () => {
  const imgs = Array.from(document.querySelectorAll('#grid img'));
  const settled = await Promise.allSettled(imgs.map((img) => img.decode()));
  const lastDecoded = performance.now();
  const failed = [];
  settled.forEach((s, i) => { if (s.status === 'rejected') failed.push(imgs[i].getAttribute('src').replace(/token=[^&]*/, 'token=…').slice(0, 90) + ': ' + s.reason); });
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource').filter((e) => e.initiatorType === 'img');
  const count = (f) => { const o = {}; for (const e of res) { const k = String(f(e)); o[k] = (o[k] || 0) + 1; } return o; };
  const ends = res.map((e) => e.responseEnd).sort((a, b) => a - b);
  window.__grid = {
    images: imgs.length,
    lastDecoded,
    failedCount: failed.length,
    failed: failed.slice(0, 5),
    wrongSize: imgs.filter((img) => img.naturalWidth !== ${W} || img.naturalHeight !== ${H}).length,
    nav: { protocol: nav.nextHopProtocol, status: nav.responseStatus, responseStart: nav.responseStart, responseEnd: nav.responseEnd, domContentLoaded: nav.domContentLoadedEventEnd, newConnection: nav.connectEnd > nav.connectStart },
    resources: res.length,
    protocols: count((e) => e.nextHopProtocol),
    statuses: count((e) => e.responseStatus),
    bodySizes: count((e) => e.decodedBodySize),
    newConnections: res.filter((e) => e.connectEnd > e.connectStart).length + (nav.connectEnd > nav.connectStart ? 1 : 0),
    firstImageStart: res.length ? Math.min(...res.map((e) => e.startTime)) : null,
    medianResponseEnd: ends.length ? ends[ends.length >> 1] : null,
    lastResponseEnd: ends.length ? ends[ends.length - 1] : null,
  };
})();`;

const page = (title, src) => `<!doctype html>
<html><head><meta charset="utf-8"><title>${title}</title><link rel="icon" href="data:,">
<script>performance.setResourceTimingBufferSize(${N + 100});</script>
<style>body{margin:4px;font:12px sans-serif}#grid{display:flex;flex-wrap:wrap;gap:2px}#grid img{width:44px;height:44px}</style>
</head><body><h1>Grid: ${N} images</h1>
<div id="grid">
${names.map((n) => `<img src="${src(n)}" alt="">`).join('\n')}
</div>
<script>${pageScript}</script>
</body></html>
`;
const q = (uri) => `/v1/data?uri=${encodeURIComponent(uri)}&token=${token}`;
writeFileSync(join(www, 'grid', 'nginx.html'), page('grid nginx', (n) => `/img/${n}?token=${token}`));
writeFileSync(join(www, 'grid', 'keyhole-local.html'), page('grid keyhole local', (n) => q(`local://grid/${n}`)));
writeFileSync(join(www, 'grid', 'keyhole-http.html'), page('grid keyhole http', (n) => q(`https://data.grid/img/${n}`)));
process.stdout.write(`${N} images of ${SIZE} bytes (${made} made now), 3 pages in ${www}\n`);
