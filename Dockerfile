# syntax=docker/dockerfile:1
# The Nexus image: the `nexus` console script (workers, beat, flower, MCP server), run as a non-root user.
#   target `app`: every service of docker-compose.yml
#   target `sim`: `app` plus slapd (the simulators' Active Directory) and the gateway that lets other
#                 containers reach the loopback-only simulators (compose profile "sim")
FROM python:3.11-slim AS app

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 nexus \
 && useradd --system --uid 10001 --gid nexus --create-home --home-dir /home/nexus --shell /usr/sbin/nologin nexus \
 && install -d -o nexus -g nexus -m 0750 /shared /app /app/reports

# Built in /src, which is removed after: `nexus worker` refuses to run where a local tasks/clients/workers directory
# would shadow the installed packages (Celery imports from the working directory first), so /app holds no sources.
WORKDIR /src
# README.md* : the project's readme when present (pyproject names it)
COPY pyproject.toml README.md* ./
COPY nexus ./nexus
COPY clients ./clients
COPY tasks ./tasks
COPY workers ./workers
RUN pip install . && rm -rf build ./*.egg-info
WORKDIR /app
RUN rm -rf /src

USER nexus
# Flower, MCP over HTTP, worker metrics
EXPOSE 5555 8765 9808
CMD ["nexus", "--help"]


FROM app AS sim
USER root
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends slapd ldap-utils \
 && rm -rf /var/lib/apt/lists/*
COPY --chmod=0755 docker/sim_gateway.py /usr/local/bin/nexus-sim-gateway
USER nexus
# the simulators' HTTP port and AD's LDAP port (see docker-compose.yml)
EXPOSE 8400 3890
ENTRYPOINT ["nexus-sim-gateway"]
CMD ["nexus", "sim", "--port", "8400", "--ldap-port", "3890", "--env-file", "/tmp/nexus-sim/sim.env"]
