"""Fast tests for foundational/microgpt.py: the autograd, the fused ops, the loader, the helpers.

Every gradient is checked against central finite differences, and every fused op also
against the same computation built from the Value primitives (the *_ref functions
below, which tests/bench_autograd.py also uses as the "unfused" model).
"""

import gc
import http.server
import math
import os
import random
import socket
import subprocess
import sys
import threading

import pytest

import microgpt
from gradcheck import check_grads, rel_err, same_value_and_gradient, value_central_difference, weighted_sum
from microgpt import Value, cross_entropy, linear, rmsnorm, softmax

REL_TOL = 1e-6


# --- the same computations from primitives only: the reference each fused op must match ---


def linear_ref(x, w):
    return [sum((wi * xi for wi, xi in zip(row, x)), Value(0.0)) for row in w]


def softmax_ref(logits):
    m = max(z.data for z in logits)  # a constant shift: it carries no gradient
    exps = [(z - m).exp() for z in logits]
    total = sum(exps, Value(0.0))
    return [e / total for e in exps]


def cross_entropy_ref(logits, target):
    return -softmax_ref(logits)[target].log()


def rmsnorm_ref(x, eps=1e-5):
    ms = sum((xi * xi for xi in x), Value(0.0)) / len(x)
    r = (ms + eps) ** -0.5
    return [xi * r for xi in x]


PRIMITIVES = {
    "add": (lambda v: v[0] + v[1], [0.7, -1.3]),
    "radd": (lambda v: 2.5 + v[0], [0.7]),
    "sub": (lambda v: v[0] - v[1], [0.7, -1.3]),
    "rsub": (lambda v: 2.5 - v[0], [0.7]),
    "mul": (lambda v: v[0] * v[1], [0.7, -1.3]),
    "rmul": (lambda v: 2.5 * v[0], [0.7]),
    "truediv": (lambda v: v[0] / v[1], [0.7, -1.3]),
    "rtruediv": (lambda v: 2.5 / v[0], [0.7]),
    "pow": (lambda v: v[0] ** 3, [0.7]),
    "pow_negative": (lambda v: v[0] ** -0.5, [1.7]),
    "neg": (lambda v: -v[0], [0.7]),
    "exp": (lambda v: v[0].exp(), [0.7]),
    "log": (lambda v: v[0].log(), [0.7]),
    "relu_positive": (lambda v: v[0].relu(), [0.7]),
    "relu_negative": (lambda v: v[0].relu() + v[0], [-0.7]),
    "tanh": (lambda v: v[0].tanh(), [0.7]),
    "reused_node": (lambda v: v[0] * v[0] + v[0], [0.7]),  # gradients from two paths must add up
}


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_primitive_gradients_match_finite_differences(name):
    build, inputs = PRIMITIVES[name]
    check_grads(Value, build, inputs)


# Each fused op: (fused, reference from primitives, builder: op -> (flat Values -> scalar), inputs)
X4 = [0.3, -1.2, 0.8, 2.0]


def build_linear(op):
    # 9 inputs: a 2x3 weight matrix (rows v[0:3], v[3:6]) and x = v[6:9]
    def build(v):
        w = [v[0:3], v[3:6]]
        return weighted_sum(op(v[6:9], w))

    return build


FUSED = {
    "linear": (linear, linear_ref, build_linear, [0.5, -0.4, 0.1, 0.9, -0.7, 0.2, 1.5, -0.3, 0.6]),
    "softmax": (softmax, softmax_ref, lambda op: lambda v: weighted_sum(op(v)), X4),
    "rmsnorm": (rmsnorm, rmsnorm_ref, lambda op: lambda v: weighted_sum(op(v)), X4),
    "cross_entropy": (cross_entropy, cross_entropy_ref, lambda op: lambda v: op(v, 2), X4),
}


@pytest.mark.parametrize("name", sorted(FUSED))
def test_fused_gradients_match_finite_differences(name):
    fused, _, builder, inputs = FUSED[name]
    check_grads(Value, builder(fused), inputs)


@pytest.mark.parametrize("name", sorted(FUSED))
def test_fused_matches_primitives_in_value_and_gradient(name):
    fused, ref, builder, inputs = FUSED[name]
    same_value_and_gradient(Value, builder(fused), builder(ref), inputs)


def test_softmax_and_cross_entropy_stable_at_logits_of_1000():
    logits = [Value(1000.0), Value(999.0), Value(-1000.0)]
    probs = [p.data for p in softmax(logits)]
    assert all(math.isfinite(p) for p in probs)
    assert abs(sum(probs) - 1.0) < 1e-12
    assert abs(probs[0] - 1 / (1 + math.exp(-1))) < 1e-12
    loss = cross_entropy(logits, 1)
    loss.backward()
    assert abs(loss.data - (1 + math.log(1 + math.exp(-1)))) < 1e-12  # -log(e^-1 / (1 + e^-1))
    assert all(math.isfinite(z.grad) for z in logits)


