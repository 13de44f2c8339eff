# servicemap collector sidecar: OTLP gRPC :4317 and HTTP :4318 in, Parquet dataset in /data out.
FROM python:3.11-slim

# graphviz draws the maps `servicemap render` makes from the same image
RUN apt-get update \
    && apt-get install -y --no-install-recommends graphviz \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY servicemap ./servicemap
COPY collector ./collector
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --no-create-home servicemap \
    && mkdir /data \
    && chown servicemap /data

USER servicemap
VOLUME /data
EXPOSE 4317 4318

HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:4318/healthz', timeout=4)"]

# exec form: the collector is PID 1 and gets SIGTERM from `docker stop` (drains, flushes, exit 0)
ENTRYPOINT ["servicemap", "collect", "--data", "/data", "--otlp-grpc", "0.0.0.0:4317", "--otlp-http", "0.0.0.0:4318"]
