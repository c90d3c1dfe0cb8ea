# Images for the cluster (docker-compose.yml). Two targets from one file:
#   service: the API and the scheduler (CPU torch is enough: they never train).
#   worker:  Ray head and workers, where study drivers and trials run (CUDA torch base).
# Build: docker-compose build   (or: docker build --target worker -t demonlab-worker .)

ARG PYTHON_IMAGE=python:3.11-slim
ARG CUDA_TORCH_IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

FROM ${PYTHON_IMAGE} AS service
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY demon ./demon
COPY studies ./studies
COPY service ./service
# CPU torch for the service image; the worker image keeps its CUDA torch (the package declares a range).
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.4" \
 && pip install .
RUN useradd --create-home demonlab && mkdir -p /data && chown demonlab /data
USER demonlab
ENV DEMONLAB_DATA_DIR=/data
EXPOSE 8000
CMD ["demonlab", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-scheduler"]

FROM ${CUDA_TORCH_IMAGE} AS worker
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY demon ./demon
COPY studies ./studies
COPY service ./service
# torch is already in the base image (CUDA build) and satisfies the package's range.
RUN pip install .
RUN mkdir -p /data /datasets
ENV DEMONLAB_DATA_DIR=/data
EXPOSE 6379 8265 10001
CMD ["ray", "start", "--head", "--port=6379", "--dashboard-host=0.0.0.0", "--dashboard-port=8265", "--block"]
