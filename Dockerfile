# The hub's image: web server (gunicorn), outbox relay and workers all run from it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app

COPY requirements.txt build-constraints.txt ./
RUN pip install --no-cache-dir --upgrade pip \
 && pip install --no-cache-dir --build-constraint build-constraints.txt -r requirements.txt

COPY . .
# The settings refuse to load without a SECRET_KEY (DEBUG is off): collectstatic signs nothing, so a
# throwaway key for this step only; it is not kept in the image, and the containers need their own.
RUN SECRET_KEY=build-only python manage.py collectstatic --noinput --verbosity 0

# /metrics: the shared directory of Prometheus multiprocess metrics (a volume in docker-compose).
RUN useradd --system --uid 1000 synchub && mkdir /metrics && chown -R synchub /app /metrics
USER synchub

EXPOSE 8000
ENV WEB_HOST=0.0.0.0 WEB_CONCURRENCY=3
CMD ["gunicorn", "synchub.wsgi", "-c", "python:synchub.gunicorn"]
