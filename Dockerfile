# voicegw container image: a static binary on distroless (CA certificates
# included, no shell), running as a non-root user.
#
#   docker build -t voicegw --build-arg VERSION=$(git describe --always) .
#
# The configuration is mounted at /etc/voicegw/config.yaml (deploy/ has a
# ConfigMap for it); listen on 0.0.0.0 inside the container.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY gateway ./gateway
COPY templates ./templates
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/voicegw ./cmd/voicegw

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/voicegw /voicegw
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/voicegw"]
CMD ["serve", "-c", "/etc/voicegw/config.yaml"]
