"""A real `prefect server` on a free loopback port: serve a deployment, trigger it, wait for Completed.

Every process the test starts runs in its own session and is killed (with its children) at the end.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.server, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:
            time.sleep(0.5)
    raise TimeoutError(f"{url} not up after {timeout} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_serve_and_trigger_a_deployment_on_a_real_server(tmp_path):
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": api,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PYTHONPATH": str(ROOT)}
    prefect = str(Path(sys.executable).parent / "prefect")
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen([prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    served = None
    try:
        _wait_http(f"{api}/health", 120, server)
        marker = tmp_path / "marker.txt"
        served = subprocess.Popen([sys.executable, str(ROOT / "tests/flows/tiny_served_flow.py"), str(marker)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        trigger = (
            "import time\n"
            "from prefect.deployments import run_deployment\n"
            "from prefect.client.orchestration import get_client\n"
            "import asyncio\n"
            "async def wait():\n"
            "    async with get_client() as c:\n"
            "        for _ in range(120):\n"
            "            try:\n"
            "                return await c.read_deployment_by_name('tiny-flow/tiny')\n"
            "            except Exception:\n"
            "                await asyncio.sleep(0.5)\n"
            "dep = asyncio.run(wait())\n"
            "assert dep is not None and dep.schedules, 'deployment not served with its schedule'\n"
            "run = run_deployment('tiny-flow/tiny', timeout=180)\n"
            "print('STATE', run.state.type.value)\n")
        proc = subprocess.run([sys.executable, "-c", trigger], env=env, capture_output=True, text=True, timeout=300)
        assert "STATE COMPLETED" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-3000:]
        assert marker.read_text() == "ran"
    finally:
        if served is not None:
            _stop(served)
        _stop(server)
        log.close()
    assert server.poll() is not None and (served is None or served.poll() is not None)
