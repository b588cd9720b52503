"""Crowdlens laid out as docs/deploy.md lays it out across hosts, on one machine, as separate processes.

Used by the deployment test (tests/deploy/test_cluster.py) and bench/nginx_upload.py:

    with LocalCluster(Path(tmp), web_hosts=2, services="own") as cluster:  # its own PostgreSQL and Redis
        cluster.start_web()                                  # migrate, collectstatic, gunicorn per host, nginx
        requests.get(cluster.url("/healthz"), verify=cluster.ca_file)
        cluster.start_scheduler(); cluster.start_trainworker()

- PostgreSQL and Redis are shared by all. ``services="own"`` (the test) starts
  both as child processes on free ports: a throw-away PostgreSQL cluster
  (initdb into a temporary folder, removed at close; run as the ``postgres``
  user when we are root, since PostgreSQL refuses to run as root) and a
  redis-server that keeps nothing on disk. ``services="machine"`` (the default,
  bench/nginx_upload.py) uses the servers already running on the machine:
  ``pg_url`` (a fresh database created and dropped here) and ``redis_url``
  (one database number, emptied at start). ``own_services_missing()`` says
  what "own" lacks (deploy/ensure-test-tools.sh installs it).
  With "own", ``stop_postgres``/``start_postgres`` and ``stop_redis``/``start_redis`` take a part away and
  bring it back under the running site (tests/deploy/test_failing_parts.py).
- S3: moto's server mode as its own process; a fresh bucket.
- Each web "host" is a gunicorn (deploy/gunicorn.conf.py) on its own port with
  its own CROWDLENS_VAR_DIR; nginx runs the site rendered by
  deploy/nginx_site.py (TLS with a throw-away certificate) in front of them,
  as a child process (``daemon off``) with every path in the cluster's folder.
- The scheduler and each training worker run with their own empty folder as
  working directory and var dir: nothing on disk is shared between "hosts".

Every process gets the same environment (one /etc/crowdlens.env in
production) plus its per-host bits; logs go to ``<root>/<name>.log``.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
S3_KEY, S3_SECRET = "cluster-access-key", "cluster-secret-key"
# Train in seconds (tests/training/conftest.py's tiny_training, as environment variables).
TINY_TRAINING = {
    "PHOTO_TRAINING_SHORT_SIDE": "48", "TRAINING_INPUT_SIZE": "32", "TRAINING_BASE_WEIGHTS": "none",
    "TRAINING_FINE_TUNE_MIN_PER_CLASS": "1", "TRAINING_FINE_TUNE_LAYERS": "2", "TRAINING_MIXUP_ALPHA": "0",
    "TRAINING_EPOCHS_HEAD": "5", "TRAINING_EPOCHS_FINE_TUNE": "8", "TRAINING_LEARNING_RATE_HEAD": "0.02",
    "TRAINING_INT8_MAX_DROP": "100", "TRAINING_AUGMENT": "false", "TRAINING_AUGMENT_VIEWS": "0",
    "TRAINING_BATCH_SIZE": "16", "TRAINING_EARLY_STOPPING_PATIENCE": "12", "TRAINING_INT8_CALIBRATION_SAMPLES": "32",
    "TRAINING_INT8_CALIBRATION_DRAWS": "1",
    "TRAINING_MIN_PHOTOS_PER_LABEL": "5", "TRAINING_VARIANTS": "float32,int8", "TRAINING_EMBEDDINGS": "false",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, *, timeout: float, what: str, interval: float = 0.3, process: subprocess.Popen | None = None):
    """Call ``check`` until it returns something true; with ``process``, give up as soon as that process is gone."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before it was ready (last error: {last!r})")
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s (last error: {last!r})")


def postgres_bin_dir() -> Path | None:
    """The folder of the PostgreSQL server programs (initdb, postgres): initdb's on PATH, else the newest
    /usr/lib/postgresql/<version>/bin (Debian keeps them off PATH)."""
    initdb = shutil.which("initdb")
    if initdb and (Path(initdb).resolve().parent / "postgres").exists():
        return Path(initdb).resolve().parent
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb") if (p.parent / "postgres").exists()]
    version = lambda path: [int(n) for n in re.findall(r"\d+", path.parent.name)]  # noqa: E731
    return max(found, key=version) if found else None


def redis_server() -> str | None:
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.access(p, os.X_OK)), None)


def own_services_missing() -> list[str]:
    """What ``services="own"`` needs and this machine lacks (empty when nothing)."""
    missing = []
    if postgres_bin_dir() is None:
        missing.append("the PostgreSQL server (initdb, postgres)")
    elif os.geteuid() == 0:
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            missing.append("the postgres user (PostgreSQL refuses to run as root)")
    if redis_server() is None:
        missing.append("redis-server")
    return missing


