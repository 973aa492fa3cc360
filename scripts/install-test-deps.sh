#!/usr/bin/env bash
# Installs the Debian packages the tests need (namespace tools, dig, curl, perl, python3 and openssl for the TCP
# interop and TLS tests, a C compiler for the flood test's sender; containerd, runc, the reference CNI plugins,
# iptables for portmap and a static busybox for the CNI tests), only those that are missing.
# Idempotent and non-interactive; run as root. Benchmark-only packages (wireguard-go, wireguard-tools)
# are installed by bench/dataplane.ts itself, not here.
set -euo pipefail

PACKAGES=(iproute2 iputils-ping iperf3 iperf socat bind9-dnsutils nftables procps gcc libc6-dev curl perl mount python3 openssl
  util-linux iptables containerd runc containernetworking-plugins busybox-static)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: must run as root (apt-get install); skipping" >&2
  exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-test-deps: all present (${PACKAGES[*]})"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# iperf3's postinst asks whether to start a daemon; the answer must be no.
echo 'iperf3 iperf3/start_daemon boolean false' | debconf-set-selections 2>/dev/null || true
echo "install-test-deps: installing ${missing[*]}"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-test-deps: installed ${missing[*]}"
