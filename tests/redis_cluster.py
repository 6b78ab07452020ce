"""A private 3-master Redis Cluster on free ports, for the tests of REDIS_CLUSTER=true.

Three `redis-server --cluster-enabled yes` processes, joined with `redis-cli --cluster create`
(no replicas), ready once every node says `cluster_state:ok`; stopped and their folder
removed at the end.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis
import redis.cluster

# Each node also listens on its port + 10000 (the cluster bus), so a port must leave room.
BUS_OFFSET = 10000


def free_cluster_port() -> int:
    """A port that is free, and whose cluster-bus port (+10000) is free too."""
    while True:
        port = random.randint(20000, 55000)
        try:
            for candidate in (port, port + BUS_OFFSET):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port


class PrivateCluster:
    def __init__(self, folder: Path, masters: int = 3) -> None:
        self.folder = folder
        self.ports = [free_cluster_port() for _ in range(masters)]
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """A `redis+cluster://` URL: the monitor's way of saying "this is a cluster"."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}/0"

    @property
    def plain_url(self) -> str:
        """The first node, as a single-Redis URL (REDIS_CLUSTER=true with redis://)."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> PrivateCluster:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        for port in self.ports:
            self.processes.append(subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", str(self.folder / f"nodes-{port}.conf"),
                 "--save", "", "--appendonly", "no", "--dir", str(self.folder),
                 "--daemonize", "no"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in self.ports:
            self._wait(lambda port=port: redis.Redis(port=port, socket_connect_timeout=0.2)
                       .ping(), f"redis-server on port {port}")
        cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
        subprocess.run([cli, "--cluster", "create",
                        *(f"127.0.0.1:{port}" for port in self.ports),
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        for port in self.ports:
            self._wait(lambda port=port: redis.Redis(port=port).cluster("info")
                       ["cluster_state"] == "ok", f"cluster_state:ok on port {port}")
        return self

    @staticmethod
    def _wait(ready, what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if ready():
                    return
            except redis.RedisError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"timed out waiting for {what}")

    def client(self) -> redis.cluster.RedisCluster:
        return redis.cluster.RedisCluster(host="127.0.0.1", port=self.ports[0])

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
        for process in self.processes:
            process.wait(10)
        self.processes = []

    def move_slot_of(self, key: str) -> tuple[int, int]:
        """Move the slot of `key`, with its keys, to another master (as a resharding does);
        (from port, to port)."""
        client = redis.Redis(port=self.ports[0])
        slot = int(client.cluster("keyslot", key))
        ids = {}
        for port in self.ports:
            ids[port] = redis.Redis(port=port).cluster("myid")
            ids[port] = ids[port].decode() if isinstance(ids[port], bytes) else ids[port]
        source = next(p for p in self.ports
                      if slot in _slots_of(redis.Redis(port=p), ids[p]))
        target = next(p for p in self.ports if p != source)
        src, dst = redis.Redis(port=source), redis.Redis(port=target)
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source])
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target])
        while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
            src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys)
        for port in self.ports:
            redis.Redis(port=port).execute_command("CLUSTER", "SETSLOT", slot, "NODE",
                                                   ids[target])
        return source, target


def _slots_of(client: redis.Redis, node_id: str) -> set[int]:
    owned: set[int] = set()
    for start, end, *nodes in client.execute_command("CLUSTER", "SLOTS"):
        master_id = nodes[0][2]
        master_id = master_id.decode() if isinstance(master_id, bytes) else master_id
        if master_id == node_id:
            owned.update(range(start, end + 1))
    return owned
