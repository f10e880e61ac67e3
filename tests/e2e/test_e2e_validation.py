#!/usr/bin/env python3
"""test_e2e_validation — a bad spec is refused whole, with every reason.

Through the real CLI and coordinator: a spec with a problem exits 1, prints
no job id, and says on stderr which field is wrong and why ("field:
reason", one line per problem, all problems at once). A refused spec leaves
no trace: no job in the status API and no job key in Redis. A good spec
sent to the same farm afterwards is accepted and rendered, so the refusals
above came from validation, not from a broken farm.
"""

import copy
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import farm  # noqa: E402

suite = farm.Suite("test_e2e_validation")


def field_line(field):
    """A stderr line that names `field` followed by a colon."""
    return re.compile(r"(^|[\s'\"`])" + re.escape(field) + r"['\"`]?\s*:", re.M)


def refused(f, label, spec, fields):
    """Submit `spec`; it must be refused naming every field of `fields`."""
    r = f.submit_raw(spec)
    print(f"   {label}: exit {r.returncode}; stderr: {r.stderr.strip()!r}")
    suite.equal(r.returncode, 1, f"{label}: submit exits 1")
    suite.equal(r.stdout.strip(), "", f"{label}: no job id on stdout")
    for fld in fields:
        suite.check(field_line(fld).search(r.stderr), f"{label}: stderr has a line '{fld}: reason'",
                    repr(r.stderr.strip()))
    return r


def test_bad_specs_are_refused():
    with suite.farm(workers=1, name="validation") as f:
        base = farm.synthetic_spec(None, f.out("x.y4m"), frames=20, width=32, height=32)

        def variant(**changes):
            s = copy.deepcopy(base)
            for k, v in changes.items():
                if k == "output_path":
                    s["output"]["path"] = v
                else:
                    s[k] = v
            return s

        refused(f, "odd width", variant(width=161), ["width"])
        refused(f, "overlap >= segment", variant(segment_frames=16, overlap_frames=16), ["overlap_frames"])
        refused(f, "unknown engine", variant(engine="teleport"), ["engine"])
        refused(f, "missing output directory",
                variant(output_path=os.path.join(f.tmp, "no", "such", "dir", "x.y4m")), ["output.path"])
        refused(f, "unknown field", variant(colour="blue"), ["colour"])
        r = refused(f, "two problems", variant(height=97, frames=0), ["height", "frames"])
        lines = r.stderr.splitlines()
        h = [i for i, ln in enumerate(lines) if field_line("height").search(ln)]
        fr = [i for i, ln in enumerate(lines) if field_line("frames").search(ln)]
        suite.check(h and fr and set(h) != set(fr), "two problems: one line each", lines)

        r = f.submit_raw("{ this is not json")
        print(f"   not JSON: exit {r.returncode}; stderr: {r.stderr.strip()!r}")
        suite.check(r.returncode != 0 and r.stdout.strip() == "", "a spec that is not JSON is refused",
                    f"exit {r.returncode}, stdout {r.stdout!r}")

        st = f.status_all()
        suite.equal(st.get("jobs"), [], "after the refusals status --json lists no job")
        suite.equal(f.redis_keys(f"{f.prefix}job:*"), [], f"after the refusals redis has no {f.prefix}job:* key")
        zcard = f.redis_cli("ZCARD", f"{f.prefix}jobs")
        suite.equal(zcard, "0", f"after the refusals {f.prefix}jobs is empty")

        # A good spec, with a path relative to the CLI's working directory.
        good = variant(id="valid-1", output_path="out/ok.y4m")
        job = f.submit(good, cwd=f.tmp)
        suite.equal(job, "valid-1", "a valid spec is accepted")
        if f.wait_done(job, timeout=60):
            want = os.path.join(f.tmp, "out", "ok.y4m")
            suite.equal(f.status(job).get("output"), want, "relative output path resolved against the CLI's cwd")
            suite.check(os.path.isfile(want), "the output is where the relative path said", want)
        r = f.submit_raw(good, cwd=f.tmp)
        print(f"   duplicate id: exit {r.returncode}; stderr: {r.stderr.strip()!r}")
        suite.equal(r.returncode, 1, "a second job with the same id is refused (exit 1)")
        suite.check(field_line("id").search(r.stderr), "duplicate id: stderr has a line 'id: reason'",
                    repr(r.stderr.strip()))
        ids = [j.get("id") for j in f.status_all().get("jobs", [])]
        suite.equal(ids, ["valid-1"], "status lists exactly the one accepted job")
        suite.equal(f.redis_keys(f"{f.prefix}job:*"), [f"{f.prefix}job:valid-1"] +
                    [k for k in f.redis_keys(f"{f.prefix}job:valid-1:*")],
                    "redis holds only the accepted job's keys")


suite.case(test_bad_specs_are_refused)
sys.exit(suite.finish())
