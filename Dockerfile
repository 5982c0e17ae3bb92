# syntax=docker/dockerfile:1
# The operator image: `extraction-operator run` by default; the same image serves
# `extraction-operator guard` inside stage pods that want shared circuit breakers.

# ---- builder: build the wheel and install it with its dependencies into a self-contained venv ----
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
RUN python -m venv /opt/venv
# Only what the wheel is built from (see .dockerignore): a test or doc change does not bust the cache.
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN /opt/venv/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /dist . \
    && /opt/venv/bin/pip install --no-cache-dir /dist/*.whl

# ---- runtime: the venv only, no compiler, no pip cache, no source tree ----
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH

# The same numeric user as the Deployment's securityContext (runAsUser: 65532), so runAsNonRoot
# holds even where the pod spec does not set a user.
RUN groupadd --system --gid 65532 nonroot \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin nonroot

COPY --from=builder /opt/venv /opt/venv

USER 65532:65532
WORKDIR /tmp
EXPOSE 8080 8081

ENTRYPOINT ["extraction-operator"]
CMD ["run"]
