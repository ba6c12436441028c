#!/usr/bin/env bash
# Install LLVM <major> (its shared libLLVM and its CMake package), the development files that
# CMake package needs (zlib; zstd for LLVM 16 and newer), and cmake and ninja, where
# build_recipes/enzyme.toml's `llvm_dir` of this platform expects LLVM.
#
#   bash build_recipes/ci/install-llvm.sh <major>
#
# Routes, picked from the system:
#   debian     Debian/Ubuntu (apt): llvm-<major>-dev libllvm<major> libzstd-dev zlib1g-dev cmake
#              ninja-build g++                                       -> /usr/lib/llvm-<major>
#   manylinux  other glibc Linux (the manylinux_2_28 image): conda-forge's llvmdev, libllvm<major>,
#              zlib, zstd in /opt/llvm-<major>; cmake and ninja in /opt/build-tools, linked into
#              /usr/local/bin
#   alpine     musllinux_1_2 (apk): llvm<major>-dev llvm<major>-libs zstd-dev zlib-dev cmake samurai
#              build-base                                            -> /usr/lib/llvm<major>
#   macos      Homebrew: llvm@<major> zstd cmake ninja               -> $(brew --prefix)/opt/llvm@<major>
#   windows    Git Bash: conda-forge's llvmdev, zlib, zstd, cmake, ninja in C:/llvm-<major>
#              (its Library/bin is added to $GITHUB_PATH when set)
# Environment: ENZYME_RECIPES_INSTALL_ROUTE forces a route; ENZYME_RECIPES_DRY_RUN=1 prints the
# commands instead of running them.  Run by cibuildwheel's before-all step.
set -euo pipefail

major="${1:?usage: install-llvm.sh <llvm major>}"
case "$major" in (*[!0-9]*|'') echo "install-llvm.sh: '$major' is not an LLVM major" >&2; exit 2;; esac
dry="${ENZYME_RECIPES_DRY_RUN:-}"

run() {  # echo a command, then run it (or only echo it in a dry run)
    echo "+ $*"
    if [ -z "$dry" ] || [ "$dry" = 0 ]; then "$@"; fi
}

sudo_() {  # root runs it as is; others through sudo
    if [ "$(id -u)" -eq 0 ]; then run "$@"; else run sudo "$@"; fi
}

fetched_micromamba=""
micromamba() {  # <conda platform> <prefix> <packages...>
    local plat="$1" prefix="$2" bin
    shift 2
    bin="${TMPDIR:-/tmp}/micromamba"
    if [ ! -x "$bin" ] && [ -z "$fetched_micromamba" ]; then
        run curl -fsSL --retry 5 -o "$bin" \
            "https://github.com/mamba-org/micromamba-releases/releases/latest/download/micromamba-${plat}"
        run chmod +x "$bin"
        fetched_micromamba=1
    fi
    run "$bin" create --yes --root-prefix "${TMPDIR:-/tmp}/mamba-root" --prefix "$prefix" \
        --channel conda-forge --override-channels "$@"
}

conda_platform() {
    case "$(uname -m)" in
        x86_64|amd64|AMD64) echo "$1-64" ;;
        aarch64|arm64) echo "$1-aarch64" ;;
        *) echo "install-llvm.sh: no conda platform for $(uname -m)" >&2; exit 1 ;;
    esac
}

route="${ENZYME_RECIPES_INSTALL_ROUTE:-}"
if [ -z "$route" ]; then
    case "$(uname -s)" in
        Linux)
            if [ -f /etc/alpine-release ]; then route=alpine
            elif [ -f /etc/debian_version ]; then route=debian
            else route=manylinux
            fi ;;
        Darwin) route=macos ;;
        MINGW*|MSYS*|CYGWIN*) route=windows ;;
        *) echo "install-llvm.sh: unsupported system $(uname -s)" >&2; exit 1 ;;
    esac
fi

case "$route" in
    debian)
        sudo_ apt-get update -qq
        sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "llvm-${major}-dev" "libllvm${major}" libzstd-dev zlib1g-dev cmake ninja-build g++
        ;;
    manylinux)
        plat="$(conda_platform linux)"
        micromamba "$plat" "/opt/llvm-${major}" "llvmdev=${major}.*" "libllvm${major}" zlib zstd
        micromamba "$plat" /opt/build-tools cmake ninja
        for tool in cmake ninja; do  # a dry run shows what a machine without them gets
            if [ -n "$dry" ] || ! command -v "$tool" > /dev/null 2>&1; then
                run ln -sf "/opt/build-tools/bin/$tool" /usr/local/bin/
            fi
        done
        ;;
    alpine)
        run apk add --no-cache "llvm${major}-dev" "llvm${major}-libs" zstd-dev zlib-dev cmake samurai build-base
        ;;
    macos)
        run brew install "llvm@${major}" zstd cmake ninja
        ;;
    windows)
        micromamba win-64 "C:/llvm-${major}" "llvmdev=${major}.*" zlib zstd cmake ninja
        if [ -n "${GITHUB_PATH:-}" ]; then
            run sh -c "echo 'C:/llvm-${major}/Library/bin' >> \"\$GITHUB_PATH\""
        fi
        ;;
    *)
        echo "install-llvm.sh: unknown route '$route' (debian, manylinux, alpine, macos, windows)" >&2
        exit 2
        ;;
esac
echo "LLVM ${major} installed (route ${route})"
