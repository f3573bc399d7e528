# The one image every trainflow step runs in (Argo steps, PyTorchJob/TFJob pods, TensorBoard, model server).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TRAINFLOW_HOME=/var/lib/trainflow

WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
# constraints.txt pins torch: by default the CPU wheel from PyTorch's index, not a multi-GB CUDA build;
# --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126 builds the image GPU pods train in (NCCL).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --extra-index-url "${TORCH_INDEX}" -c constraints.txt ".[kubernetes]" \
    && rm -rf /src

# Root, like the example's images: the cache volume is writable without an fsGroup on every pod.
WORKDIR /var/lib/trainflow
EXPOSE 6006 8501 9000 2222 23456
ENTRYPOINT ["trainflow"]
CMD ["--help"]
