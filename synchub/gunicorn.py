"""gunicorn's settings, from the environment like the hub's own (`.env.example` lists them), so
that the Procfile, the image and docker-compose start the same server:

    gunicorn synchub.wsgi -c python:synchub.gunicorn
"""

import threading
from pathlib import Path

import environ

env = environ.Env()
environ.Env.read_env(Path(__file__).resolve().parent.parent / ".env", overwrite=False)

host = env("WEB_HOST", default="127.0.0.1")
port = env.int("PORT", default=8000)
bind = f"{host}:{port}"
workers = env.int("WEB_CONCURRENCY", default=2)
threads = env.int("WEB_THREADS", default=4)
# Off unless asked for: at webhook-storm rates a line per request cost 12 % of the web server's
# CPU (bench/analysis.md). Errors are still logged by Django (4xx as warnings, 5xx as errors),
# and /metrics counts webhooks by outcome; the proxy in front usually logs every request anyway.
accesslog = env("WEB_ACCESS_LOG", default="") or None
# gunicorn's control socket (for `gunicornc`) sits at one path per user, ~/.gunicorn/gunicorn.ctl:
# several servers on one host (two hubs, or the tests' hubs side by side) would take it from each
# other, and nothing here uses it.
control_socket_disable = True


def post_worker_init(worker) -> None:
    """Each worker connects to Kafka as it starts (in the background: it serves at once), so the
    first webhook it receives does not wait for the connection."""
    from sync.kafka import prepare_publishing
    from sync.tasks import registered_tasks

    topics = {task.topic for task in registered_tasks()}
    threading.Thread(target=prepare_publishing, args=(topics,), name="kafka-connect", daemon=True).start()
