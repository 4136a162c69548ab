# bhi-fhir: every command (sync, bill, doctor, measure, …) and `serve` (the SMART app and the
# notification receiver at /fhir-notify). Built from this checkout:
#   docker build -t bhi-fhir .
#   docker run --rm bhi-fhir doctor --server https://ehr.example/fhir
#   docker run --rm -p 8000:8000 bhi-fhir serve --demo --host 0.0.0.0
# Configuration comes from the environment the commands already read: BHI_STATE_URL (sync's
# operational store), BHI_FHIR_* (credentials), BHI_APP_* (the app), BHI_NOTIFY_* (the
# receiver), BHI_LOG_FORMAT=json (one JSON object per log line).

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY bhi_fhir bhi_fhir
COPY smart_app smart_app
COPY profiles profiles
COPY examples examples
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir "$(ls /wheels/bhi_fhir-*.whl)[postgres]" && rm -rf /wheels \
    && useradd --create-home --uid 10001 bhi \
    && mkdir -p /var/lib/bhi-fhir && chown bhi /var/lib/bhi-fhir
USER 10001
WORKDIR /home/bhi
# sync's watermark, journal and held patients default to $XDG_STATE_HOME/bhi-fhir/state.db:
# keep them on the volume (or set BHI_STATE_URL to a PostgreSQL URL). Not BHI_STATE_URL
# itself: `serve --demo` refuses to start when it is set.
ENV XDG_STATE_HOME=/var/lib/bhi-fhir \
    PYTHONUNBUFFERED=1
VOLUME ["/var/lib/bhi-fhir"]
EXPOSE 8000
ENTRYPOINT ["bhi-fhir"]
CMD ["--help"]
