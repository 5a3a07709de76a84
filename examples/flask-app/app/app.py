"""A labeling app in miniature, behind Keyhole: the few lines an app adds (marked KEYHOLE).

Each page load mints a short-lived token scoped to the user's project and hands it to
Keyhole (POST /v1/session); images are Keyhole URLs; logout drops the Keyhole session and
revokes the user's tokens. /whoami is the introspection alternative for apps that cannot
mint yet (README). Demo users and passwords: not how a real app keeps them.
"""
import json
import os
import time
import urllib.request
import uuid
from urllib.parse import quote

import jwt  # PyJWT
from flask import Flask, abort, redirect, render_template_string, request, session
from werkzeug.middleware.proxy_fix import ProxyFix

app = Flask(__name__)
app.secret_key = os.environ['APP_SECRET_KEY']
# Keyhole terminates TLS and sets X-Forwarded-Proto (Flask's SECURE_PROXY_SSL_HEADER).
app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_for=1, x_host=0)
app.config.update(SESSION_COOKIE_SECURE=True, SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE='Lax')

USERS = {'alice': 'project-1', 'bob': 'project-2'}
IMAGES = ['0001.png', '0002.png', '0003.png']

# KEYHOLE: the shared HS256 secret (auth.keys in keyhole.yaml) and the admin listener.
KEYHOLE_SECRET = open(os.environ['KEYHOLE_SECRET_FILE']).read().strip()
KEYHOLE_ADMIN_URL = os.environ['KEYHOLE_ADMIN_URL']
KEYHOLE_ADMIN_TOKEN = open(os.environ['KEYHOLE_ADMIN_TOKEN_FILE']).read().strip()


def keyhole_token(user: str) -> str:
    """KEYHOLE: a 15-minute token that may read the user's project and nothing else."""
    now = int(time.time())
    claims = {
        'iss': 'flask-app', 'aud': 'keyhole', 'sub': user, 'iat': now, 'exp': now + 900,
        'jti': uuid.uuid4().hex, 'scope': [f'local://images/{USERS[user]}/'],
    }
    return jwt.encode(claims, KEYHOLE_SECRET, algorithm='HS256', headers={'kid': 'flask-dev'})


def keyhole_url(uri: str) -> str:
    """KEYHOLE: a storage URI as a data URL on this origin."""
    return f'/v1/data?uri={quote(uri, safe="")}'


def keyhole_revoke(user: str) -> None:
    """KEYHOLE: refuse every token of `user` issued until now."""
    req = urllib.request.Request(
        f'{KEYHOLE_ADMIN_URL}/admin/revoke', data=json.dumps({'sub': user}).encode(), method='POST',
        headers={'authorization': f'Bearer {KEYHOLE_ADMIN_TOKEN}', 'content-type': 'application/json'},
    )
    urllib.request.urlopen(req, timeout=5).close()


PAGE = '''<!doctype html><title>Tasks</title>
<p>{{ user }} · {{ project }} · <form method="post" action="/logout" style="display:inline"><button>Log out</button></form>
{% for url in urls %}<img data-src="{{ url }}" alt="task image" width="320" height="200">{% endfor %}
<script>
  // KEYHOLE: hand the token to Keyhole once; the __Host- cookie then rides on every <img>.
  fetch('/v1/session', {method: 'POST', credentials: 'same-origin',
    headers: {'content-type': 'application/json'}, body: JSON.stringify({token: {{ token|tojson }}})})
    .then((r) => { if (r.ok) document.querySelectorAll('img[data-src]').forEach((i) => { i.src = i.dataset.src; }); });
</script>'''

LOGIN = '''<!doctype html><title>Log in</title><form method="post">
<input name="user" placeholder="alice or bob"> <input name="password" type="password" placeholder="password">
<button>Log in</button></form>'''

LOGGED_OUT = '''<!doctype html><title>Logged out</title><p>Logged out.
<script>fetch('/v1/session', {method: 'DELETE', credentials: 'same-origin'}).finally(() => { location = '/login'; });</script>'''


@app.get('/')
def tasks():
    user = session.get('user')
    if user not in USERS:
        return redirect('/login')
    project = USERS[user]
    urls = [keyhole_url(f'local://images/{project}/{name}') for name in IMAGES]
    return render_template_string(PAGE, user=user, project=project, urls=urls, token=keyhole_token(user))


@app.route('/login', methods=['GET', 'POST'])
def login():
    if request.method == 'POST':
        user = request.form.get('user', '')
        if user in USERS and request.form.get('password') == os.environ['DEMO_PASSWORD']:
            session.clear()
            session['user'] = user
            return redirect('/')
        abort(401)
    return LOGIN


@app.post('/logout')
def logout():
    user = session.pop('user', None)
    if user in USERS:
        keyhole_revoke(user)  # KEYHOLE: a copied token or cookie stops working too
    return LOGGED_OUT


@app.get('/whoami')
def whoami():
    """For auth.introspect instead of minted tokens: 200 with the user, 401 otherwise."""
    user = session.get('user')
    if user not in USERS:
        return {'error': 'not logged in'}, 401
    return {'id': user, 'project': USERS[user]}
