# Cairn container image: build with the Swift toolchain, run on slim Debian with the PostgreSQL 15 client
# tools and the runtime libraries. Configuration and credentials come from mounted files or the environment:
#   docker run -v /etc/cairn:/etc/cairn:ro -e CAIRN_CONFIG=/etc/cairn/cairn.yaml cairn check

FROM swift:6.3-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq-dev libzstd-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
RUN swift build -c release --product cairn --static-swift-stdlib \
 && install -m 755 .build/release/cairn /usr/local/bin/cairn

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      postgresql-client-15 libpq5 libzstd1 libcurl4 libxml2 ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/cairn --create-home cairn
COPY --from=build /usr/local/bin/cairn /usr/local/bin/cairn
USER cairn
ENV CAIRN_CONFIG=/etc/cairn/cairn.yaml
ENTRYPOINT ["/usr/local/bin/cairn"]
CMD ["check"]
