# shellcheck shell=bash
# Common names and functions of the e2e harness (sourced by start, stop, run, in-ns; the
# Python stages, `python -m e2elib STAGE`, take the same names from it: e2elib/harness.py).
#
# The cluster lives in one network namespace (E2E_NETNS) and one private mount namespace held
# by an "anchor" process; every cluster process is started with nsenter into both, so kubelet,
# containerd and the pods see the same mounts and the host sees none of them. Every process the
# harness starts (and everything they fork: shims, containers, gVisor sandboxes) sits in the
# cgroup E2E_CGROUP of every hierarchy, which is how stop finds and ends all of them.

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
E2E_CACHE="${E2E_CACHE:-/var/cache/esp-e2e}"
E2E_STATE="${E2E_STATE:-/run/esp-e2e}"   # pids/, logs/, certs/, config/, kubeconfig (host-visible)
E2E_DATA="${E2E_DATA:-/var/lib/esp-e2e}" # the node's /var/lib and /var/log (on disk)
E2E_NETNS="${E2E_NETNS:-esp-e2e}"
E2E_CGROUP="${E2E_CGROUP:-esp-e2e}" # cgroup (v1 hierarchies) of everything started
E2E_NODE_NAME="${E2E_NODE_NAME:-e2e-node}"
E2E_NODE_IP="${E2E_NODE_IP:-10.250.0.2}"
E2E_POD_CIDR="${E2E_POD_CIDR:-10.244.0.0/24}"
E2E_CLUSTER_CIDR="${E2E_CLUSTER_CIDR:-10.244.0.0/16}"
E2E_SERVICE_CIDR="${E2E_SERVICE_CIDR:-10.96.0.0/16}"
E2E_API_SERVICE_IP="${E2E_API_SERVICE_IP:-10.96.0.1}"
E2E_DNS_IP="${E2E_DNS_IP:-10.96.0.10}"
E2E_KUBECONFIG="$E2E_STATE/kubeconfig"
# The HTTPS Git server in place of GitHub (start runs it, deploy publishes the repository in it).
E2E_GIT_PORT="${E2E_GIT_PORT:-8443}"
# The node's OCI registry (tests/e2e/start): every image that is not the harness's own
# (esp.local/...) is pushed there as E2E_REGISTRY/<upstream host>/<path>:<tag>, and containerd
# pulls it under its upstream name through one hosts.toml per upstream host (cluster/configs).
E2E_REGISTRY="${E2E_REGISTRY:-$E2E_NODE_IP:5000}"
E2E_REGISTRY_UPSTREAMS="${E2E_REGISTRY_UPSTREAMS:-quay.io ghcr.io docker.io public.ecr.aws registry.k8s.io}"
# The registry's CA alone (skopeo reads every *.crt of a cert dir and wants a *.cert per *.key).
E2E_REGISTRY_TRUST="$E2E_STATE/certs/registry-trust"
# Host state snapshot taken by start before anything is created; compared after start and stop.
E2E_HOST_BEFORE="${E2E_HOST_BEFORE:-${TMPDIR:-/tmp}/esp-e2e-host-before.txt}"
# The Python stages' interpreter (make venv).
E2E_PYTHON="${E2E_PYTHON:-$(cd "$E2E_DIR/../.." && pwd)/.venv/bin/python}"
export E2E_DIR E2E_CACHE E2E_STATE E2E_DATA E2E_NETNS E2E_KUBECONFIG E2E_REGISTRY

