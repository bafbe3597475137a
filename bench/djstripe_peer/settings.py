"""Settings of the dj-stripe peer: a plain Django project as dj-stripe's documentation sets one
up, run by the benchmarks (bench/djstripe.py) in a virtual environment of its own. Nothing of the
hub is imported; everything that differs per run comes from the environment."""

import os

import dj_database_url

SECRET_KEY = os.environ.get("SECRET_KEY", "djstripe-peer-bench-key")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",  # dj-stripe's Customer.subscriber points at the user model
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "djstripe",
]

# startproject's middleware (less the admin's): what a dj-stripe site runs its webhook behind.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "urls"
WSGI_APPLICATION = "wsgi.application"

# Persistent connections with health checks, as the hub's settings have them on PostgreSQL, so
# the two differ in what they do per webhook and not in connection set-up.
DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60, conn_health_checks=True)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

STRIPE_LIVE_MODE = False
STRIPE_TEST_SECRET_KEY = os.environ["STRIPE_API_KEY"]
# dj-stripe sets stripe.api_base from this (its documented way to use another Stripe API server):
# the bench's Stripe stand-in.
STRIPE_API_HOST = os.environ["STRIPE_API_BASE"]
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"  # the value for new installations (check djstripe.E002)
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"  # the Stripe-Signature header, no API call
# djstripe.W002 warns that STRIPE_API_HOST is set with DEBUG off: here that is the point.
SILENCED_SYSTEM_CHECKS = ["djstripe.W002"]

# Warnings and errors only (a failed webhook logs its traceback), like the hub under the bench.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
