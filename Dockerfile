# Cairn container image: build with the Swift toolchain, run on slim Debian with the PostgreSQL 15 tools
# (client tools for backups and restores, the server for drills' scratch clusters) and the runtime libraries.
# Configuration and credentials come from mounted files or the environment, never from the command line:
#   docker run -d -v /etc/cairn:/etc/cairn:ro -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY -p 9187:9187 cairn
#   docker run --rm -v /etc/cairn:/etc/cairn:ro cairn doctor
# The default command is `cairn daemon`; set metrics.listen: 0.0.0.0:9187 in cairn.yaml to scrape it from outside.
# Checked without a Docker engine by Tests/CairnCLITests/PackagingTests.swift (packages exist, libraries and
# PostgreSQL tools the binary needs are installed).

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
      libpq5 libzstd1 libcurl4 ca-certificates tzdata \
      postgresql-client-15 postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/cairn --create-home cairn \
 && install -d -o cairn -g cairn -m 700 /var/lib/cairn/drills
COPY --from=build /usr/local/bin/cairn /usr/local/bin/cairn
USER cairn
WORKDIR /var/lib/cairn
ENV CAIRN_CONFIG=/etc/cairn/cairn.yaml
EXPOSE 9187
ENTRYPOINT ["/usr/local/bin/cairn"]
CMD ["daemon"]
