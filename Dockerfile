# The gateway's image: one static binary in an empty image.
#
#   docker build -t kubernaut/gateway:0.1.0 .
#
# Needs to pull the Rust image. Without registry access, scripts/image.sh builds the binary on the
# host with the same script and builds the same runtime stage (below the marker) from it.

# ---- build: a static executable (glibc static-pie; rustls + ring, no OpenSSL) ----
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN scripts/build-static.sh /out

# ---- runtime (scripts/image.sh reuses everything below this line verbatim) ----
FROM scratch
COPY --from=build /out/ /
# The nonroot uid/gid of distroless; the Deployment sets the same and runAsNonRoot.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/gateway"]
