"""Label Studio's own settings, plus the one Keyhole needs that Label Studio does not read
from its environment (label_studio/core/settings/base.py has no SECURE_PROXY_SSL_HEADER).

compose.yaml mounts this file at /opt/keyhole/keyhole_settings.py and selects it with
DJANGO_SETTINGS_MODULE=keyhole_settings and PYTHONPATH=/opt/keyhole (label-studio.env).
It sits outside /label-studio on purpose: the image's entrypoint chowns everything there.
"""
from core.settings.label_studio import *  # noqa: F401,F403

# Keyhole terminates TLS and sets X-Forwarded-Proto from the real connection (one sent by a
# browser is dropped unless its peer is in app.trustedProxies), so Django may trust it.
# Without this, Django takes every request for plain HTTP: it skips the strict Referer check
# of HTTPS posts, so a login POST with a foreign Origin/Referer went through in testing.
SECURE_PROXY_SSL_HEADER = ('HTTP_X_FORWARDED_PROTO', 'https')
