"""`python -m sandbox.localstripe`: run the sandbox's Stripe (localstripe behind the invoice front,
`sandbox/stripe_front.py`) with its webhooks pointed back at the hub, for as long as this process
lives (a Procfile entry)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .processes import localstripe_command, register_localstripe_webhook, start, wait_for_port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--webhook-url", required=True)
    parser.add_argument("--webhook-secret", required=True)
    args = parser.parse_args()

    child = start(localstripe_command(args.port))
    # Only pass the signal on: the main thread is inside child.wait() and returns once the child
    # exits. Waiting in the handler as well deadlocked on Popen's wait lock until honcho's SIGKILL.
    stopping = threading.Event()

    def stop_child(*_) -> None:
        stopping.set()
        child.terminate()

    signal.signal(signal.SIGTERM, stop_child)
    signal.signal(signal.SIGINT, stop_child)
    try:
        wait_for_port(args.port, process=child)
        register_localstripe_webhook(stripe_port=args.port, url=args.webhook_url, secret=args.webhook_secret)
    except OSError:
        # Stopped while starting up (the child went away under these calls), or the child died.
        if stopping.is_set() or child.poll() is not None:
            return child.wait()
        raise
    print(f"localstripe on http://127.0.0.1:{args.port}, webhooks -> {args.webhook_url}", flush=True)
    return child.wait()


if __name__ == "__main__":
    sys.exit(main())
