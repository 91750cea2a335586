#!/usr/bin/env bash
# Regenerates benchmark.pb.go from benchmark.proto the way rpcx-benchmark does (its proto/gen.sh):
# protoc with gogo's protoc-gen-gogofaster. Installs what is missing: protoc from Debian's
# protobuf-compiler (apt-get), protoc-gen-gogofaster with `go install` at the gogo/protobuf
# version that go.mod pins, into a temporary GOBIN. Nothing else needs them: the generated file is
# checked in.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if ! command -v protoc >/dev/null 2>&1; then
	echo "gen.sh: installing protoc (apt-get install protobuf-compiler)" >&2
	apt-get update >&2
	apt-get install -y protobuf-compiler >&2
fi
gogo_version=$(cd .. && go list -m -f '{{.Version}}' github.com/gogo/protobuf)
gobin=$(mktemp -d)
trap 'rm -rf "$gobin"' EXIT
GOBIN=$gobin go install "github.com/gogo/protobuf/protoc-gen-gogofaster@$gogo_version"
PATH=$gobin:$PATH protoc -I. --gogofaster_out=. benchmark.proto
echo "gen.sh: wrote benchmark.pb.go (protoc $(protoc --version | cut -d' ' -f2), gogofaster $gogo_version)" >&2
