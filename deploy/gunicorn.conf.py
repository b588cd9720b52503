# gunicorn settings for production: `gunicorn -c deploy/gunicorn.conf.py config.wsgi`
import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", 2))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 60))  # a 25 MB upload on a slow phone link
graceful_timeout = 30
# Idle connections from nginx stay open longer than nginx reuses them (deploy/nginx_site.py,
# UPSTREAM_KEEPALIVE_SECONDS = 60): gunicorn's default of 2 s closes them first, and a POST that nginx
# sends on one at that moment fails (502, answered as 503). Only the proxy holds these connections.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", 75))
max_requests = 2000  # recycle workers: bounded memory over weeks
max_requests_jitter = 200
accesslog = "-"
