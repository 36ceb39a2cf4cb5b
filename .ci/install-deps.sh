#!/usr/bin/env bash
# .ci/install-deps.sh: install what layergc's real-daemon tests need, on Debian bookworm, as root.
# Idempotent: installs only what is missing, runs `apt-get update` at most once, and builds the
# Debian sid chroot with Docker 28.5 (/opt/sid-docker) only if it is not there and working.
#
# - Packages: docker.io (dockerd 20.10 + /usr/bin/docker client), busybox-static, btrfs-progs,
#   fuse-overlayfs, attr (getfattr: overlay redirect xattrs), debootstrap, e2fsprogs (chattr/lsattr), iproute2, util-linux (unshare), prometheus (ships
#   /usr/bin/promtool) and systemd (for systemd-analyze) if systemd-analyze is missing.
# - No service is started: a policy-rc.d that denies starts is in place during the install, and a
#   docker/containerd/prometheus service that is running afterwards but was not before is stopped.
#   (A system containerd on /run/containerd/containerd.sock would otherwise be shared by every test
#   daemon instead of each starting its own.)
# - The sid chroot: `debootstrap --variant=minbase --include=docker.io sid /opt/sid-docker`, with
#   retries; its dockerd runs on the host with the host's containerd and runc (see test/helpers/dockerd.ts).
#
# Env: SID_DIR (default /opt/sid-docker), SID_SUITE (default sid), DEBIAN_MIRROR (default: the
# bookworm archive URI from this machine's apt sources, else debootstrap's own default),
# SKIP_SID=1 to skip the chroot.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

SID_DIR=${SID_DIR:-/opt/sid-docker}
SID_SUITE=${SID_SUITE:-sid}
T0=$(date +%s)
log() { echo "[install-deps +$(($(date +%s) - T0))s] $*"; }
die() { echo "[install-deps] ERROR: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
command -v dpkg-query >/dev/null && command -v apt-get >/dev/null || die "not a Debian system"

retry() { # retry N cmd...
  local n=$1 i
  shift
  for i in $(seq 1 "$n"); do
    "$@" && return 0
    [ "$i" = "$n" ] || { log "attempt $i/$n failed: $*; retrying in $((i * 5))s"; sleep $((i * 5)); }
  done
  return 1
}

installed() { dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

# --- services: remember what ran before, so we only stop what this script caused ----------------
have_systemd() { [ -d /run/systemd/system ]; }
svc_active() { # docker | containerd | prometheus
  local svc=$1 pid
  if have_systemd; then
    systemctl is-active --quiet "$svc.service" && return 0
    [ "$svc" = docker ] && systemctl is-active --quiet docker.socket && return 0
    return 1
  fi
  case $svc in
    docker)
      for f in /var/run/docker.pid /var/run/docker-ssd.pid; do
        pid=$(cat "$f" 2>/dev/null || true)
        [ -n "$pid" ] && [ -e "/proc/$pid" ] && return 0
      done
      return 1
      ;;
    containerd) [ -S /run/containerd/containerd.sock ] ;;
    prometheus)
      pid=$(cat /run/prometheus/prometheus.pid 2>/dev/null || cat /run/prometheus.pid 2>/dev/null || true)
      [ -n "$pid" ] && [ -e "/proc/$pid" ]
      ;;
  esac
}
svc_stop() {
  local svc=$1
  log "stopping the $svc service that the package install started"
  if have_systemd; then
    if [ "$svc" = docker ]; then systemctl stop docker.socket docker.service || true; else systemctl stop "$svc.service" || true; fi
  elif [ -x "/etc/init.d/$svc" ]; then
    "/etc/init.d/$svc" stop || true
  fi
}
declare -A WAS_ACTIVE=()
for s in docker containerd prometheus; do
  if svc_active "$s"; then WAS_ACTIVE[$s]=1; else WAS_ACTIVE[$s]=0; fi
done

# --- packages ------------------------------------------------------------------------------------
PKGS=(docker.io busybox-static btrfs-progs fuse-overlayfs attr debootstrap e2fsprogs iproute2 util-linux prometheus)
command -v systemd-analyze >/dev/null 2>&1 || PKGS+=(systemd)
MISSING=()
for p in "${PKGS[@]}"; do installed "$p" || MISSING+=("$p"); done

POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=0
cleanup() { if [ "$ADDED_POLICY" = 1 ]; then rm -f "$POLICY"; fi; }
trap cleanup EXIT

if [ "${#MISSING[@]}" -gt 0 ]; then
  if [ ! -e "$POLICY" ]; then # deny service starts while installing (Debian's invoke-rc.d honours it)
    printf '#!/bin/sh\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
    ADDED_POLICY=1
  fi
  log "apt-get update"
  retry 3 apt-get update -q
  log "installing: ${MISSING[*]}"
  retry 3 apt-get install -y -q --no-install-recommends "${MISSING[@]}"
  log "installed"
