# The Docker path (docker-compose.yml). Not used by the tests or CI.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libpq-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
# ReDoc's script and the explorer's files are embedded in the binary (include_bytes!).
COPY assets ./assets
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/seriesd /usr/local/bin/seriesd
ENV LISTEN_ADDR=0.0.0.0:8000
EXPOSE 8000
CMD ["sh", "-c", "seriesd migrate && seriesd seed && seriesd serve"]
