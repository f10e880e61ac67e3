#!/usr/bin/env python3
"""Static checks of rfarm's Kubernetes manifests (no cluster needed).

    python3 tests/deploy/check_manifests.py deploy/k8s

Every .yaml/.yml/.json file under the folder (subfolders too) must parse and
each document must have apiVersion, kind and metadata.name, in namespace
rfarm. The files directly in the folder (what `kubectl apply -f DIR` applies)
must also hold:
  - a Redis started with --appendonly yes and --appendfsync everysec;
  - one coordinator (a StatefulSet with 1 replica) binding its worker and
    client endpoints on a non-loopback address, whose --spool directory is on
    a PersistentVolumeClaim-backed volume;
  - workers whose --drain-ms (default 30000) is below the pod's
    terminationGracePeriodSeconds (default 30) by at least MARGIN_MS, and
    whose --id $(VAR), if used, names a variable the container defines.
Patches in subfolders must name an object and containers that exist.

Exit status: 0 all good, 1 problems (one line each), 2 usage, 77 skipped
(PyYAML is not installed).
"""
import os
import sys

MARGIN_MS = 5000  # time left, after the drain, to hand segments back and say bye
NAMESPACE = "rfarm"
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job")

try:
    import yaml
except ImportError:
    print("check_manifests: skipped: PyYAML is not installed (pip install pyyaml, or apt-get install python3-yaml)")
    sys.exit(77)

problems = []


def problem(where, msg):
    problems.append(f"{where}: {msg}")


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        problem(path, f"does not parse: {e}".replace("\n", " "))
        return []
    out = []
    for i, d in enumerate(docs):
        where = f"{path}#{i}"
        if not isinstance(d, dict):
            problem(where, "document is not a mapping")
            continue
        meta = d.get("metadata") if isinstance(d.get("metadata"), dict) else {}
        for key, val in (("apiVersion", d.get("apiVersion")), ("kind", d.get("kind")),
                         ("metadata.name", meta.get("name"))):
            if not isinstance(val, str) or not val:
                problem(where, f"missing {key}")
        if d.get("kind") == "Namespace":
            if meta.get("name") != NAMESPACE:
                problem(where, f"namespace is {meta.get('name')!r}, expected {NAMESPACE!r}")
        elif meta.get("namespace") != NAMESPACE:
            problem(where, f"metadata.namespace is {meta.get('namespace')!r}, expected {NAMESPACE!r}")
        out.append((where, d))
    return out


def pod_spec(d):
    spec = d.get("spec") or {}
    if d.get("kind") in WORKLOADS:
        return ((spec.get("template") or {}).get("spec")) or {}
    return {}


def argv(c):
    return [str(x) for x in (c.get("command") or []) + (c.get("args") or [])]


def opt(words, name):
    """Value of --name in words ('--name v' or '--name=v'), or None."""
    for i, w in enumerate(words):
        if w == name and i + 1 < len(words):
            return words[i + 1]
        if w.startswith(name + "="):
            return w[len(name) + 1:]
    return None


def runs(c, program):
    return any(os.path.basename(w) == program for w in argv(c)[:2])


def containers_running(docs, program):
    for where, d in docs:
        if d.get("kind") not in WORKLOADS:
            continue
        ps = pod_spec(d)
        for c in ps.get("containers") or []:
            if runs(c, program):
                yield where, d, ps, c


def check_redis(docs):
    found = list(containers_running(docs, "redis-server"))
    if not found:
        problem("redis", "no container runs redis-server")
    for where, _, _, c in found:
        words = argv(c)
        if opt(words, "--appendonly") != "yes":
            problem(where, "redis-server lacks --appendonly yes (README: State in Redis)")
        if opt(words, "--appendfsync") != "everysec":
            problem(where, "redis-server lacks --appendfsync everysec")


def pvc_volumes(d, ps):
    names = {((t.get("metadata") or {}).get("name"))
             for t in ((d.get("spec") or {}).get("volumeClaimTemplates") or [])}
    names |= {v.get("name") for v in ps.get("volumes") or [] if v.get("persistentVolumeClaim")}
    return names - {None}


