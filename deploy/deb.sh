#!/usr/bin/env bash
# make deb: the totemd, totemhub and totemctl packages for each of
# ARCHES (default amd64 arm64 armhf) into dist/, with nfpm run through
# `go run` so go.mod stays clean. The version comes from git describe.
#
# totemd is built with PC/SC (cgo, -tags pcsc): for amd64 against the
# host's libpcsclite-dev, for arm64 and armhf with Debian's cross
# compilers (gcc-aarch64-linux-gnu, gcc-arm-linux-gnueabihf) against a
# sysroot of that architecture's libpcsclite-dev and libpcsclite1,
# fetched with `apt-get download` (needs `dpkg --add-architecture`; it
# installs nothing). Without them totemd falls back to the stub reader
# and says so loudly; REQUIRE_PCSC=1 makes that an error instead.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
ARCHES=${ARCHES:-amd64 arm64 armhf}
NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0
out=${OUT:-dist}
# nfpm reads the packages' files relative to its working directory: a
# private one per run with the binaries in stage/ and deploy/ linked, so
# that two runs never share a staging area.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ln -s "$PWD/deploy" "$work/deploy"
stage=$work/stage

# A Debian version starts with a digit: v1.2.3-4-gabcdef → 1.2.3+4.gabcdef;
# without a tag, 0.0.0~git<commit time>.<hash>, sorting by commit time.
version() {
	local d
	if d=$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null); then
		d=${d#v}
		echo "$d" | sed -E 's/-([0-9]+)-g/+\1.g/; s/-dirty$/.dirty/'
	else
		local dirty=""
		git diff --quiet HEAD 2>/dev/null || dirty=".dirty"
		echo "0.0.0~git$(git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S).$(git rev-parse --short=9 HEAD)$dirty"
	fi
}
VERSION=${VERSION:-$(version)}
export VERSION

# sysroot ARCH TRIPLET: a directory with that architecture's PC/SC
# headers, library and pkg-config file, or failure.
sysroot() {
	local arch=$1 root=${SYSROOTS:-$PWD/dist/sysroot}/$1
	if [ -e "$root/usr/lib/$2/pkgconfig/libpcsclite.pc" ]; then
		echo "$root"
		return
	fi
	local tmp
	tmp=$(mktemp -d)
	if ! (cd "$tmp" && apt-get download -qq "libpcsclite1:$arch" "libpcsclite-dev:$arch") >/dev/null 2>&1; then
		rm -rf "$tmp"
		return 1
	fi
	mkdir -p "$root"
	for f in "$tmp"/*.deb; do dpkg-deb -x "$f" "$root"; done
	rm -rf "$tmp"
	echo "$root"
}

mkdir -p "$out"
out=$(cd "$out" && pwd)
for arch in $ARCHES; do
	case $arch in
	amd64) goarch=amd64 goarm="" nfarch=amd64 triplet=x86_64-linux-gnu cc=gcc ;;
	arm64) goarch=arm64 goarm="" nfarch=arm64 triplet=aarch64-linux-gnu cc=aarch64-linux-gnu-gcc ;;
	armhf) goarch=arm goarm=7 nfarch=arm7 triplet=arm-linux-gnueabihf cc=arm-linux-gnueabihf-gcc ;;
	*) echo "deb: unknown architecture $arch (amd64, arm64, armhf)" >&2; exit 2 ;;
	esac
	rm -rf "$stage" && mkdir -p "$stage"
	rm -f "$out"/totemd_*_"$arch".deb "$out"/totemhub_*_"$arch".deb "$out"/totemctl_*_"$arch".deb
	ldflags="-s -w -X main.version=$VERSION"
	CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=$goarm \
		$GO build -trimpath -ldflags "$ldflags" -o "$stage/" ./cmd/totemhub ./cmd/totemctl

	pcsc=""
	if [ "$arch" = amd64 ] && [ "$(go env GOARCH)" = amd64 ] && [ -e /usr/include/PCSC/winscard.h ]; then
		CGO_ENABLED=1 GOOS=linux GOARCH=amd64 \
			$GO build -trimpath -tags pcsc -ldflags "$ldflags" -o "$stage/totemd" ./cmd/totemd
		pcsc=yes
	elif [ "$arch" != amd64 ] && command -v "$cc" >/dev/null && root=$(sysroot "$arch" "$triplet"); then
		# CGO_LDFLAGS names the sysroot too: the build cache keys a cgo
		# package on the CGO_* variables but not on pkg-config's, so a
		# package built from another checkout's sysroot would be reused
		# with that checkout's -L (seen: "cannot find -lpcsclite").
		CGO_ENABLED=1 GOOS=linux GOARCH=$goarch GOARM=$goarm CC=$cc \
			PKG_CONFIG_SYSROOT_DIR="$root" PKG_CONFIG_LIBDIR="$root/usr/lib/$triplet/pkgconfig" \
			CGO_LDFLAGS="-L$root/usr/lib/$triplet" \
			$GO build -trimpath -tags pcsc -ldflags "$ldflags" -o "$stage/totemd" ./cmd/totemd
		pcsc=yes
	fi
	if [ -z "$pcsc" ]; then
		if [ "${REQUIRE_PCSC:-}" = 1 ]; then
			echo "deb: totemd for $arch cannot be built with PC/SC (needs $cc and libpcsclite-dev:$arch)" >&2
			exit 1
		fi
		echo "deb: WARNING: totemd for $arch built WITHOUT PC/SC (stub reader: no real card reader); install $cc and add the $arch architecture" >&2
		CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=$goarm \
			$GO build -trimpath -ldflags "$ldflags" -o "$stage/totemd" ./cmd/totemd
	fi

	for pkg in totemd totemhub totemctl; do
		(cd "$work" && NFPM_ARCH=$nfarch GOFLAGS= $GO run $NFPM package --config "deploy/nfpm/$pkg.yaml" --packager deb --target "$out/" >/dev/null)
	done
	echo "deb: $arch: $(cd "$out" && ls ./*_"${VERSION}"_"$arch".deb | tr '\n' ' ')(pcsc: ${pcsc:-no})"
done
