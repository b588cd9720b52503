# gunicorn settings for production: `gunicorn -c deploy/gunicorn.conf.py config.wsgi`
import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", 2))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 60))  # a 25 MB upload on a slow phone link
graceful_timeout = 30
max_requests = 2000  # recycle workers: bounded memory over weeks
max_requests_jitter = 200
accesslog = "-"
