// Python file servers for the real WSGI and ASGI servers (gunicorn, uvicorn), written the
// way a Django or Starlette view serves a file.
// A WSGI file server as a Django/Flask view would be: Content-Length, HEAD without a body.
export const wsgiFiles = (dir: string) => `
import os
ROOT = ${JSON.stringify(dir)}
def application(environ, start_response):
    path = os.path.join(ROOT, environ['PATH_INFO'].lstrip('/'))
    if not os.path.isfile(path):
        start_response('404 Not Found', [('Content-Length', '0')])
        return [b'']
    size = os.path.getsize(path)
    start_response('200 OK', [('Content-Type', 'application/octet-stream'), ('Content-Length', str(size))])
    if environ['REQUEST_METHOD'] == 'HEAD':
        return [b'']
    return environ['wsgi.file_wrapper'](open(path, 'rb'), 65536)
`;

// An ASGI file server, streamed in 64 KiB messages as Starlette's FileResponse does.
export const asgiFiles = (dir: string) => `
import os
ROOT = ${JSON.stringify(dir)}
async def app(scope, receive, send):
    path = os.path.join(ROOT, scope['path'].lstrip('/'))
    if not os.path.isfile(path):
        await send({'type': 'http.response.start', 'status': 404, 'headers': [(b'content-length', b'0')]})
        await send({'type': 'http.response.body', 'body': b''})
        return
    size = os.path.getsize(path)
    await send({'type': 'http.response.start', 'status': 200, 'headers': [(b'content-type', b'application/octet-stream'), (b'content-length', str(size).encode())]})
    if scope['method'] == 'HEAD':
        await send({'type': 'http.response.body', 'body': b''})
        return
    with open(path, 'rb') as f:
        while True:
            chunk = f.read(65536)
            more = len(chunk) == 65536
            await send({'type': 'http.response.body', 'body': chunk, 'more_body': more})
            if not more:
                break
`;

// A CGI script for `python3 -m http.server --cgi` sending a file as its output: the server is
// HTTP/1.0 and the script names no length, so the body is framed by the closing of the
// connection (the output goes straight to the socket, as CGI servers do).
export const cgiFile = (path: string) => `#!/usr/bin/python3
import shutil, sys
sys.stdout.write("Content-Type: application/octet-stream\\r\\n\\r\\n")
sys.stdout.flush()
with open(${JSON.stringify(path)}, 'rb') as f:
    shutil.copyfileobj(f, sys.stdout.buffer, 65536)
sys.stdout.buffer.flush()
`;
