# tbhub in one container: the hub and one supervised TensorBoard per endpoint.
#
#   docker build -t tbhub .
#   docker run -p 6005:6005 -v /srv/tensorboard:/logs:ro -v tbhub-state:/var/lib/tbhub tbhub
#
# The default config (deploy/docker/tbhub.toml) serves every run below /logs. Mount your own at
# /etc/tbhub/tbhub.toml (deploy/docker-compose.yml does). Sign-in is on: the first admin's one-time
# setup link is in the container's log (`docker logs`), a JSON line with "setup_url".

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# Wheels of tbhub and every pinned dependency (psycopg too, for a PostgreSQL state database).
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[postgres]'

FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    TBHUB_HOME=/var/lib/tbhub
# A numeric, non-root user: Kubernetes' runAsNonRoot can only verify a numeric USER.
RUN groupadd --system --gid 10001 tbhub \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/tbhub --create-home --shell /usr/sbin/nologin tbhub
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links /wheels 'tbhub[postgres]' && rm -rf /wheels
COPY deploy/docker/tbhub.toml /etc/tbhub/tbhub.toml
USER 10001:10001
WORKDIR /var/lib/tbhub
VOLUME ["/var/lib/tbhub"]
EXPOSE 6005
# /healthz: the hub process answers (no curl in the slim image: Python's urllib instead).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6005/healthz', timeout=4)"]
ENTRYPOINT ["tbhub"]
CMD ["serve", "--config", "/etc/tbhub/tbhub.toml", "--log-format", "json"]
