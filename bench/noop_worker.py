"""`python -m bench.noop_worker`: our task layer's worker (sync.worker.Worker) for bench.noop.

BENCH_SKIP_AUDIT=1 leaves out the audit-trail row the worker writes per task: a diagnostic, to
show what that row costs; never how the hub runs.
"""

import os

import django


def main() -> None:
    django.setup()
    from sync.commands import stop_on_signals
    from sync.worker import Worker

    from .noop import noop

    if os.environ.get("BENCH_SKIP_AUDIT") == "1":
        import sync.worker

        sync.worker.sync_events_record = lambda events: None

    worker = Worker(tasks=[noop], group_id="bench-noop")
    stop_on_signals(worker.stop)
    worker.run()


if __name__ == "__main__":
    main()