def test_log_is_clipped_at_1e_10():
    for x in (0.0, 1e-12, -3.0):
        v = Value(x)
        out = v.log()
        out.backward()
        assert out.data == math.log(1e-10)
        assert v.grad == 0.0  # the clipped function is flat there
    assert Value(1e-10 * 2).log().data == math.log(2e-10)


def test_backward_handles_a_graph_deeper_than_the_recursion_limit():
    x = Value(1.0)
    y = x
    for _ in range(3 * sys.getrecursionlimit()):
        y = y + 0.001
    (y * 2).backward()
    assert x.grad == 2.0


def test_model_has_the_documented_parameter_count():
    # 27 tokens: wte 27*16 + wpe 16*16 + lm_head 27*16 + attention 4*16*16 + MLP 2*64*16 = 4192
    assert len(microgpt.flatten(microgpt.init_params(27))) == 4192


def test_fused_model_matches_the_model_built_from_primitives(monkeypatch):
    """One training example through the whole GPT: same loss and same parameter gradients."""
    random.seed(1)
    params = microgpt.init_params(27)
    doc = [26, 4, 12, 12, 0, 26]  # BOS e m m a BOS
    loss, _ = microgpt.name_loss(doc, params)
    loss.backward()
    fused = [p.grad for p in microgpt.flatten(params)]
    for p in microgpt.flatten(params):
        p.grad = 0.0
    for name, ref in (("linear", linear_ref), ("softmax", softmax_ref), ("rmsnorm", rmsnorm_ref), ("cross_entropy", cross_entropy_ref)):
        monkeypatch.setattr(microgpt, name, ref)
    ref_loss, _ = microgpt.name_loss(doc, params)
    ref_loss.backward()
    assert rel_err(loss.data, ref_loss.data) < 1e-12
    assert max(abs(a - p.grad) for a, p in zip(fused, microgpt.flatten(params))) < 1e-12


def test_model_gradient_matches_finite_differences_on_sampled_parameters():
    random.seed(2)
    params = microgpt.init_params(27)
    flat = microgpt.flatten(params)
    doc = [26, 0, 13, 13, 0, 26]  # BOS a n n a BOS
    loss, _ = microgpt.name_loss(doc, params)
    loss.backward()
    h = 1e-6
    for i in random.Random(3).sample(range(len(flat)), 25):
        p = flat[i]
        analytic = p.grad
        if abs(analytic) < 1e-7:  # an untouched embedding row: exactly 0 both ways
            continue
        numeric = value_central_difference(lambda: microgpt.name_loss(doc, params)[0].data, p, h)
        assert rel_err(analytic, numeric) < 1e-5


# --- the data loader ---


def closed_port():
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    """Serve fixed bytes over HTTP on loopback for the duration of a with-block."""

    def __init__(self, payload):
        payload_bytes = payload

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload_bytes)))
                self.end_headers()
                self.wfile.write(payload_bytes)

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/names.txt"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.url

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


PAYLOAD = b"emma\nolivia\nava\n"
PAYLOAD_SHA = __import__("hashlib").sha256(PAYLOAD).hexdigest()


