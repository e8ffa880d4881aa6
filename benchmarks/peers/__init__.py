"""One adapter per job queue compared by ``python -m benchmarks``; see base.Peer."""

from __future__ import annotations

#: name on the command line -> "module:class"; a peer whose library is missing is skipped
PEERS = {
    "ceylon-redis": "benchmarks.peers.ceylon:Ceylon",
    "arq": "benchmarks.peers.arq_peer:Arq",
    "rq": "benchmarks.peers.rq_peer:RQ",
    "celery": "benchmarks.peers.celery_peer:Celery",
    "dramatiq": "benchmarks.peers.dramatiq_peer:Dramatiq",
    "taskiq": "benchmarks.peers.taskiq_peer:Taskiq",
    "saq": "benchmarks.peers.saq_peer:Saq",
    "streaq": "benchmarks.peers.streaq_peer:Streaq",
    "huey": "benchmarks.peers.huey_peer:Huey",
}
