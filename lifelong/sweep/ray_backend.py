"""The Ray backend: each run is a Ray task, on an existing cluster (`--address`) or on a Ray started here.

Only this module imports ray. Workers must see the same `lifelong` code and the sweep folder (on a cluster
of several machines: a shared file system); the driver's source folder is put on the workers' PYTHONPATH so
a checkout works without installing. Each task asks for `cpus_per_run` CPUs (torch threads alike) and, on
a cluster with GPUs, one GPU, which Ray assigns through CUDA_VISIBLE_DEVICES.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from lifelong.sweep.job import RunJob, RunOutcome, play_run
from lifelong.sweep.spec import SweepError

PROBE_TIMEOUT_S = 5  # each of: TCP connect, the head's first gRPC frame
CONNECT_TIMEOUT_S = 25  # ray.init to a head that answers (12 s measured on a loaded 2-core machine)


class RayBackend:
    def __init__(self, address: str | None = None, cpus_per_run: int = 1):
        try:
            import ray
        except ImportError:
            raise SweepError("--backend ray needs Ray, which is not installed: pip install 'lifelong[ray]'") from None
        self.ray, self.cpus_per_run = ray, cpus_per_run
        if address not in (None, "auto", "local"):
            _check_answers(address)
        self._connect(address)
        self.slots = max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_run))

    def _connect(self, address: str | None) -> None:
        """ray.init, bounded in time for an existing cluster: it retries for minutes when the head refuses
        this driver (e.g. token authentication without RAY_AUTH_MODE=token)."""
        source = str(Path(__file__).resolve().parents[2])
        python_path = os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH")) if p)
        options = dict(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False,
                       runtime_env={"env_vars": {"PYTHONPATH": python_path}})
        if address in (None, "local"):
            self.ray.init(**options)  # a Ray of its own for this sweep: Ray's start-up has its own time-outs
            return
        failed: list[Exception] = []

        def connect():
            try:
                self.ray.init(**options)
            except Exception as error:  # noqa: BLE001 - reported below, or dropped once we have given up
                failed.append(error)

        connecting = threading.Thread(target=connect, daemon=True)
        connecting.start()
        connecting.join(CONNECT_TIMEOUT_S)
        if connecting.is_alive() or failed or not self.ray.is_initialized():
            why = f"Ray: {failed[0]}".splitlines()[0] if failed else f"no answer within {CONNECT_TIMEOUT_S} s"
            raise SweepError(f"--address {address}: the Ray head answers but did not accept this driver ({why}); "
                             "if the cluster uses token authentication, set RAY_AUTH_MODE=token (and "
                             "RAY_AUTH_TOKEN unless the token is in ~/.ray/auth_token); check that its Ray "
                             "version is this one's")

    def launch(self, jobs: list[RunJob]) -> Iterator[RunOutcome]:
        ray = self.ray
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        task = ray.remote(num_cpus=self.cpus_per_run, num_gpus=gpus, max_retries=0)(play_run)
        pending = [task.remote(replace(job, threads=self.cpus_per_run)) for job in jobs]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            yield ray.get(ready[0])

    def close(self) -> None:
        self.ray.shutdown()


def _check_answers(address: str) -> None:
    """Refuse, within 2 x PROBE_TIMEOUT_S, an address where no Ray head answers (ray.init would wait
    for minutes). Ray's head (GCS, or the Ray Client server) speaks gRPC: it answers an HTTP/2 connection
    preface with a SETTINGS frame, which a closed port, a silent host or another service does not."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise SweepError(f"--address {address!r}: write it as host:port (the head's GCS port, 6379 by default) "
                         "or ray://host:port for Ray Client")
    try:
        with socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S) as connection:
            connection.sendall(HTTP2_PREFACE + EMPTY_SETTINGS)
            frame = connection.recv(9)
        answered = len(frame) == 9 and frame[3] == SETTINGS_FRAME
        problem = "it does not speak gRPC, so it is no Ray head"
    except OSError as error:
        answered, problem = False, str(error)
    if not answered:
        raise SweepError(f"--address {address}: no Ray head answers there ({problem}); start one with "
                         f"`ray start --head --port={port}`, fix the address, or leave out --address to start a "
                         "local Ray for this sweep")


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # length 0, type SETTINGS, no flags, stream 0
SETTINGS_FRAME = 4
