# The worker image of `archdsl cluster kubernetes --image ...`: PyTorch's CUDA build, then archdsl installed the
# way the README says (the project and its `cluster` extra; torch comes from the base image, which satisfies
# archdsl's `torch>=2.4,<3`, so pip keeps it). Not built on the development machines (no image builder runs
# there); build and push it where one does:
#   docker build -t registry.example/archdsl:0.1 . && docker push registry.example/archdsl:0.1
# Pick the base whose CUDA your nodes' driver supports (`nvidia-smi` shows the highest CUDA it runs).
ARG BASE=pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/archdsl
COPY pyproject.toml README.md ./
COPY archdsl ./archdsl
RUN python -m pip install '.[cluster]' \
    && python -c "import torch, archdsl.cli; print('torch', torch.__version__, 'CUDA', torch.version.cuda)" \
    && archdsl --help >/dev/null

# Trial directories are the mounted claim (/runs in the manifest), written as the image's user (root here, as
# in the PyTorch base; set the pod's securityContext where your claims need another uid).
# The manifest gives the command (`sh -c` around `archdsl worker ...`); by hand: docker run IMAGE archdsl --help
CMD ["archdsl", "--help"]