def test_fetch_uses_a_valid_cache_without_the_network(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_MAGIC_DATA_DIR", str(tmp_path))
    (tmp_path / "names.txt").write_bytes(PAYLOAD)
    url = f"http://127.0.0.1:{closed_port()}/names.txt"
    assert microgpt.fetch(url, "names.txt", PAYLOAD_SHA) == str(tmp_path / "names.txt")


def test_fetch_downloads_atomically_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_MAGIC_DATA_DIR", str(tmp_path / "cache"))
    with Serve(PAYLOAD) as url:
        path = microgpt.fetch(url, "names.txt", PAYLOAD_SHA)
    assert open(path, "rb").read() == PAYLOAD
    assert os.listdir(tmp_path / "cache") == ["names.txt"]


def test_fetch_rejects_downloaded_bytes_with_the_wrong_checksum(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_MAGIC_DATA_DIR", str(tmp_path))
    with Serve(b"not the names file\n") as url, pytest.raises(SystemExit) as exc:
        microgpt.fetch(url, "names.txt", PAYLOAD_SHA)
    assert "sha256" in str(exc.value.code)
    assert os.listdir(tmp_path) == []  # nothing half-written, nothing wrong cached


def test_fetch_replaces_a_cached_file_with_the_wrong_checksum(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_MAGIC_DATA_DIR", str(tmp_path))
    (tmp_path / "names.txt").write_bytes(b"corrupted")
    with Serve(PAYLOAD) as url:
        path = microgpt.fetch(url, "names.txt", PAYLOAD_SHA)
    assert open(path, "rb").read() == PAYLOAD


def test_fetch_without_a_pinned_checksum_caches_what_it_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_MAGIC_DATA_DIR", str(tmp_path))
    with Serve(b"1,2,3\n") as url:
        path = microgpt.fetch(url, "unpinned.txt", None)
    assert open(path, "rb").read() == b"1,2,3\n"
    # and the cached copy is used from then on, with no network
    assert microgpt.fetch(f"http://127.0.0.1:{closed_port()}/x", "unpinned.txt", None) == path


def test_corrupt_cache_offline_is_reported_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_MAGIC_DATA_DIR", str(tmp_path))
    (tmp_path / "names.txt").write_bytes(b"corrupted")
    with pytest.raises(SystemExit) as exc:
        microgpt.fetch(f"http://127.0.0.1:{closed_port()}/names.txt", "names.txt", PAYLOAD_SHA)
    assert "fails its sha256 check" in str(exc.value.code)


def test_offline_run_exits_nonzero_with_a_clear_message_and_no_traceback(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/names.txt"
    code = f"import microgpt; microgpt.DATA_URL = {url!r}; microgpt.main()"
    env = dict(os.environ, NO_MAGIC_DATA_DIR=str(tmp_path), PYTHONPATH=os.path.dirname(microgpt.__file__))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert url in proc.stderr
    assert str(tmp_path / "names.txt") in proc.stderr
    assert "Traceback" not in proc.stderr
    assert os.listdir(tmp_path) == []


def test_value_has_every_operation_the_interface_doc_lists():
    """docs/autograd-interface.md is the contract: its operations table must match the code."""
    doc = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "autograd-interface.md")
    with open(doc, encoding="utf-8") as f:
        text = f.read()
    table = text.split("## Required operations", 1)[1].split("\n## ", 1)[0]
    methods = [line.split("`")[1] for line in table.splitlines() if line.startswith("| `")]
    assert len(methods) >= 15
    missing = [m for m in methods if not callable(getattr(Value, m, None))]
    assert not missing, f"documented but not implemented: {missing}"


def test_progress_rewrites_one_line_on_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    for step in range(1, 4):
        microgpt.progress(step, 3, 2.5, start=0.0, every=100)
    out = capsys.readouterr().out
    assert out.count("\r") == 3 and out.count("\n") == 1 and out.endswith("\n")
    assert "step     3/3" in out and "eta" in out


def test_progress_prints_periodic_plain_lines_in_a_log(monkeypatch, capsys):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    for step in range(1, 251):
        microgpt.progress(step, 250, 2.5, start=0.0, every=100)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("|")[0].strip() for line in lines] == ["step   100/250", "step   200/250", "step   250/250"]
    assert "\r" not in "".join(lines)


def test_cycle_collector_is_paused_inside_and_restored_after():
    assert gc.isenabled()
    with microgpt.cycle_collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_report_targets_fails_a_target_the_method_misses_or_the_baseline_meets(capsys):
    metrics = {"loss": 2.3, "bigram": 2.45, "count": 2.35, "untrained": 3.3}
    targets = [
        ("loss", "<=", 2.4, "bigram"),  # method meets, baseline misses: the only pass
        ("loss", "<=", 2.4, "count"),  # the baseline meets it too: tests nothing
        ("untrained", "<=", 2.4, "bigram"),  # the method misses it
        ("absent", ">", "loss", "bigram"),  # a missing metric fails
    ]
    assert microgpt.report_targets(metrics, targets) == 3
    lines = capsys.readouterr().out.splitlines()
    assert lines[-4:] == [
        "PASS  loss = 2.3 (target <= 2.4) | baseline bigram = 2.45 misses",
        "MISS  loss = 2.3 (target <= 2.4) | baseline count = 2.35 meets it too",
        "MISS  untrained = 3.3 (target <= 2.4) | baseline bigram = 2.45 misses",
        "MISS  absent = None (target > loss = 2.3) | baseline bigram = 2.45 meets it too",
    ]


def test_loss_curve_draws_every_column_and_labels_each_mark():
    lines = microgpt.loss_curve([3.0 - i / 100 for i in range(200)], [("held-out", 1.5), ("bigram", 2.5)], width=50, height=8)
    plot = lines[:-2]
    assert len(plot) == 8 and sum(line.count("*") for line in plot) == 50
    assert any(line.endswith("held-out 1.500") for line in plot) and any(line.endswith("bigram 2.500") for line in plot)
    assert lines[-1].strip() == "step 1 .. 200"


def test_loss_curve_names_a_far_mark_instead_of_squashing_the_curve():
    # A curve from 2.6 to 2.3 and an untrained mark at 3.3: the axis stays on the curve.
    lines = microgpt.loss_curve([2.6 - i * 0.003 for i in range(100)], [("untrained", 3.3), ("held-out", 2.35)], width=20, height=6)
    plot = lines[:-2]
    assert plot[0].endswith("^ untrained 3.300") and float(plot[0].split("|")[0]) < 2.7
    assert sum(any(c == "*" for c in line) for line in plot) == 6, "the curve uses every row"
