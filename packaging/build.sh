#!/usr/bin/env bash
# Builds the maildirmig .deb and .rpm into dist/:
#
#	packaging/build.sh [VERSION]
#
# VERSION (default: from git describe, else 0.0.0 and the revision) is stamped into the
# binary (maildirmig --version) and names the packages. MAILDIRMIG_PACKAGERS (default "deb
# rpm") chooses the packages built. The binary is static (CGO_ENABLED=0).
# The man page and completions are the files under packaging/, which a test keeps equal to
# what the command definitions generate. nfpm comes from the Go module proxy at a fixed
# version, so the product's go.mod does not depend on it.
set -euo pipefail
cd "$(dirname "$0")/.."

nfpm=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
version=${1:-}
if [ -z "$version" ]; then
	if version=$(git describe --tags --match 'v[0-9]*' 2>/dev/null); then
		version=${version#v}
	else
		version=0.0.0+git$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
	fi
fi
case $version in
[0-9]*) ;;
*) echo "build.sh: version $version must start with a digit" >&2; exit 2 ;;
esac

rm -rf dist/stage dist/*.deb dist/*.rpm
mkdir -p dist/stage
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.versionStamp=$version" -o dist/stage/maildirmig ./cmd/maildirmig
gzip -9 -n -c packaging/man/maildirmig.8 > dist/stage/maildirmig.8.gz

export MAILDIRMIG_VERSION=$version
export MAILDIRMIG_ARCH=${GOARCH:-$(go env GOARCH)}
for packager in ${MAILDIRMIG_PACKAGERS:-deb rpm}; do
	go run "$nfpm" package --config packaging/nfpm.yaml --packager "$packager" --target dist/
done
find dist -maxdepth 1 \( -name '*.deb' -o -name '*.rpm' \) | sort
