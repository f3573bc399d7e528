"""The namespace cluster behaves like pods on a cluster network, and leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.multinode.conftest import MakeCluster
from tests.multinode.netns import PREFIX, Cluster, ip, sweep_stale
from tests.multinode.world import base_env, python_on, wait_listening

SERVE_HOSTNAME = """
import socket
server = socket.create_server(("0.0.0.0", 23456))
while True:
    conn, _ = server.accept()
    conn.sendall(socket.gethostname().encode())
    conn.close()
"""

ASK = """
import socket, sys
for name in sys.argv[2:]:
    with socket.create_connection((name, 23456), timeout=float(sys.argv[1])) as conn:
        print(name, conn.recv(100).decode())
"""


def leftovers(tag: str) -> list[str]:
    names = ip("netns", "list").split() + [
        line.split(":")[1].strip().split("@")[0] for line in ip("-o", "link", "show").splitlines()
    ]
    names += [p.name for p in Path("/etc/netns").glob("*")] if Path("/etc/netns").is_dir() else []
    return [name for name in names if name.startswith(tag)]


def test_every_pod_listens_on_one_port_and_reaches_the_others_by_their_service_names(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(
        {"job-master-0": ["job-master-0.default.svc"], "job-worker-0": ["job-worker-0.default.svc"], "client": []}
    )
    env = base_env()
    for node in ("job-master-0", "job-worker-0"):
        cluster.popen(node, [sys.executable, "-c", SERVE_HOSTNAME], env, Path("/dev/null"))
        wait_listening(cluster, "client", node, 23456, env)
    answers = cluster.run("client", [sys.executable, "-c", ASK, "5", "job-master-0.default.svc", "job-worker-0"], env)
    assert answers.stdout.splitlines() == ["job-master-0.default.svc job-master-0", "job-worker-0 job-worker-0"]
    own = python_on(cluster, "job-worker-0", "import socket; print(socket.gethostbyname(socket.gethostname()))", env)
    assert own.strip() == cluster.node("job-worker-0").address


def test_nodes_have_no_route_out_of_their_network(make_cluster: MakeCluster) -> None:
    cluster = make_cluster({"a": []})
    routes = ip("-n", cluster.node("a").namespace, "route", "show")
    assert "default" not in routes and routes.split()[0] == "198.18.0.0/24"
    out = python_on(
        cluster,
        "a",
        """
import socket
try:
    socket.create_connection(("192.0.2.1", 80), timeout=2)
except OSError as exc:
    print(exc.errno)
""",
        base_env(),
    )
    assert out.strip() == "101"  # ENETUNREACH


def test_a_cut_node_goes_silent_and_answers_again_once_restored(make_cluster: MakeCluster) -> None:
    cluster = make_cluster({"server": [], "client": []})
    env = base_env()
    cluster.popen("server", [sys.executable, "-c", SERVE_HOSTNAME], env, Path("/dev/null"))
    wait_listening(cluster, "client", "server", 23456, env)
    cluster.cut("server")
    silent = cluster.run("client", [sys.executable, "-c", ASK, "1", "server"], env)
    assert "TimeoutError" in silent.stderr  # no RST, no ICMP: the peer hears nothing
    cluster.restore("server")
    assert cluster.run("client", [sys.executable, "-c", ASK, "5", "server"], env).stdout == "server server\n"


def test_killing_a_node_ends_every_process_on_it(make_cluster: MakeCluster) -> None:
    cluster = make_cluster({"node": []})
    parent = cluster.popen("node", ["sh", "-c", "sleep 300 & sleep 300"], base_env(), Path("/dev/null"))
    python_on(cluster, "node", "import time; time.sleep(0.2)", base_env())
    killed = cluster.kill("node")
    assert parent.pid in killed and len(killed) >= 2
    assert parent.wait(timeout=10) == -9 and cluster.pids("node") == []


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_everything_is_removed_when_the_body_fails(error: type[BaseException], netns_available: None) -> None:
    cluster = Cluster({"a": [], "b": []})
    with pytest.raises(error), cluster:
        subprocess.Popen(cluster.command("a", ["sleep", "300"]))
        assert len(leftovers(cluster.tag)) == 7  # a bridge, 2 veths, 2 namespaces, 2 /etc/netns entries
        raise error()
    assert leftovers(cluster.tag) == []


def test_sweep_removes_what_a_crashed_run_left(netns_available: None, tmp_path: Path) -> None:
    crashed = subprocess.run(
        [
            sys.executable,
            "-c",
            """
import os, subprocess
from tests.multinode.netns import Cluster
cluster = Cluster({"a": []})
cluster.start()
subprocess.Popen(cluster.command("a", ["sleep", "300"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(cluster.tag, flush=True)
os._exit(1)
""",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )
    tag = crashed.stdout.strip()
    assert tag.startswith(PREFIX) and leftovers(tag), crashed.stderr
    removed = sweep_stale()
    assert any(name.startswith(tag) for name in removed)
    assert leftovers(tag) == []