def under(path, mount):
    path, mount = os.path.normpath(path), os.path.normpath(mount)
    return path == mount or path.startswith(mount.rstrip("/") + "/")


def check_coordinator(docs):
    found = list(containers_running(docs, "rfarm-coordinator"))
    if len(found) != 1:
        problem("coordinator", f"expected exactly one rfarm-coordinator container, found {len(found)}")
    for where, d, ps, c in found:
        if d.get("kind") != "StatefulSet":
            problem(where, f"coordinator is a {d.get('kind')}; use a StatefulSet (a singleton that keeps its spool)")
        if (d.get("spec") or {}).get("replicas", 1) != 1:
            problem(where, "coordinator replicas must be 1")
        words = argv(c)
        for flag in ("--worker-bind", "--client-bind"):
            ep = opt(words, flag)
            if ep is None or "127.0.0.1" in ep or "localhost" in ep:
                problem(where, f"{flag} must be given and not bind loopback (got {ep!r})")
        spool = opt(words, "--spool")
        if not spool or not spool.startswith("/"):
            problem(where, f"--spool must be an absolute path (got {spool!r})")
            continue
        pvcs = pvc_volumes(d, ps)
        mounts = [m for m in c.get("volumeMounts") or [] if under(spool, m.get("mountPath", ""))]
        if not mounts:
            problem(where, f"no volume is mounted at the spool {spool}")
        elif max(mounts, key=lambda m: len(m.get("mountPath", ""))).get("name") not in pvcs:
            problem(where, f"the spool {spool} is not on a PersistentVolumeClaim-backed volume")


def check_workers(docs):
    found = list(containers_running(docs, "rfarm-worker"))
    if not found:
        problem("workers", "no container runs rfarm-worker")
    for where, _, ps, c in found:
        words = argv(c)
        drain = opt(words, "--drain-ms") or "30000"
        grace = ps.get("terminationGracePeriodSeconds", 30)
        try:
            drain_ms, grace_ms = int(drain), int(grace) * 1000
        except ValueError:
            problem(where, f"--drain-ms {drain!r} or terminationGracePeriodSeconds {grace!r} is not an integer")
            continue
        if drain_ms + MARGIN_MS > grace_ms:
            problem(where, f"--drain-ms {drain_ms} must be below terminationGracePeriodSeconds*1000 "
                           f"({grace_ms}) by at least {MARGIN_MS} ms")
        wid = opt(words, "--id")
        if wid and wid.startswith("$(") and wid.endswith(")"):
            var = wid[2:-1]
            if var not in {e.get("name") for e in c.get("env") or []}:
                problem(where, f"--id {wid} but the container defines no {var}")


def check_patches(base, patches):
    objs = {(d.get("kind"), (d.get("metadata") or {}).get("name")): d for _, d in base}
    for where, p in patches:
        key = (p.get("kind"), (p.get("metadata") or {}).get("name"))
        if key not in objs:
            problem(where, f"patches {key[0]}/{key[1]}, which the base manifests do not define")
            continue
        have = {c.get("name") for c in pod_spec(objs[key]).get("containers") or []}
        for c in pod_spec(p).get("containers") or []:
            if c.get("name") not in have:
                problem(where, f"patches container {c.get('name')!r}, not in {key[0]}/{key[1]}")


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        print("usage: check_manifests.py DIR   (e.g. deploy/k8s)", file=sys.stderr)
        return 2
    root = sys.argv[1]
    base, patches, nfiles = [], [], 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith((".yaml", ".yml", ".json")):
                nfiles += 1
                docs = load(os.path.join(dirpath, name))
                (base if dirpath == root else patches).extend(docs)
    if not base:
        problem(root, "no manifests directly in this folder")
    else:
        check_redis(base)
        check_coordinator(base)
        check_workers(base)
        check_patches(base, patches)
    for p in problems:
        print("check_manifests: " + p)
    ndocs = len(base) + len(patches)
    print(f"check_manifests: {nfiles} files, {ndocs} documents, "
          f"{'OK' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