e2e_log() { printf '%s e2e: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
e2e_die() {
  printf '%s e2e: ERROR: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2
  exit 1
}

# The build's outputs (KUBE_BIN_DIR, KUBECTL, RUNSC, CONTAINERD_SHIM_RUNSC, IMAGES_LIST, ...).
e2e_load_build_env() {
  local env="$E2E_CACHE/build.env"
  [[ -r $env ]] || e2e_die "$env missing: run tests/e2e/build first"
  # shellcheck source=/dev/null
  source "$env"
}

e2e_anchor_pid() {
  local pid
  pid="$(cat "$E2E_STATE/pids/anchor.pid" 2>/dev/null)" || return 1
  e2e_pid_alive "$pid" || return 1
  printf '%s\n' "$pid"
}

e2e_pid_alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

# python -m e2elib STAGE ARGS...: a stage after start (cluster-check, deploy, check, breaks,
# host-state, report).
e2e_py() {
  PYTHONPATH="$E2E_DIR${PYTHONPATH:+:$PYTHONPATH}" "$E2E_PYTHON" -m e2elib "$@"
}

# containerd's ctr on the node's containerd (e.g. e2e_ctr -n k8s.io images import TAR).
e2e_ctr() {
  "$E2E_DIR/in-ns" "${CONTAINERD_BIN_DIR:-$E2E_CACHE/bin/containerd}/ctr" \
    --address /run/containerd/containerd.sock "$@"
}

e2e_kubectl() {
  local kubectl="${KUBECTL:-$E2E_CACHE/bin/kubectl}"
  "$E2E_DIR/in-ns" "$kubectl" --kubeconfig "$E2E_KUBECONFIG" "$@"
}

# Paths of the cgroup E2E_CGROUP/SUB in every mounted v1 hierarchy (and the v2 one, if any).
e2e_cgroup_dirs() {
  local sub="${1:-}" mnt
  for mnt in /sys/fs/cgroup/*; do
    [[ -e $mnt/cgroup.procs ]] && printf '%s\n' "$mnt/$E2E_CGROUP${sub:+/$sub}"
  done
}

# Create E2E_CGROUP[/SUB] in every hierarchy, one level at a time (a new cpuset must get its
# cpus and mems from its parent before it can take tasks).
e2e_cgroup_create() {
  local mnt dir part parts
  IFS=/ read -ra parts <<<"$E2E_CGROUP${1:+/$1}"
  for mnt in /sys/fs/cgroup/*; do
    [[ -e $mnt/cgroup.procs ]] || continue
    dir=$mnt
    for part in "${parts[@]}"; do
      [[ -d $dir/$part ]] || {
        mkdir "$dir/$part"
        if [[ -e $dir/cpuset.cpus ]]; then
          cat "$dir/cpuset.cpus" >"$dir/$part/cpuset.cpus"
          cat "$dir/cpuset.mems" >"$dir/$part/cpuset.mems"
        fi
      }
      dir=$dir/$part
    done
  done
}

# Every PID in E2E_CGROUP (pids hierarchy, recursive): all that the harness started, directly or not.
e2e_cgroup_pids() {
  local root=/sys/fs/cgroup/pids/$E2E_CGROUP
  [[ -d $root ]] || return 0
  find "$root" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -un
}

# Start NAME as a daemon: inside the namespaces (unless E2E_HOST_NS=1), in E2E_CGROUP/system,
# its own session, output to $E2E_STATE/logs/NAME.log, PID in $E2E_STATE/pids/NAME.pid (and NAME
# appended to $E2E_STATE/pids/order: stop ends them in reverse).
e2e_daemon() {
  local name="$1"
  shift
  local pidfile="$E2E_STATE/pids/$name.pid" log="$E2E_STATE/logs/$name.log" procs=()
  mkdir -p "$E2E_STATE/pids" "$E2E_STATE/logs"
  if e2e_pid_alive "$(cat "$pidfile" 2>/dev/null)"; then
    e2e_die "$name already runs (PID $(cat "$pidfile"))"
  fi
  # Only the pids and freezer hierarchies: enough to find and stop everything; the memory
  # accounting of the session that runs the harness stays as it is.
  procs=("/sys/fs/cgroup/pids/$E2E_CGROUP/system/cgroup.procs"
    "/sys/fs/cgroup/freezer/$E2E_CGROUP/system/cgroup.procs")
  local enter=()
  if [[ ${E2E_HOST_NS:-0} != 1 ]]; then
    enter=("$E2E_DIR/in-ns")
  fi
  # The wrapper shell writes its own PID and joins the cgroups, then execs the command (same PID).
  # shellcheck disable=SC2016
  setsid bash -c '
    pidfile=$1; shift; n=$1; shift
    for ((i = 0; i < n; i++)); do echo $$ >"$1"; shift; done
    echo $$ >"$pidfile"
    exec "$@"' e2e-daemon "$pidfile" "${#procs[@]}" "${procs[@]}" "${enter[@]}" "$@" \
    >>"$log" 2>&1 </dev/null &
  echo "$name" >>"$E2E_STATE/pids/order"
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -s $pidfile ]] && break
    sleep 0.1
  done
  e2e_log "started $name (PID $(cat "$pidfile" 2>/dev/null || echo '?'), log $log)"
}

# Wait up to SECONDS for CMD to succeed; on timeout, fail with WHAT.
e2e_wait() {
  local seconds="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || e2e_die "timed out after ${seconds}s waiting for $what"
    sleep 0.5
  done
}

# Compare the host with start's snapshot (host-state --compare ... [--running]). A difference
# fails in CI (CI=true: nothing else runs there); on a shared machine another program (e.g. a
# Docker engine starting containers) may change the host meanwhile, so it is a loud warning.
# Usage: e2e_host_unchanged --running|--stopped
e2e_host_unchanged() {
  [[ -r $E2E_HOST_BEFORE ]] || return 0
  local running=()
  [[ $1 == --running ]] && running=(--running)
  e2e_py host-state --compare "$E2E_HOST_BEFORE" "${running[@]}" && return 0
  [[ ${CI:-} == true ]] && return 1
  e2e_log "WARNING: the host differs from the snapshot (above); not failing outside CI (CI=true fails)"
}

# The tail of every component's log, for a failure.
e2e_dump_logs() {
  local lines="${1:-40}" f
  for f in "$E2E_STATE"/logs/*.log; do
    [[ -e $f ]] || continue
    printf '\n===== %s (last %s lines) =====\n' "$f" "$lines" >&2
    tail -n "$lines" "$f" >&2
  done
}

# e2e_registry_ref REF: where the e2e registry keeps the upstream image REF, by the path prefix
# its hosts.toml gives the upstream host (quay.io/argoproj/argocd:v3.6.2 ->
# E2E_REGISTRY/quay.io/argoproj/argocd:v3.6.2). Docker Hub's short names are spelled out as
# containerd spells them (postgres:17 -> E2E_REGISTRY/docker.io/library/postgres:17), an untagged
# ref is :latest. Fails for a host no hosts.toml routes and for a ref by digest (a push from an
# archive makes a manifest of its own, with another digest).
e2e_registry_ref() {
  local ref="$1" host="" path="$1"
  if [[ $ref == */* ]]; then
    host="${ref%%/*}"
    path="${ref#*/}"
  fi
  if [[ -z $host || ($host != *.* && $host != *:* && $host != localhost) ]]; then
    host=docker.io path="$ref"
  fi
  [[ $host == docker.io && $path != */* ]] && path="library/$path"
  if [[ $path == *@* ]]; then
    echo "e2e_registry_ref: $ref is a reference by digest; push it by tag" >&2
    return 1
  fi
  [[ ${path##*/} == *:* ]] || path="$path:latest"
  if [[ " $E2E_REGISTRY_UPSTREAMS " != *" $host "* ]]; then
    echo "e2e_registry_ref: no hosts.toml routes $host (of $ref) to the registry; routed: $E2E_REGISTRY_UPSTREAMS" >&2
    return 1
  fi
  printf '%s/%s/%s\n' "$E2E_REGISTRY" "$host" "$path"
}

