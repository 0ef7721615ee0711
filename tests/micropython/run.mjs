// Runs segbind's firmware core on the real MicroPython VM (the WebAssembly build
// of MicroPython, npm @micropython/micropython-webassembly-pyscript) under Node.
//
//   node tests/micropython/run.mjs test FILE.py... [options]
//       Imports each test module and runs every function named test_* (sorted by
//       name), printing "PASS module.test" or "FAIL module.test: ..." per test and
//       a final line "SEGBIND_MP_SUMMARY {json}" (passed, failed, total, names of
//       failures, implementation). Exits 1 when any test fails or none ran.
//
//   node tests/micropython/run.mjs exec SCRIPT.py|- [options] [-- ARG...]
//       Executes one script as __main__ (SCRIPT "-" = source read from stdin) with
//       sys.argv = [script, ARG...]; its stdout is passed through unchanged. Exits
//       with the script's SystemExit code, 1 on an uncaught exception.
//
// Options:
//   --heap SIZE              MicroPython heap, e.g. 64m (default 64m; k/m suffixes)
//   --file VFS_PATH=HOST     copy one more host file into the VM's filesystem
//   --firmware DIR           use DIR's *.py/*.mpy as /repo/firmware instead of the
//                            repository's firmware/ (e.g. mpy-cross output)
//
// The VM's filesystem mirrors the repository under /repo: firmware/**/*.py,
// tests/vectors/*.json, the .py files beside each test file (so helpers import)
// and the script; files from outside the repository go to /ext/<absolute path>.
// /repo/firmware and each test or script directory are on sys.path, so
// `import segbind_core` works.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "..", "..");
const VFS_REPO = "/repo";
const SUMMARY_PREFIX = "SEGBIND_MP_SUMMARY ";

function usage(message) {
  if (message) process.stderr.write("run.mjs: " + message + "\n");
  process.stderr.write(
    "usage: node run.mjs test FILE.py... [--heap SIZE] [--file VFS=HOST] [--firmware DIR]\n" +
    "       node run.mjs exec SCRIPT.py|- [--heap SIZE] [--file VFS=HOST] [--firmware DIR] [-- ARG...]\n");
  process.exit(2);
}

function parseSize(text) {
  const m = /^(\d+)([kKmM]?)$/.exec(text);
  if (!m) usage("bad size " + text);
  const unit = { "": 1, k: 1024, m: 1024 * 1024 }[m[2].toLowerCase()];
  return parseInt(m[1], 10) * unit;
}

function parseArgs(argv) {
  const opts = { mode: argv[0], inputs: [], heap: 64 * 1024 * 1024, files: [], args: [],
    firmware: null };
  if (opts.mode !== "test" && opts.mode !== "exec") usage("unknown mode " + opts.mode);
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") { opts.args = argv.slice(i + 1); break; }
    if (a === "--heap") { opts.heap = parseSize(argv[++i] || ""); continue; }
    if (a === "--firmware") { opts.firmware = argv[++i] || usage("--firmware wants a directory"); continue; }
    if (a === "--file") {
      const spec = argv[++i] || "";
      const eq = spec.indexOf("=");
      if (eq <= 0 || !spec.startsWith("/")) usage("--file wants /VFS/PATH=HOST_PATH");
      opts.files.push([spec.slice(0, eq), spec.slice(eq + 1)]);
      continue;
    }
    if (a.startsWith("--")) usage("unknown option " + a);
    opts.inputs.push(a);
  }
  if (opts.inputs.length === 0) usage("nothing to run");
  if (opts.mode === "exec" && opts.inputs.length !== 1) usage("exec runs exactly one script");
  return opts;
}

// ---- the VM's filesystem -------------------------------------------------------

function mkdirs(FS, dir) {
  let cur = "";
  for (const part of dir.split("/").filter(Boolean)) {
    cur += "/" + part;
    try { FS.mkdir(cur); } catch (e) { /* exists */ }
  }
}

function putFile(FS, vfsPath, data) {
  mkdirs(FS, path.posix.dirname(vfsPath));
  FS.writeFile(vfsPath, data);
}

function walk(dir, keep, out = []) {
  if (!fs.existsSync(dir)) return out;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== "__pycache__" && entry.name !== "node_modules") walk(full, keep, out);
    } else if (keep(entry.name)) {
      out.push(full);
    }
  }
  return out;
}

// Repository files keep their place under /repo; anything else goes under /ext.
function vfsPathOf(hostPath) {
  const abs = path.resolve(hostPath);
  const rel = path.relative(REPO, abs);
  if (rel.startsWith("..") || path.isAbsolute(rel)) return "/ext" + abs.split(path.sep).join("/");
  return VFS_REPO + "/" + rel.split(path.sep).join("/");
}

function copyIntoVm(FS, hostPath) {
  const vfs = vfsPathOf(hostPath);
  putFile(FS, vfs, fs.readFileSync(hostPath));
  return vfs;
}

// ---- stdout: bytes from the VM, written through in lines -----------------------

function makeSink(stream) {
  let buf = [];
  const flush = () => {
    if (buf.length) { stream.write(Buffer.from(buf)); buf = []; }
  };
  const put = (chunk) => {
    for (const c of chunk) {
      buf.push(c);
      if (c === 10 || buf.length >= 65536) flush();
    }
  };
  return { put, flush };
}

// ---- Python drivers ---------------------------------------------------------------