else
  log "all packages already installed: ${PKGS[*]}"
fi

for s in docker containerd prometheus; do
  if [ "${WAS_ACTIVE[$s]}" = 0 ] && svc_active "$s"; then svc_stop "$s"; fi
done
if [ "${WAS_ACTIVE[containerd]}" = 0 ] && [ -S /run/containerd/containerd.sock ]; then
  log "WARNING: /run/containerd/containerd.sock still exists: test daemons would share that containerd"
fi

for b in /usr/sbin/dockerd /usr/bin/docker /usr/bin/containerd /usr/sbin/runc /bin/busybox /usr/bin/unshare \
  /usr/bin/chattr /usr/sbin/mkfs.btrfs /usr/bin/promtool /usr/sbin/debootstrap; do
  [ -x "$b" ] || die "$b missing after install"
done
command -v systemd-analyze >/dev/null || die "systemd-analyze missing after install"
log "dockerd: $(/usr/sbin/dockerd --version); promtool: $(/usr/bin/promtool --version 2>&1 | head -1)"

# --- Docker 28.5 in a Debian sid chroot ------------------------------------------------------------
sid_ok() { [ -x "$SID_DIR/usr/sbin/dockerd" ] && "$SID_DIR/usr/sbin/dockerd" --version 2>/dev/null | grep -q '^Docker version'; }

mirror() { # the bookworm archive this machine's apt already uses
  [ -n "${DEBIAN_MIRROR:-}" ] && { echo "$DEBIAN_MIRROR"; return; }
  mirror_candidates | head -1
}
mirror_candidates() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
      { uri = ""; ok = 0; en = 1
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { split($i, a, /[ \t]+/); uri = a[2] }
          if ($i ~ /^Suites:/ && $i ~ /[ \t]bookworm([ \t]|$)/) ok = 1
          if ($i ~ /^Enabled:[ \t]*no/) en = 0
        }
        if (ok && en && uri != "") { print uri; exit } }' "$f"
  done
  if [ -e /etc/apt/sources.list ]; then
    awk '$1 == "deb" && $0 ~ / bookworm / { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list
  fi
}

unmount_under() {
  local dir=$1 mp
  awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print gsub("/", "/", $5), $5 }' /proc/self/mountinfo |
    sort -k1,1nr | cut -d' ' -f2- | while read -r mp; do umount -l "$mp" 2>/dev/null || true; done
}

stop_chroot_daemons() { # anything running from inside the chroot was started by this script's debootstrap
  local dir=$1 p exe
  for p in /proc/[0-9]*; do
    exe=$(readlink "$p/exe" 2>/dev/null || true)
    case $exe in "$dir"/*)
      log "stopping pid ${p#/proc/} ($exe) started inside the chroot"
      kill "${p#/proc/}" 2>/dev/null || true
      ;;
    esac
  done
}

if [ "${SKIP_SID:-0}" = 1 ]; then
  log "SKIP_SID=1: not building $SID_DIR"
elif sid_ok; then
  log "$SID_DIR ok: $("$SID_DIR/usr/sbin/dockerd" --version)"
else
  MIRROR=$(mirror || true)
  TMP_DIR=$SID_DIR.partial
  for attempt in 1 2 3; do
    unmount_under "$TMP_DIR"
    rm -rf "$TMP_DIR"
    t=$(date +%s)
    log "debootstrap $SID_SUITE into $TMP_DIR (attempt $attempt/3${MIRROR:+, mirror $MIRROR})"
    if debootstrap --variant=minbase --include=docker.io "$SID_SUITE" "$TMP_DIR" ${MIRROR:+"$MIRROR"} >/tmp/debootstrap-sid.log 2>&1; then
      stop_chroot_daemons "$TMP_DIR"
      unmount_under "$TMP_DIR"
      if [ -x "$TMP_DIR/usr/sbin/dockerd" ]; then
        [ -e "$SID_DIR" ] && { unmount_under "$SID_DIR"; rm -rf "$SID_DIR"; }
        mv "$TMP_DIR" "$SID_DIR"
        log "debootstrap done in $(($(date +%s) - t))s"
        break
      fi
      log "debootstrap finished but $TMP_DIR/usr/sbin/dockerd is missing"
    else
      log "debootstrap failed after $(($(date +%s) - t))s; last lines:"
      tail -5 /tmp/debootstrap-sid.log || true
      stop_chroot_daemons "$TMP_DIR"
    fi
    [ "$attempt" = 3 ] || sleep $((attempt * 10))
  done
  unmount_under "$TMP_DIR"
  rm -rf "$TMP_DIR"
  sid_ok || die "could not build $SID_DIR (see /tmp/debootstrap-sid.log)"
  log "$SID_DIR: $("$SID_DIR/usr/sbin/dockerd" --version)"
fi

log "done"
