# lbctl: the controller (`lbctl controller`) and the bare-metal speaker (`lbctl speaker`).
#   docker build -t lbctl:0.1.0 .
# Two stages: build a wheel from this repository, install it into a slim runtime that
# runs as a non-root user and writes nothing (deploy/ mounts the root read-only).

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY lbctl ./lbctl
COPY providers ./providers
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="lbctl" \
      org.opencontainers.image.description="Kubernetes LoadBalancer Service controller: AWS NLB and bare-metal providers" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels \
    && groupadd --system --gid 65532 lbctl \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin lbctl
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["lbctl"]
CMD ["controller"]