const PY_PRELUDE = (extraPaths) => `
import sys
for _p in ${JSON.stringify(extraPaths)}:
    if _p not in sys.path:
        sys.path.insert(0, _p)
`;

const PY_TEST_DRIVER = `
import sys, json
_passed = 0
_failed = []
_total = 0
for _mod_name in _SEGBIND_MODULES:
    try:
        _mod = __import__(_mod_name)
    except Exception as _e:
        print("FAIL %s (import): %s: %s" % (_mod_name, type(_e).__name__, _e))
        sys.print_exception(_e)
        _failed.append(_mod_name)
        continue
    _names = sorted(n for n in dir(_mod) if n.startswith("test_") and callable(getattr(_mod, n)))
    for _n in _names:
        _total += 1
        _full = _mod_name + "." + _n
        try:
            getattr(_mod, _n)()
        except Exception as _e:
            print("FAIL %s: %s: %s" % (_full, type(_e).__name__, _e))
            sys.print_exception(_e)
            _failed.append(_full)
        else:
            print("PASS " + _full)
            _passed += 1
print("${SUMMARY_PREFIX}" + json.dumps({
    "passed": _passed, "failed": len(_failed), "total": _total, "failures": _failed,
    "implementation": sys.implementation.name,
    "version": ".".join(str(v) for v in sys.implementation.version[:3]),
}))
_SEGBIND_OK = _passed > 0 and not _failed
`;

const PY_EXEC_DRIVER = `
import sys
_SEGBIND_EXIT = 0
sys.argv[:] = _SEGBIND_ARGV
try:
    with open(_SEGBIND_SCRIPT) as _f:
        _src = _f.read()
    exec(compile(_src, _SEGBIND_SCRIPT, "exec"), {"__name__": "__main__", "__file__": _SEGBIND_SCRIPT})
except SystemExit as _e:
    _c = _e.args[0] if _e.args else 0
    if _c is None:
        _SEGBIND_EXIT = 0
    elif isinstance(_c, int):
        _SEGBIND_EXIT = _c
    else:
        print(_c)
        _SEGBIND_EXIT = 1
except BaseException as _e:
    sys.print_exception(_e, sys.stderr)
    _SEGBIND_EXIT = 1
`;

// ---- main ---------------------------------------------------------------------------

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const out = makeSink(process.stdout);
  const err = makeSink(process.stderr);
  const mp = await loadMicroPython({
    heapsize: opts.heap,
    linebuffer: false,
    stdout: (bytes) => out.put(bytes),
    stderr: (bytes) => err.put(bytes),
  });
  const FS = mp.FS;

  if (opts.firmware === null) {
    for (const f of walk(path.join(REPO, "firmware"), (n) => n.endsWith(".py"))) copyIntoVm(FS, f);
  } else {
    const dir = path.resolve(opts.firmware);
    const compiled = walk(dir, (n) => n.endsWith(".py") || n.endsWith(".mpy"));
    if (compiled.length === 0) usage("no .py or .mpy files in " + dir);
    for (const f of compiled) {
      const rel = path.relative(dir, f).split(path.sep).join("/");
      putFile(FS, VFS_REPO + "/firmware/" + rel, fs.readFileSync(f));
    }
  }
  for (const f of walk(path.join(REPO, "tests", "vectors"), (n) => n.endsWith(".json"))) copyIntoVm(FS, f);
  for (const [vfs, host] of opts.files) putFile(FS, vfs, fs.readFileSync(host));

  const sysPaths = [VFS_REPO + "/firmware"];
  let code = 0;
  try {
    if (opts.mode === "test") {
      const modules = [];
      for (const input of opts.inputs) {
        const dir = path.dirname(path.resolve(input));
        for (const f of walk(dir, (n) => n.endsWith(".py"))) {
          if (path.dirname(f) === dir) copyIntoVm(FS, f);  // the test file and its helpers
        }
        const vfs = vfsPathOf(input);
        const vdir = path.posix.dirname(vfs);
        if (!sysPaths.includes(vdir)) sysPaths.push(vdir);
        modules.push(path.basename(input, ".py"));
      }
      mp.runPython(PY_PRELUDE(sysPaths) + "_SEGBIND_MODULES = " + JSON.stringify(modules) + "\n");
      mp.runPython(PY_TEST_DRIVER);
      code = mp.globals.get("_SEGBIND_OK") ? 0 : 1;
    } else {
      const input = opts.inputs[0];
      let vfs;
      if (input === "-") {
        vfs = "/stdin_script.py";
        putFile(FS, vfs, fs.readFileSync(0));
      } else {
        vfs = vfsPathOf(input);
        putFile(FS, vfs, fs.readFileSync(input));
        sysPaths.push(path.posix.dirname(vfs));
      }
      mp.runPython(PY_PRELUDE(sysPaths) +
        "_SEGBIND_SCRIPT = " + JSON.stringify(vfs) + "\n" +
        "_SEGBIND_ARGV = " + JSON.stringify([vfs, ...opts.args]) + "\n");
      mp.runPython(PY_EXEC_DRIVER);
      code = mp.globals.get("_SEGBIND_EXIT");
    }
  } catch (e) {
    if (e && e.name === "PythonError") {
      err.put(Buffer.from("run.mjs: uncaught " + e.message + "\n"));
    } else {
      err.put(Buffer.from("run.mjs: " + (e && e.stack ? e.stack.split("\n")[0] : String(e)) + "\n"));
    }
    code = 1;
  }
  out.flush();
  err.flush();
  process.exitCode = code;
}

main();