# e2e_registry_hosts_toml UPSTREAM CA: containerd's hosts.toml (docs/hosts.md of containerd v2.1)
# for the registry host namespace UPSTREAM: the e2e registry, trusted through CA, is the server,
# its API root /v2/UPSTREAM (override_path: the prefix is part of every repository name there).
# It is the `server`, not a `[host]` entry: a host entry would be tried first and UPSTREAM itself
# after it, so an image missing here would be looked for on the internet.
e2e_registry_hosts_toml() {
  cat <<TOML
# Pulls of $1/... go to the e2e registry, repositories $1/... (tests/e2e/cluster/configs).
server = "https://$E2E_REGISTRY/v2/$1"
override_path = true
capabilities = ["pull", "resolve"]
ca = "$2"
TOML
}

# e2e_push_images: push every image of IMAGES_LIST (build.env) that is not the harness's own
# (esp.local/..., imported by start) to the registry, as e2e_registry_ref names it, with skopeo
# inside the namespaces. A push is skipped when the registry already has that tag with the same
# image config (the archive's image ID): on a kept cluster a second call uploads only what was
# rebuilt. Prints one line per image.
e2e_push_images() {
  local ref tar dest want have
  local skopeo=(skopeo --policy "$E2E_STATE/config/registry-policy.json")
  while read -r ref tar; do
    [[ -n $ref && $ref != \#* && $ref != esp.local/* ]] || continue
    dest="$(e2e_registry_ref "$ref")" || return 1
    want="$("${skopeo[@]}" inspect --config --raw "docker-archive:$tar" | sha256sum)" \
      || {
        echo "cannot read the image config in $tar ($ref)" >&2
        return 1
      }
    want="${want%% *}"
    # Not there yet: skopeo fails ("manifest unknown").
    have="$("$E2E_DIR/in-ns" "${skopeo[@]}" inspect --cert-dir "$E2E_REGISTRY_TRUST" --config --raw "docker://$dest" \
      2>/dev/null | sha256sum)" || have=none
    have="${have%% *}"
    if [[ $have == "$want" ]]; then
      echo "$ref: already in the registry as $dest (config sha256:$want)"
      continue
    fi
    "$E2E_DIR/in-ns" "${skopeo[@]}" copy --quiet --dest-cert-dir "$E2E_REGISTRY_TRUST" \
      "docker-archive:$tar" "docker://$dest" || {
      echo "push of $tar ($ref) to $dest failed" >&2
      return 1
    }
    echo "$ref: pushed as $dest (config sha256:$want)"
  done <"$IMAGES_LIST"
}
