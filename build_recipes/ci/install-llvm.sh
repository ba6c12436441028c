#!/usr/bin/env bash
# Install LLVM <major> (its shared libLLVM and its CMake package) where
# build_recipes/enzyme.toml's `llvm_dir` of this platform expects it.
#
#   bash build_recipes/ci/install-llvm.sh <major>
#
# manylinux_2_28 (AlmaLinux 8):  conda-forge's llvmdev/libllvm<major> in /opt/llvm-<major>
# musllinux_1_2 (Alpine):        apk llvm<major>-dev          -> /usr/lib/llvm<major>
# macOS:                         Homebrew llvm@<major>        -> $(brew --prefix)/opt/llvm@<major>
# Windows (Git Bash):            conda-forge's llvmdev in C:/llvm-<major>
# Also installs cmake and ninja when missing.  Run by cibuildwheel's before-all step.
set -euo pipefail

major="${1:?usage: install-llvm.sh <llvm major>}"
case "$major" in (*[!0-9]*|'') echo "install-llvm.sh: '$major' is not an LLVM major" >&2; exit 2;; esac

micromamba_env() {  # <conda platform> <prefix>
    local plat="$1" prefix="$2" bin
    bin="${TMPDIR:-/tmp}/micromamba"
    if [ ! -x "$bin" ]; then
        curl -fsSL --retry 5 -o "$bin" \
            "https://github.com/mamba-org/micromamba-releases/releases/latest/download/micromamba-${plat}"
        chmod +x "$bin"
    fi
    "$bin" create --yes --root-prefix "${TMPDIR:-/tmp}/mamba-root" --prefix "$prefix" \
        --channel conda-forge --override-channels "llvmdev=${major}.*" "libllvm${major}" zlib zstd
}

case "$(uname -s)" in
    Linux)
        if [ -f /etc/alpine-release ]; then
            apk add --no-cache "llvm${major}-dev" "llvm${major}-libs" cmake samurai build-base
        else
            case "$(uname -m)" in
                x86_64) plat=linux-64 ;;
                aarch64) plat=linux-aarch64 ;;
                *) echo "install-llvm.sh: no conda platform for $(uname -m)" >&2; exit 1 ;;
            esac
            micromamba_env "$plat" "/opt/llvm-${major}"
        fi
        ;;
    Darwin)
        brew install "llvm@${major}" ninja cmake
        ;;
    MINGW*|MSYS*|CYGWIN*)
        micromamba_env win-64 "C:/llvm-${major}"
        ;;
    *)
        echo "install-llvm.sh: unsupported system $(uname -s)" >&2
        exit 1
        ;;
esac
echo "LLVM ${major} installed"