class LocalCluster:
    def __init__(self, root: Path, *, web_hosts: int = 2, services: str = "machine",
                 pg_url: str = "postgres://postgres@127.0.0.1:5432", redis_url: str = "redis://127.0.0.1:6379/13",
                 env: dict[str, str] | None = None, gunicorn_workers: int = 2):
        if services not in ("own", "machine"):
            raise ValueError(f"services must be 'own' or 'machine', not {services!r}")
        self.root = Path(root)
        self.services = services
        self.db_name = f"crowdlens_cluster_{secrets.token_hex(4)}"
        if services == "own":  # our own servers, on ports of their own (started in __enter__)
            pg_url = f"postgres://postgres@127.0.0.1:{free_port()}"
            redis_url = f"redis://127.0.0.1:{free_port()}/0"
        self.pg_url = pg_url.rstrip("/")
        self.redis_url = redis_url
        self.pg_data: Path | None = None  # own PostgreSQL's temporary folder
        self.startup_seconds: dict[str, float] = {}  # own services: how long each took to answer
        self.web_ports = [free_port() for _ in range(web_hosts)]
        self.http_port, self.https_port = free_port(), free_port()
        self.gunicorn_workers = gunicorn_workers
        self.extra_env = dict(env or {})
        self.processes: dict[str, subprocess.Popen] = {}
        self.bucket = "crowdlens-cluster"
        self.s3_endpoint = ""
        self.ca_file = self.root / "tls" / "cert.pem"
        self.static_root = self.root / "static"

    # --- the shared environment ------------------------------------------------
    def env(self, **per_host: str) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER")}
        site = f"https://localhost:{self.https_port}"
        return {
            **keep,
            "DJANGO_SETTINGS_MODULE": "config.settings", "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
            "DEBUG": "false", "SECRET_KEY": self.secret_key,
            "ALLOWED_HOSTS": "localhost,127.0.0.1", "SITE_URL": site, "CSRF_TRUSTED_ORIGINS": site,
            "BEHIND_TLS_PROXY": "true", "TRUSTED_PROXY_COUNT": "1", "TIME_ZONE": "UTC",
            "DATABASE_URL": f"{self.pg_url}/{self.db_name}", "REDIS_URL": self.redis_url,
            "S3_BUCKET": self.bucket, "S3_ENDPOINT_URL": self.s3_endpoint, "S3_REGION": "us-east-1",
            "S3_ACCESS_KEY_ID": S3_KEY, "S3_SECRET_ACCESS_KEY": S3_SECRET, "STATIC_ROOT": str(self.static_root),
            "TRAINING_WORKER": "remote", "TRAINING_WORKER_POLL_SECONDS": "2", "PROCESS_HEARTBEAT_SECONDS": "2",
            **TINY_TRAINING, **self.extra_env, **per_host,
        }

    def url(self, path: str) -> str:
        return f"https://localhost:{self.https_port}{path}"

    # --- lifecycle -------------------------------------------------------------------
    def __enter__(self) -> LocalCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        self.secret_key = secrets.token_urlsafe(50)
        try:
            if self.services == "own":
                self._postgres_start()
                self._redis_start()
            self._database_create()
            self._redis_empty()
            self._s3_start()
            self._certificate()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for name in reversed(list(self.processes)):
            # PostgreSQL's SIGTERM waits for every client to leave; SIGINT is its fast shutdown.
            self.stop(name, signal.SIGINT if name == "postgres" else signal.SIGTERM)
        if self.services == "own":
            self._db_created = False  # went with the server
            if self.pg_data is not None:
                shutil.rmtree(self.pg_data, ignore_errors=True)
                self.pg_data = None
        self._database_drop()

    def spawn(self, name: str, argv: list[str], *, cwd: Path, env: dict[str, str], **popen) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "ab")
        # Its own session: "killing the host" kills the whole process group (gunicorn's workers too).
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   **popen)
        log.close()
        self.processes[name] = process
        return process

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        process = self.processes.get(name)
        if process is None or process.poll() is not None:
            return process.returncode if process else None
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            return process.wait(timeout=10)

    def kill_host(self, name: str) -> None:
        """The host dies: SIGKILL to every process of it at once, no chance to finish anything."""
        self.stop(name, signal.SIGKILL)

    def log(self, name: str, tail: int = 4000) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"----- {name} -----\n{self.log(name)}" for name in self.processes)

    # --- shared services ---------------------------------------------------------------
    def _postgres_start(self) -> None:
        """A throw-away PostgreSQL cluster of our own: initdb into a temporary folder, then the server as a child.

        The folder comes from tempfile (not from the cluster's root: pytest's /tmp/pytest-of-root is mode 700, out
        of the postgres user's reach). Neither initdb nor the server runs as root, so as root both run as postgres."""
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL's server programs are not installed (deploy/ensure-test-tools.sh)")
        started = time.monotonic()
        self.pg_data = Path(tempfile.mkdtemp(prefix="crowdlens-cluster-pg-"))
        as_user: dict = {}
        if os.geteuid() == 0:
            import pwd

            postgres = pwd.getpwnam("postgres")
            os.chown(self.pg_data, postgres.pw_uid, postgres.pw_gid)
            as_user = {"user": postgres.pw_uid, "group": postgres.pw_gid, "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": str(self.pg_data)}
        initdb = subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(self.pg_data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
             "--locale=C", "--no-sync"],
            cwd=self.pg_data, env=env, capture_output=True, text=True, timeout=300, **as_user)
        (self.root / "postgres-initdb.log").write_text(initdb.stdout + initdb.stderr)
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed ({initdb.returncode}):\n{initdb.stdout}\n{initdb.stderr}")
        initialised = time.monotonic()
        self._pg_run = (bin_dir, env, as_user)
        self.start_postgres()
        self.startup_seconds["postgres initdb"] = initialised - started
        self.startup_seconds["postgres"] = time.monotonic() - started

    def start_postgres(self) -> None:
        """(Re)start own PostgreSQL on its folder and port: after ``stop_postgres``, the same data comes back."""
        import psycopg

        bin_dir, env, as_user = self._pg_run
        port = self.pg_url.rsplit(":", 1)[1]
        process = self.spawn(
            "postgres",
            [str(bin_dir / "postgres"), "-D", str(self.pg_data), "-p", port, "-k", str(self.pg_data),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off"],
            cwd=self.pg_data, env=env, **as_user)
        wait_for(lambda: psycopg.connect(f"{self.pg_url}/postgres", connect_timeout=2).close() or True,
                 timeout=120, what="PostgreSQL", process=process)

    def stop_postgres(self) -> None:
        """Own PostgreSQL goes away (fast shutdown: every client's connection is cut), its data kept."""
        self.stop("postgres", signal.SIGINT)

    def stop_redis(self) -> None:
        """Own Redis goes away (its counters with it: it keeps nothing on disk); ``_redis_start`` brings one back."""
        self.stop("redis", signal.SIGKILL)

    def start_redis(self) -> None:
        self._redis_start()

    def _redis_start(self) -> None:
        import redis

        executable = redis_server()
        if executable is None:
            raise RuntimeError("redis-server is not installed (deploy/ensure-test-tools.sh)")
        started = time.monotonic()
        port = self.redis_url.rsplit(":", 1)[1].split("/")[0]
        folder = self.host_folder("redis")
        # Nothing on disk: no RDB snapshots, no append-only file.
        process = self.spawn("redis", [executable, "--port", port, "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no", "--dir", str(folder)], cwd=folder,
                             env={k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")})
        wait_for(lambda: redis.Redis.from_url(self.redis_url, socket_connect_timeout=2).ping(), timeout=60,
                 what="Redis", process=process)
        self.startup_seconds["redis"] = time.monotonic() - started

    def _database_create(self) -> None:
        import psycopg

        with psycopg.connect(f"{self.pg_url}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.db_name}"')
        self._db_created = True

    def _database_drop(self) -> None:
        if not getattr(self, "_db_created", False):
            return
        import psycopg

        with psycopg.connect(f"{self.pg_url}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        self._db_created = False

    def _redis_empty(self) -> None:
        import redis

        redis.Redis.from_url(self.redis_url).flushdb()

    def _s3_start(self) -> None:
        import boto3

        port = free_port()
        self.s3_endpoint = f"http://127.0.0.1:{port}"
        self.spawn("s3", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], cwd=self.root,
                   env={**os.environ})
        wait_for(lambda: requests.get(self.s3_endpoint, timeout=2).status_code < 500, timeout=60, what="moto S3")
        self.s3 = boto3.client("s3", endpoint_url=self.s3_endpoint, region_name="us-east-1",
                               aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET)
        self.s3.create_bucket(Bucket=self.bucket)

    def s3_keys(self) -> set[str]:
        keys = set()
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            keys |= {obj["Key"] for obj in page.get("Contents", [])}
        return keys

    def _certificate(self) -> None:
        folder = self.ca_file.parent
        folder.mkdir(exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", str(folder / "key.pem"), "-out", str(self.ca_file)],
                       check=True, capture_output=True, timeout=60)

    # --- release steps and processes ----------------------------------------------------
    def manage(self, *argv: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
        """`manage.py <argv>` as an operator runs it (from the app folder, with the installation's environment)."""
        result = subprocess.run([sys.executable, "manage.py", *argv], cwd=ROOT, env=self.env(**env),
                                capture_output=True, text=True, timeout=600)
        if check and result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def scheduler_jobs(self) -> list[dict]:
        """The scheduled jobs (each app's jobs.py) as the installation's environment makes them."""
        import json

        code = "import json; from config.scheduler import jobs_declared; print(json.dumps(jobs_declared()))"
        return json.loads(self.manage("shell", "-c", code).stdout.strip().splitlines()[-1])

    def host_folder(self, name: str) -> Path:
        folder = self.root / name
        folder.mkdir(exist_ok=True)
        return folder

    def start_web(self) -> None:
        """The release steps (migrate once, collectstatic), every web host, then nginx in front."""
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("collectstatic", "--noinput", "-v", "0")
        for index, port in enumerate(self.web_ports):
            self.start_web_host(index)
        for index, port in enumerate(self.web_ports):
            wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5, headers={"Host": "localhost"}
                                          ).status_code == 200, timeout=120, what=f"web host {index}")
        self.start_nginx()

    def start_web_host(self, index: int, *, name: str | None = None, port: int | None = None,
                       **env: str) -> subprocess.Popen:
        name = name or f"web{index}"
        env = self.env(CROWDLENS_VAR_DIR=str(self.host_folder(name) / "var"),
                       GUNICORN_BIND=f"127.0.0.1:{port or self.web_ports[index]}",
                       GUNICORN_WORKERS=str(self.gunicorn_workers), GUNICORN_THREADS="2", **env)
        return self.spawn(name, [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "config.wsgi"], cwd=ROOT, env=env)

    def start_nginx(self, name: str = "nginx", upstream_ports: list[int] | None = None, *, ready: bool = True) -> str:
        """nginx in front of the web hosts (all, or those on ``upstream_ports``); its https base URL.

        The first one takes the cluster's ports (``url()``); another (the bench's one-host nginx) gets its own."""
        folder = self.host_folder(name)
        first = name == "nginx"
        http_port, https_port = (self.http_port, self.https_port) if first else (free_port(), free_port())
        upstreams = [f"--upstream=127.0.0.1:{p}" for p in (upstream_ports or self.web_ports)]
        site = subprocess.run(
            [sys.executable, "deploy/nginx_site.py", "--server-name", "localhost", *upstreams,
             "--http-port", str(http_port), "--https-port", str(https_port),
             "--certificate", str(self.ca_file), "--certificate-key", str(self.ca_file.parent / "key.pem"),
             "--static-root", str(self.static_root)],
            cwd=ROOT, env=self.env(), capture_output=True, text=True, check=True, timeout=120).stdout
        # Two nginx in one cluster (the bench) need their own TLS session cache zone.
        (folder / "site.conf").write_text(site.replace("shared:crowdlens_tls:", f"shared:crowdlens_tls_{name}:"))
        temp = "\n".join(f"  {kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        # Run as root (a container), nginx's workers would drop to "nobody" and could not read this folder.
        user = "user root;\n" if os.geteuid() == 0 else ""
        (folder / "nginx.conf").write_text(
            f"{user}worker_processes 2;\npid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'} warn;\n"
            f"daemon off;\nevents {{ worker_connections 1024; }}\n"
            f"http {{\n  include /etc/nginx/mime.types;\n  default_type application/octet-stream;\n"
            f"  access_log {folder / 'access.log'};\n{temp}\n  include {folder / 'site.conf'};\n}}\n")
        self.spawn(name, [NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-e", str(folder / "error.log")],
                   cwd=folder, env=self.env())
        base = f"https://localhost:{https_port}"
        if ready:  # the web hosts answer through it
            wait_for(lambda: requests.get(f"{base}/healthz", verify=str(self.ca_file), timeout=5).status_code == 200,
                     timeout=60, what=name)
        else:  # nginx alone (upstreams that are down on purpose): it answers at all
            wait_for(lambda: requests.get(f"{base}/healthz/live", verify=str(self.ca_file), timeout=5).status_code,
                     timeout=60, what=name)
        return base

    def start_scheduler(self, **env: str) -> subprocess.Popen:
        folder = self.host_folder("scheduler")
        return self.spawn("scheduler", [sys.executable, str(ROOT / "manage.py"), "runscheduler"], cwd=folder,
                          env=self.env(CROWDLENS_VAR_DIR=str(folder / "var"), **env))

    def start_trainworker(self, name: str = "trainworker", **env: str) -> subprocess.Popen:
        folder = self.host_folder(name)
        return self.spawn(name, [sys.executable, str(ROOT / "manage.py"), "trainworker"], cwd=folder,
                          env=self.env(CROWDLENS_VAR_DIR=str(folder / "var"), **env))

    def sql(self, query: str, *params) -> list[tuple]:
        """Read the shared database, as an operator's psql would."""
        import psycopg

        with psycopg.connect(f"{self.pg_url}/{self.db_name}") as conn:
            return conn.execute(query, params).fetchall()
