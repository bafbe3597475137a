"""Settings of the hub under benchmark: the hub's own, plus a middleware that counts SQL queries
when asked. Used only by `make bench`."""

from synchub.settings import *  # noqa: F403

# First, so that it counts every query of the request (sessions, auth, the view).
MIDDLEWARE = ["bench.middleware.QueryCountMiddleware", *MIDDLEWARE]  # noqa: F405
